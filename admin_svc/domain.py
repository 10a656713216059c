"""Operator controls for an on-sale: the rules, without grpc or SQL.

Every change names its operator (``actor``) and is audited: waiting-room and sale changes in the same transaction
as the change (``EventControls``), booking changes right after booking's own transaction commits (booking owns its
transactions), each with a structured log line (``tix.audit``). The waiting room itself runs in the queue service,
which re-reads an event's settings every ``event_cache_seconds`` (1 s): a change here acts there within that.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, Protocol, TypeVar

from tix.errors import FailedPrecondition, InvalidArgument, NotFound, Unauthenticated
from tix.sales import SaleStatus, SaleWindow, sale_status

MAX_RATE_PER_SECOND = 100_000
MAX_ACTIVE_SHOPPERS = 10_000_000
MAX_REASON_LENGTH = 500
_OPERATOR = re.compile(r"[A-Za-z0-9._@:+-]{1,128}")


@dataclass(frozen=True)
class RoomSettings:
    event_id: int
    enabled: bool
    paused: bool
    rate_per_second: int
    max_active: int
    sale_starts_at: datetime


@dataclass(frozen=True)
class LineCounts:
    """What an operator sees of an event's line."""

    waiting: int  # in line and not admitted yet, the pre-queue included
    pre_queue: int  # arrived before the sale opened, waiting for the draw
    admitted: int  # places the line has moved past (admitted fans, and fans who had left when their turn came)
    active: int  # admitted and still shopping (they count against the shopper cap)
    admission_rate: float  # places passed per second, measured (0 before anything was measured)
    pace: float  # places per second the queue expects the line to move now (0: stopped)


@dataclass(frozen=True)
class RoomStatus:
    settings: RoomSettings
    line: LineCounts
    # Seconds until everybody now waiting is admitted; None while paused or disabled (nobody is being admitted).
    time_to_clear_seconds: float | None


@dataclass(frozen=True)
class SaleFacts:
    event_id: int
    window: SaleWindow
    sold_out: bool
    confirmed_bookings: int


@dataclass(frozen=True)
class SaleView:
    facts: SaleFacts
    status: SaleStatus


class EventControls(Protocol):
    """The events table and the audit log (PostgreSQL); each change and its audit row commit together."""

    async def room_settings(self, event_id: int) -> RoomSettings | None: ...
    async def change_room(
        self, event_id: int, changes: Mapping[str, object], *, actor: str, action: str, details: Mapping[str, object]
    ) -> RoomSettings | None: ...
    async def sale_facts(self, event_id: int) -> SaleFacts | None: ...
    async def change_sale(
        self, event_id: int, change: str, at: datetime, *, actor: str, action: str, details: Mapping[str, object]
    ) -> SaleFacts | None:
        """``change``: "open" (the sale starts at ``at`` at the latest, no end), "close" (ends at ``at``),
        "cancel"."""
    async def audit(self, *, actor: str, action: str, target: str, details: Mapping[str, object]) -> None: ...


class LineReader(Protocol):
    """The queue's line in Redis, read with the queue service's own repository and pace rule."""

    async def line_counts(self, event_id: int) -> LineCounts: ...


@dataclass(frozen=True)
class ReconcileOutcome:
    checked: int
    paid_not_confirmed: int
    open_intents_of_ended_bookings: int
    refunds_owed: int
    repaired: int
    ticket_mismatches: tuple[str, ...]
    unresolved: tuple[str, ...]
    consistent: bool
    summary: str


class HasStatus(Protocol):
    @property
    def status(self) -> str: ...


B = TypeVar("B", bound=HasStatus)
B_co = TypeVar("B_co", bound=HasStatus, covariant=True)


class OperatorBookings(Protocol[B_co]):
    """Booking's own use cases and Stripe adapter (booking_svc), for any fan's booking; ``B`` is booking's record,
    passed through to the servicer as it is."""

    async def show(self, booking_id: uuid.UUID) -> B_co: ...
    async def cancel(self, booking_id: uuid.UUID, reason: str) -> B_co: ...
    async def refund(self, booking_id: uuid.UUID, reason: str) -> B_co: ...
    async def reconcile(self, *, apply: bool, since_seconds: float | None = None) -> ReconcileOutcome: ...


def require_operator(name: str | None) -> str:
    """Every operator call names its operator (``x-tix-operator``): the audit log's ``actor``."""
    if not name:
        raise Unauthenticated("OPERATOR_REQUIRED", "name the operator in the x-tix-operator metadata")
    if not _OPERATOR.fullmatch(name):
        raise InvalidArgument("x-tix-operator", "letters, digits and ._@:+- only, at most 128", "OPERATOR_INVALID")
    return name


def _reason(reason: str) -> str:
    if len(reason) > MAX_REASON_LENGTH:
        raise InvalidArgument("reason", f"at most {MAX_REASON_LENGTH} characters")
    return reason


def time_to_clear(settings: RoomSettings, line: LineCounts) -> float | None:
    """How long the fans waiting now need to get in, at the pace the queue shows its fans (the rate, or what the
    shopper cap lets through); None while nobody is being admitted (off, paused)."""
    if not settings.enabled or settings.paused:
        return None
    if line.waiting == 0:
        return 0.0
    return line.waiting / line.pace if line.pace > 0 else None


class OperatorConsole(Generic[B]):
    def __init__(self, events: EventControls, line: LineReader, bookings: OperatorBookings[B]) -> None:
        self._events = events
        self._line = line
        self._bookings = bookings

    # --- the waiting room ----------------------------------------------------------------------------------

    async def room_status(self, event_id: int) -> RoomStatus:
        settings = await self._events.room_settings(event_id)
        if settings is None:
            raise _no_event(event_id)
        line = await self._line.line_counts(event_id)
        return RoomStatus(settings, line, time_to_clear(settings, line))

    async def enable_room(self, actor: str, event_id: int, reason: str = "") -> RoomStatus:
        return await self._change_room(actor, event_id, "waiting_room.enable", {"queue_enabled": True}, reason)

    async def disable_room(self, actor: str, event_id: int, reason: str = "") -> RoomStatus:
        return await self._change_room(actor, event_id, "waiting_room.disable", {"queue_enabled": False}, reason)

    async def pause_room(self, actor: str, event_id: int, reason: str = "") -> RoomStatus:
        return await self._change_room(actor, event_id, "waiting_room.pause", {"queue_paused": True}, reason)

    async def resume_room(self, actor: str, event_id: int, reason: str = "") -> RoomStatus:
        return await self._change_room(actor, event_id, "waiting_room.resume", {"queue_paused": False}, reason)

    async def set_rate(self, actor: str, event_id: int, rate_per_second: int, reason: str = "") -> RoomStatus:
        if not 1 <= rate_per_second <= MAX_RATE_PER_SECOND:
            raise InvalidArgument("rate_per_second", f"between 1 and {MAX_RATE_PER_SECOND:,} fans per second")
        changes = {"queue_rate_per_second": rate_per_second}
        return await self._change_room(actor, event_id, "waiting_room.set_rate", changes, reason)

    async def set_max_active(self, actor: str, event_id: int, max_active: int, reason: str = "") -> RoomStatus:
        if not 1 <= max_active <= MAX_ACTIVE_SHOPPERS:
            raise InvalidArgument("max_active", f"between 1 and {MAX_ACTIVE_SHOPPERS:,} shoppers")
        changes = {"queue_max_active": max_active}
        return await self._change_room(actor, event_id, "waiting_room.set_max_active", changes, reason)

    async def _change_room(
        self, actor: str, event_id: int, action: str, changes: Mapping[str, object], reason: str
    ) -> RoomStatus:
        details: dict[str, object] = {**changes, "reason": _reason(reason)}
        settings = await self._events.change_room(event_id, changes, actor=actor, action=action, details=details)
        if settings is None:
            raise _no_event(event_id)
        line = await self._line.line_counts(event_id)
        return RoomStatus(settings, line, time_to_clear(settings, line))

    # --- the sale ------------------------------------------------------------------------------------------

    async def sale(self, event_id: int, now: datetime) -> SaleView:
        facts = await self._events.sale_facts(event_id)
        if facts is None:
            raise _no_event(event_id)
        return SaleView(facts, sale_status(facts.window, now, sold_out=facts.sold_out))

    async def open_sale(self, actor: str, event_id: int, now: datetime, reason: str = "") -> SaleView:
        before = await self.sale(event_id, now)
        if before.status is SaleStatus.CANCELLED:
            raise FailedPrecondition("EVENT_CANCELLED", "a cancelled event cannot go on sale", event_id=event_id)
        if now >= before.facts.window.starts_at:
            raise FailedPrecondition("EVENT_STARTED", "the event has started: its sale is over", event_id=event_id)
        return await self._change_sale(actor, event_id, "open", now, reason)

    async def close_sale(self, actor: str, event_id: int, now: datetime, reason: str = "") -> SaleView:
        before = await self.sale(event_id, now)
        if before.status in (SaleStatus.CANCELLED, SaleStatus.ENDED):
            return before  # nothing to close; nothing audited
        return await self._change_sale(actor, event_id, "close", now, reason)

    async def cancel_sale(self, actor: str, event_id: int, now: datetime, reason: str = "") -> SaleView:
        before = await self.sale(event_id, now)
        if before.status is SaleStatus.CANCELLED:
            return before
        return await self._change_sale(actor, event_id, "cancel", now, reason)

    async def _change_sale(self, actor: str, event_id: int, change: str, now: datetime, reason: str) -> SaleView:
        details = {"reason": _reason(reason)}
        facts = await self._events.change_sale(
            event_id, change, now, actor=actor, action=f"sale.{change}", details=details
        )
        if facts is None:
            raise _no_event(event_id)
        return SaleView(facts, sale_status(facts.window, now, sold_out=facts.sold_out))

    # --- bookings ------------------------------------------------------------------------------------------

    async def booking(self, booking_id: uuid.UUID) -> B:
        return await self._bookings.show(booking_id)

    async def cancel_booking(self, actor: str, booking_id: uuid.UUID, reason: str = "") -> B:
        booking = await self._bookings.cancel(booking_id, _reason(reason) or f"cancelled by operator {actor}")
        await self._events.audit(
            actor=actor, action="booking.cancel", target=f"booking:{booking_id}",
            details={"reason": reason, "status": booking.status},
        )
        return booking

    async def refund_booking(self, actor: str, booking_id: uuid.UUID, reason: str = "") -> B:
        booking = await self._bookings.refund(booking_id, _reason(reason) or f"refunded by operator {actor}")
        await self._events.audit(
            actor=actor, action="booking.refund", target=f"booking:{booking_id}",
            details={"reason": reason, "status": booking.status},
        )
        return booking

    async def reconcile(self, actor: str, *, apply: bool, since_seconds: float | None = None) -> ReconcileOutcome:
        if since_seconds is not None and since_seconds <= 0:
            raise InvalidArgument("since", "a positive duration, or unset for every booking")
        outcome = await self._bookings.reconcile(apply=apply, since_seconds=since_seconds)
        if apply:
            await self._events.audit(
                actor=actor, action="bookings.reconcile", target="bookings",
                details={"repaired": outcome.repaired, "consistent": outcome.consistent, "since_seconds": since_seconds},
            )
        return outcome


def _no_event(event_id: int) -> NotFound:
    return NotFound("EVENT_NOT_FOUND", f"event {event_id} does not exist", event_id=event_id)
