"""The virtual waiting room (the AWS Virtual Waiting Room idea, kept in Redis).

Each ticket gets a sequence number and each event a serving counter; a fan's position is ``sequence - serving``,
O(1) per watcher. Fans who arrive before the sale opens wait in a pre-queue and are shuffled when it opens, so
arriving first (as bots do) buys nothing; afterwards it is first come, first served. Admission advances the serving
counter by elapsed time × rate (measured with Redis' clock inside one script, so any number of queue processes
may drive it without over-admitting) and never beyond the cap on active shoppers. An admitted fan gets an
admission token (``tix.admission``) the booking service verifies.
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


@dataclass(frozen=True)
class StoredTicket:
    ticket_id: str
    event_id: int
    user_id: str
    sequence: int  # 0 while in the pre-queue
    joined_at: float
    admitted_at: float | None
    admission_token: str | None


@dataclass(frozen=True)
class LineState:
    """The event's line at one instant: how far admission has got and how fast it moves."""

    serving: int
    last_sequence: int
    admission_rate: float  # fans per second, measured


@dataclass(frozen=True)
class QueueTicketView:
    ticket_id: str
    event_id: int
    state: TicketState
    position: int
    estimated_wait_seconds: float
    joined_at: float
    admission_token: str | None
    admission_expires_at: float | None


class QueueRepository(Protocol):
    async def waiting_room_settings(self, event_id: int) -> WaitingRoomSettings | None: ...
    async def join(self, event_id: int, user_id: str, *, pre_queue: bool, now: float) -> StoredTicket:
        """Idempotent per fan; a fan arriving after the sale time is never placed ahead of the pre-queue."""
    async def ticket(self, event_id: int, ticket_id: str) -> StoredTicket | None: ...
    async def open_sale(self, event_id: int) -> int: ...
    async def advance(self, event_id: int, *, rate_per_second: int, max_active: int, admission_ttl: int) -> LineState: ...
    async def line_state(self, event_id: int) -> LineState: ...
    async def store_admission_token(self, event_id: int, ticket_id: str, token: str) -> str: ...
    async def free_slots(self, event_id: int, ticket_ids: list[str]) -> int: ...


class WaitingRoom:
    def __init__(self, repository: QueueRepository, *, admission_secret: str, admission_ttl_seconds: int) -> None:
        self._repo = repository
        self._secret = admission_secret
        self._ttl = admission_ttl_seconds

    async def settings_of(self, event_id: int) -> WaitingRoomSettings:
        settings = await self._repo.waiting_room_settings(event_id)
        if settings is None:
            raise NotFound("EVENT_NOT_FOUND", f"event {event_id} does not exist", event_id=event_id)
        return settings

    async def join(self, user_id: str, event_id: int) -> QueueTicketView:
        """Put the fan in line; a fan who joins again gets the ticket they already have."""
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
        ticket = await self._repo.join(event_id, user_id, pre_queue=pre_queue, now=now)
        line = await self.advance(settings)
        return await self.view(ticket, line)

    async def ticket_of(self, user_id: str, event_id: int, ticket_id: str) -> StoredTicket:
        """A fan sees only their own ticket; another fan's ticket id is indistinguishable from an unknown one."""
        ticket = await self._repo.ticket(event_id, ticket_id)
        if ticket is None or ticket.user_id != user_id:
            raise NotFound("QUEUE_TICKET_NOT_FOUND", "no such queue ticket for you", ticket_id=ticket_id)
        return ticket

    async def advance(self, settings: WaitingRoomSettings) -> LineState:
        """Open the sale when due (shuffling the pre-queue once), then admit by elapsed time × rate."""
        if time.time() >= settings.sale_starts_at.timestamp():
            await self._repo.open_sale(settings.event_id)
            line = await self._repo.advance(
                settings.event_id,
                rate_per_second=settings.rate_per_second,
                max_active=settings.max_active,
                admission_ttl=self._ttl,
            )
        else:
            line = await self._repo.line_state(settings.event_id)
        if line.admission_rate <= 0:  # nothing measured yet: estimate from the configured rate
            line = LineState(line.serving, line.last_sequence, float(settings.rate_per_second))
        return line

    async def free_slots(self, event_id: int, ticket_ids: list[str]) -> int:
        """Booking said these admitted fans confirmed, cancelled or let their hold expire: free their slots."""
        return await self._repo.free_slots(event_id, ticket_ids)

    async def refresh(self, ticket: StoredTicket) -> StoredTicket:
        """Re-read a ticket whose sequence or admission may have changed since it was loaded."""
        return await self._repo.ticket(ticket.event_id, ticket.ticket_id) or ticket

    async def view(self, ticket: StoredTicket, line: LineState) -> QueueTicketView:
        """Where the fan stands; an admitted fan gets (once, then the same) admission token."""
        if ticket.sequence == 0:
            ahead = line.last_sequence - line.serving  # the whole line, until the draw places the fan in it
            return QueueTicketView(
                ticket.ticket_id, ticket.event_id, TicketState.PRE_QUEUE, max(ahead, 0),
                _wait(max(ahead, 0), line.admission_rate), ticket.joined_at, None, None,
            )
        if ticket.sequence > line.serving:
            position = ticket.sequence - line.serving
            return QueueTicketView(
                ticket.ticket_id, ticket.event_id, TicketState.WAITING, position,
                _wait(position, line.admission_rate), ticket.joined_at, None, None,
            )
        if ticket.admitted_at is None:  # serving passed the fan moments ago; the admission record follows
            ticket = await self.refresh(ticket)
        admitted_at = ticket.admitted_at or time.time()
        expires_at = admitted_at + self._ttl
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


def _wait(position: int, rate: float) -> float:
    if position <= 0:
        return 0.0
    return math.ceil(position / rate) if rate > 0 else float(position)
