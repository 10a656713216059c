"""The admin service's adapters: event settings and the audit log in PostgreSQL, and booking's use cases.

A waiting-room or sale change and its audit row are one transaction (the catalog's change-capture trigger adds the
outbox row for search in it too); the event's cached details are invalidated after the commit (``tix.catalog``), so
event pages show the new state at once."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from redis.asyncio import Redis
from sqlalchemy import Row, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from admin_svc.domain import LineCounts, ReconcileOutcome, RoomSettings, SaleFacts
from booking_svc.domain import BookingService
from booking_svc.payments import PaymentGateway
from booking_svc.reconcile import reconcile_bookings
from booking_svc.repository import BookingRecord, BookingRepository
from queue_svc.domain import WaitingRoom
from queue_svc.repository import RedisQueueRepository
from tix import audit
from tix.catalog import invalidate_event
from tix.logs import get_logger
from tix.sales import SaleWindow

log = get_logger("admin_svc")

# The waiting-room columns an operator may change (nothing else reaches the UPDATE).
_ROOM_COLUMNS = frozenset({"queue_enabled", "queue_paused", "queue_rate_per_second", "queue_max_active"})

_ROOM = (
    "SELECT event_id, queue_enabled, queue_paused, queue_rate_per_second, queue_max_active, sale_starts_at"
    " FROM events WHERE event_id = :e"
)
_SALE = (
    "SELECT event_id, starts_at, sale_starts_at, sale_ends_at, cancelled, availability_band = 'sold_out' AS sold_out,"
    " (SELECT count(*) FROM bookings b WHERE b.event_id = :e AND b.status = 'confirmed') AS confirmed"
    " FROM events WHERE event_id = :e"
)
_SALE_CHANGES = {
    # The sale starts now unless it started already; an earlier close is lifted.
    "open": "sale_starts_at = LEAST(sale_starts_at, :at), sale_ends_at = NULL",
    "close": "sale_ends_at = :at",
    "cancel": "cancelled = true",
}


def _room(row: Row[Any]) -> RoomSettings:
    return RoomSettings(
        row.event_id, row.queue_enabled, row.queue_paused, row.queue_rate_per_second, row.queue_max_active,
        row.sale_starts_at,
    )


def _sale(row: Row[Any]) -> SaleFacts:
    window = SaleWindow(row.starts_at, row.sale_starts_at, row.sale_ends_at, row.cancelled)
    return SaleFacts(row.event_id, window, bool(row.sold_out), int(row.confirmed))


class EventControlsRepository:
    def __init__(self, engine: AsyncEngine, redis: Redis) -> None:
        self._engine = engine
        self._redis = redis

    async def room_settings(self, event_id: int) -> RoomSettings | None:
        async with self._engine.connect() as conn:
            row = (await conn.execute(text(_ROOM), {"e": event_id})).first()
        return _room(row) if row is not None else None

    async def change_room(
        self, event_id: int, changes: Mapping[str, object], *, actor: str, action: str, details: Mapping[str, object]
    ) -> RoomSettings | None:
        unknown = set(changes) - _ROOM_COLUMNS
        if unknown or not changes:
            raise ValueError(f"not a waiting-room setting: {sorted(unknown)}")
        assignments = ", ".join(f"{column} = :{column}" for column in sorted(changes))
        async with self._engine.begin() as conn:
            row = (
                await conn.execute(
                    text(f"UPDATE events SET {assignments}, updated_at = now() WHERE event_id = :e RETURNING event_id"),
                    {**changes, "e": event_id},
                )
            ).first()
            if row is None:
                return None
            await self._changed(conn, event_id, actor=actor, action=action, details=details)
            settings = _room((await conn.execute(text(_ROOM), {"e": event_id})).one())
        await invalidate_event(self._redis, event_id)
        return settings

    async def sale_facts(self, event_id: int) -> SaleFacts | None:
        async with self._engine.connect() as conn:
            row = (await conn.execute(text(_SALE), {"e": event_id})).first()
        return _sale(row) if row is not None else None

    async def change_sale(
        self, event_id: int, change: str, at: datetime, *, actor: str, action: str, details: Mapping[str, object]
    ) -> SaleFacts | None:
        assignment = _SALE_CHANGES[change]
        async with self._engine.begin() as conn:
            row = (
                await conn.execute(
                    text(f"UPDATE events SET {assignment}, updated_at = now() WHERE event_id = :e RETURNING event_id"),
                    {"e": event_id, "at": at},
                )
            ).first()
            if row is None:
                return None
            await self._changed(conn, event_id, actor=actor, action=action, details=details)
            facts = _sale((await conn.execute(text(_SALE), {"e": event_id})).one())
        await invalidate_event(self._redis, event_id)
        return facts

    async def audit(self, *, actor: str, action: str, target: str, details: Mapping[str, object]) -> None:
        async with self._engine.begin() as conn:
            await audit.record(conn, actor=actor, action=action, target=target, details=details)

    async def _changed(
        self, conn: AsyncConnection, event_id: int, *, actor: str, action: str, details: Mapping[str, object]
    ) -> None:
        await audit.record(conn, actor=actor, action=action, target=f"event:{event_id}", details=details)


class QueueLine:
    """The admin domain's ``LineReader``: the queue's repository reads the line (one script, one instant) and its
    settings, and the waiting room's own pace rule says how fast it moves, as fans are told."""

    def __init__(self, repository: RedisQueueRepository, room: WaitingRoom) -> None:
        self._repository = repository
        self._room = room

    async def line_counts(self, event_id: int) -> LineCounts:
        line = await self._repository.line_state(event_id)
        settings = await self._repository.waiting_room_settings(event_id)
        pace = self._room.pace(line, settings) if settings is not None else 0.0
        return LineCounts(
            waiting=line.waiting + line.pre_queue,
            pre_queue=line.pre_queue,
            admitted=line.serving,
            active=line.active,
            admission_rate=max(line.admission_rate, 0.0),
            pace=pace,
        )


class BookingOperations:
    """Booking's use cases and Stripe adapter behind the admin domain's ``OperatorBookings`` port."""

    def __init__(self, bookings: BookingService, repository: BookingRepository, payments: PaymentGateway) -> None:
        self._bookings = bookings
        self._repository = repository
        self._payments = payments

    async def show(self, booking_id: uuid.UUID) -> BookingRecord:
        return await self._bookings.booking_for_operator(booking_id)

    async def cancel(self, booking_id: uuid.UUID, reason: str) -> BookingRecord:
        return await self._bookings.cancel_for_operator(booking_id, reason)

    async def refund(self, booking_id: uuid.UUID, reason: str) -> BookingRecord:
        return await self._bookings.refund_for_operator(booking_id, reason)

    async def reconcile(self, *, apply: bool, since_seconds: float | None = None) -> ReconcileOutcome:
        report = await reconcile_bookings(
            self._bookings, self._repository, self._payments, apply=apply, since_seconds=since_seconds
        )
        return ReconcileOutcome(
            checked=report.checked,
            paid_not_confirmed=report.paid_not_confirmed,
            open_intents_of_ended_bookings=report.open_intents_of_ended_bookings,
            refunds_owed=report.refunds_owed,
            repaired=report.repaired,
            ticket_mismatches=tuple(report.ticket_mismatches),
            unresolved=tuple(report.unresolved),
            consistent=report.consistent(apply),
            summary=report.summary(),
        )
