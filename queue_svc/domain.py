"""The virtual waiting room (the AWS Virtual Waiting Room idea, kept in Redis).

Each ticket gets a sequence number and each event a serving counter; a fan's position is ``sequence - serving``,
O(1) per watcher. Fans who arrive before the sale opens wait in a pre-queue and are shuffled when it opens, so
arriving first (as bots do) buys nothing; afterwards it is first come, first served.

Admission steps on its own schedule, whoever is watching: in every queue process a loop steps each listed event,
and a lease in Redis lets one process at a time do it (``queue_svc.watchers``). A step advances the serving counter
by elapsed time × rate (measured with Redis' clock inside one script), never beyond the cap on active shoppers, and
passes over fans who are not present — no open stream and no join or poll within the grace period — without using
an admission on them. Booking reports when an admitted fan is done (confirmed, cancelled, hold expired), which frees
their shopper slot at once (``queue_svc.slots``). An admitted fan gets an admission token (``tix.admission``) the
booking service verifies.

Estimates divide the position by the pace the line moves: while the cap has room, the rate times the places passed
per admission (measured: fans who left are passed over); while the cap binds, the pace measured over the last
seconds (slots freed), never less than the cap guarantees (every admission ends within its lifetime, so at least
``max_active / admission_ttl`` fans per second), so estimates stay finite. With admission stopped there is none.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Protocol

from tix.admission import issue_admission_token
from tix.errors import FailedPrecondition, NotFound


class TicketState(Enum):
    PRE_QUEUE = "pre_queue"
    WAITING = "waiting"
    ADMITTED = "admitted"
    EXPIRED = "expired"


@dataclass(frozen=True)
class WaitingRoomSettings:
    event_id: int
    enabled: bool
    sale_starts_at: datetime
    rate_per_second: int
    max_active: int
    sale_ended: bool
    # An operator paused admissions (admin_svc): fans keep their places and may join, nobody is admitted.
    paused: bool = False


@dataclass(frozen=True)
class StoredTicket:
    ticket_id: str
    event_id: int
    user_id: str
    sequence: int  # 0 while in the pre-queue
    joined_at: float
    admitted_at: float | None
    admission_token: str | None
    left: bool = False  # passed over: the fan was not present when their turn came


@dataclass(frozen=True)
class LineState:
    """The event's line at one instant: how far admission has got and how fast it moves."""

    serving: int
    last_sequence: int
    admission_rate: float  # sequences passed per second, measured; negative before anything was measured
    pre_queue: int = 0
    opened: bool = False
    active: int = 0
    passed_per_admission: float = 1.0  # measured: above 1 when fans who left are passed over
    stepped: bool = False  # this call stepped the line (the caller holds the event's lease)
    admitted: int = 0  # fans admitted by this step

    @property
    def waiting(self) -> int:
        return max(self.last_sequence - self.serving, 0)


@dataclass(frozen=True)
class QueueTicketView:
    ticket_id: str
    event_id: int
    state: TicketState
    position: int
    estimated_wait_seconds: float | None  # None: no honest estimate (admission is stopped)
    joined_at: float
    admission_token: str | None
    admission_expires_at: float | None
    fans_waiting: int = 0
    sale_starts_at: float | None = None


class QueueRepository(Protocol):
    async def waiting_room_settings(self, event_id: int) -> WaitingRoomSettings | None: ...
    async def join(
        self, event_id: int, user_id: str, *, pre_queue: bool, now: float
    ) -> tuple[StoredTicket, LineState]:
        """Idempotent per fan; a fan arriving after the sale time is never placed ahead of the pre-queue."""
    async def ticket(self, event_id: int, ticket_id: str) -> StoredTicket | None: ...
    async def tickets(self, event_id: int, ticket_ids: list[str]) -> dict[str, StoredTicket]: ...
    async def open_sale(self, event_id: int) -> int: ...
    async def step(
        self, event_id: int, *, rate_per_second: int, max_active: int, admission_ttl: int, owner: str,
        lease_seconds: float, scan_limit: int,
    ) -> LineState: ...
    async def line_state(self, event_id: int) -> LineState: ...
    async def mark_present(self, event_id: int, ticket_ids: list[str]) -> None: ...
    async def events_to_step(self) -> dict[int, float]: ...
    async def forget_idle_event(self, event_id: int, seen: float) -> bool: ...
    async def store_admission_token(self, event_id: int, ticket_id: str, token: str) -> str: ...
    async def free_slots(self, event_id: int, ticket_ids: list[str]) -> int: ...


class WaitingRoom:
    def __init__(
        self,
        repository: QueueRepository,
        *,
        admission_secret: str,
        admission_ttl_seconds: int,
        scan_limit: int = 5000,
    ) -> None:
        self._repo = repository
        self._secret = admission_secret
        self._ttl = admission_ttl_seconds
        self._scan_limit = scan_limit

    @property
    def repository(self) -> QueueRepository:
        return self._repo

    async def settings_of(self, event_id: int) -> WaitingRoomSettings:
        settings = await self._repo.waiting_room_settings(event_id)
        if settings is None:
            raise NotFound("EVENT_NOT_FOUND", f"event {event_id} does not exist", event_id=event_id)
        return settings

    async def join(self, user_id: str, event_id: int) -> QueueTicketView:
        """Put the fan in line; a fan who joins again gets the ticket they already have (and counts as present)."""
        settings = await self.settings_of(event_id)
        if not settings.enabled:
            raise FailedPrecondition(
                "WAITING_ROOM_DISABLED", "this event has no waiting room: reserve seats directly", event_id=event_id
            )
        if settings.sale_ended:
            raise FailedPrecondition("SALE_ENDED", "the sale for this event has ended", event_id=event_id)
        now = time.time()
        pre_queue = now < settings.sale_starts_at.timestamp()
        if not pre_queue:
            await self._repo.open_sale(event_id)
        ticket, line = await self._repo.join(event_id, user_id, pre_queue=pre_queue, now=now)
        return await self.view(ticket, line, settings)

    async def ticket_of(self, user_id: str, event_id: int, ticket_id: str) -> StoredTicket:
        """A fan sees only their own ticket; another fan's ticket id is indistinguishable from an unknown one."""
        ticket = await self._repo.ticket(event_id, ticket_id)
        if ticket is None or ticket.user_id != user_id:
            raise NotFound("QUEUE_TICKET_NOT_FOUND", "no such queue ticket for you", ticket_id=ticket_id)
        return ticket

    async def step(self, settings: WaitingRoomSettings, *, owner: str, lease_seconds: float) -> LineState:
        """Open the sale when due (shuffling the pre-queue once), then step admission if ``owner`` holds (or
        takes) the event's lease; otherwise just read the line."""
        if not settings.enabled or settings.sale_ended:
            return await self._repo.line_state(settings.event_id)
        if time.time() >= settings.sale_starts_at.timestamp():
            await self._repo.open_sale(settings.event_id)
        return await self._repo.step(
            settings.event_id,
            # Paused: the line's clock still moves (no burst on resume), its budget does not grow.
            rate_per_second=0 if settings.paused else settings.rate_per_second,
            max_active=settings.max_active,
            admission_ttl=self._ttl,
            owner=owner,
            lease_seconds=lease_seconds,
            scan_limit=self._scan_limit,
        )

    async def line_state(self, event_id: int) -> LineState:
        return await self._repo.line_state(event_id)

    async def free_slots(self, event_id: int, ticket_ids: list[str]) -> int:
        """Booking said these admitted fans confirmed, cancelled or let their hold expire: free their slots."""
        return await self._repo.free_slots(event_id, ticket_ids)

    def pace(self, line: LineState, settings: WaitingRoomSettings) -> float:
        """Places per second the line is expected to move. While the cap has room: the rate, times the places
        passed per admission (fans who left cost no admission). While the cap binds: the pace measured (slots
        freed), never below what the cap guarantees (each admission ends within its lifetime)."""
        rate = 0.0 if settings.paused else float(settings.rate_per_second)
        if rate <= 0:
            return 0.0
        guaranteed = min(rate, settings.max_active / self._ttl)
        if line.active < settings.max_active:
            return max(rate * max(line.passed_per_admission, 1.0), guaranteed)
        measured = line.admission_rate if line.admission_rate >= 0 else rate
        return max(measured, guaranteed)

    def waiting_view(
        self, ticket: StoredTicket, line: LineState, settings: WaitingRoomSettings
    ) -> QueueTicketView | None:
        """The view of a ticket still in line or in the pre-queue, without any I/O; None once the serving counter
        passed it (admitted or passed over: the stored ticket says which)."""
        pace = self.pace(line, settings)
        if ticket.sequence == 0:
            sale_start = settings.sale_starts_at.timestamp()
            if line.opened:
                return None  # placed by the draw: the stored ticket has its sequence now
            # Nobody knows the place the draw will give; on average, the middle of the pre-queue.
            behind_opening = max(sale_start - time.time(), 0.0)
            middle = (line.pre_queue + 1) / 2
            wait = behind_opening + middle / pace if pace > 0 else None
            return QueueTicketView(
                ticket.ticket_id, ticket.event_id, TicketState.PRE_QUEUE, line.pre_queue, displayed_wait(wait),
                ticket.joined_at, None, None, fans_waiting=line.pre_queue + line.waiting, sale_starts_at=sale_start,
            )
        if ticket.sequence > line.serving:
            position = ticket.sequence - line.serving
            return QueueTicketView(
                ticket.ticket_id, ticket.event_id, TicketState.WAITING, displayed_position(position),
                displayed_wait(position / pace if pace > 0 else None), ticket.joined_at, None, None,
            )
        return None

    async def view(self, ticket: StoredTicket, line: LineState, settings: WaitingRoomSettings) -> QueueTicketView:
        """Where the fan stands; an admitted fan gets (once, then the same) admission token."""
        waiting = self.waiting_view(ticket, line, settings)
        if waiting is not None:
            return waiting
        if ticket.sequence == 0 or (ticket.admitted_at is None and not ticket.left):
            # Placed by the draw, or passed moments ago: the stored ticket has the news.
            ticket = await self._repo.ticket(ticket.event_id, ticket.ticket_id) or ticket
            waiting = self.waiting_view(ticket, line, settings)
            if waiting is not None:
                return waiting
        return await self.final_view(ticket)

    async def final_view(self, ticket: StoredTicket) -> QueueTicketView:
        """The view of a ticket the serving counter has passed: admitted (with its token) or expired."""
        if ticket.left or ticket.admitted_at is None:
            return QueueTicketView(
                ticket.ticket_id, ticket.event_id, TicketState.EXPIRED, 0, 0.0, ticket.joined_at, None, None
            )
        expires_at = ticket.admitted_at + self._ttl
        if time.time() >= expires_at:
            return QueueTicketView(
                ticket.ticket_id, ticket.event_id, TicketState.EXPIRED, 0, 0.0, ticket.joined_at, None, expires_at
            )
        token = ticket.admission_token
        if token is None:
            fresh = issue_admission_token(
                self._secret,
                user_id=ticket.user_id,
                event_id=ticket.event_id,
                ticket_id=ticket.ticket_id,
                ttl_seconds=max(1, int(expires_at - time.time())),
            )
            token = await self._repo.store_admission_token(ticket.event_id, ticket.ticket_id, fresh)
        return QueueTicketView(
            ticket.ticket_id, ticket.event_id, TicketState.ADMITTED, 0, 0.0, ticket.joined_at, token, expires_at
        )


EXACT_POSITIONS = 100


def displayed_position(position: int) -> int:
    """The place a fan is shown: exact for the first ``EXACT_POSITIONS`` places (near the front every step is
    news), then rounded up to two significant figures (1,234 -> 1,300; 12,345 -> 13,000), so never better than
    the real place and at most ~10% worse. A fan far back then hears of a step only when the figure changes: with
    the line moving 10 places a step, 1 step in 10 for places in the thousands, 1 in 100 in the tens of thousands.
    That is what lets one process keep 20,000 streams informed within a second of each step (docs/architecture.md).
    """
    if position <= EXACT_POSITIONS:
        return position
    step: int = 10 ** (len(str(position)) - 2)
    return -(-position // step) * step


def displayed_wait(seconds: float | None) -> float | None:
    """Whole seconds up to a minute and a half, then two significant figures: a fan sees the wait change when it
    changes meaningfully, not with every jitter of the measured pace."""
    if seconds is None or not math.isfinite(seconds):
        return None
    if seconds <= 0:
        return 0.0
    if seconds < 90:
        return float(math.ceil(seconds))
    magnitude = 10 ** (int(math.log10(seconds)) - 1)
    return float(round(seconds / magnitude) * magnitude)
