"""PostgreSQL access of the booking service: small, named operations, each one transaction.

The rules that make double booking impossible live in these statements:
- a reservation moves ticket rows to ``reserved`` only where each is ``available`` or its reservation has expired,
  and only if it moves every requested row (else the whole transaction rolls back);
- every reservation draws a token from ``booking_fence_seq`` in the reserving statement itself and stores it on
  the booking and on each of its ticket rows. What it guards, exactly: every later write to those rows on the
  booking's behalf (confirm, cancel, expiry, withdrawal) matches ``booking_id``, that token and ``status =
  'reserved'``, so once a newer reservation has taken the rows over (after this hold expired) they carry another
  booking and a larger token, and the old booking's late confirm, cancel or expiry changes none of them. A late
  payment's rebooking draws a new token and takes only rows that are still the booking's or free. What it does not
  do: nobody outside PostgreSQL carries the token (the Redis holder only knows its booking id), and the reserving
  statement's ``t.fence < token`` holds by construction (a fresh sequence value); a stale Redis holder is stopped
  by the status condition above, not by the token;
- rows are locked in seat order (``ORDER BY seat_id FOR UPDATE``) so overlapping multi-seat requests never deadlock.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from booking_svc.blocks import BestAvailableQuery, FreeSeat, candidate_blocks
from booking_svc.model import (
    BookedSeatDetail,
    BookingRecord,
    BookingStatus,
    CatalogSeat,
    EventCatalog,
    EventRules,
    OwedCancellation,
    PaymentStatus,
    ReleasedBooking,
    ReserveOutcome,
    ReserveResult,
    SettleOutcome,
    SettleResult,
    StripeEventRecord,
    TicketDrift,
)
from tix.inventory import ensure_tickets
from tix.seatfeed import NEXT_VERSION, SeatChange

_CATALOG = text(
    """
    SELECT t.seat_id, ls.section_id, ls.row_label, ls.number, ls.price_tier, ls.rank, t.price_minor
    FROM tickets t
    JOIN events e ON e.event_id = t.event_id
    JOIN venues v ON v.venue_id = e.venue_id
    JOIN layout_seats ls ON ls.layout_id = v.layout_id AND ls.seat_id = t.seat_id
    WHERE t.event_id = :event_id
    """
)

_SELLABLE = text(
    """
    SELECT seat_id FROM tickets
    WHERE event_id = :event_id
      AND (status = 'available' OR (status = 'reserved' AND reserved_until < now()))
      AND (CAST(:section_id AS text) IS NULL OR section_id = :section_id)
    """
)

# Best-available with Redis down: the best free seats by rank from the partial index ix_tickets_event_free_rank,
# a bounded number of them (no lock: the block chosen among them is locked below).
_BEST_FREE_SEATS = text(
    """
    SELECT t.seat_id, ls.section_id, ls.row_label, ls.number, t.rank
    FROM tickets t
    JOIN events e ON e.event_id = t.event_id
    JOIN venues v ON v.venue_id = e.venue_id
    JOIN layout_seats ls ON ls.layout_id = v.layout_id AND ls.seat_id = t.seat_id
    WHERE t.event_id = :event_id AND t.status = 'available'
      AND (CAST(:section_id AS text) IS NULL OR t.section_id = :section_id)
      AND (CAST(:tier AS integer) = 0 OR ls.price_tier = :tier)
      AND NOT (t.seat_id = ANY(:excluded))
    ORDER BY t.rank
    LIMIT :limit
    """
)
# Lock a candidate block, skipping seats another fan's transaction has locked: all of them or try the next block.
_LOCK_FREE = text(
    """
    SELECT seat_id FROM tickets
    WHERE event_id = :event_id AND seat_id = ANY(:seat_ids) AND status = 'available'
    ORDER BY seat_id
    FOR UPDATE SKIP LOCKED
    """
)
# Seats looked at per requested seat on the database path; candidate blocks concurrent fans spread over; rounds.
_FREE_SEATS_PER_WANTED = 48
_SPREAD = 8
_ROUNDS = 4

_BOOKING = text(
    """
    SELECT b.booking_id, b.event_id, b.user_id, b.status, b.status_reason, b.seat_ids, b.seat_prices, b.total_minor,
           b.currency, b.fence, b.request_id, b.created_at, b.expires_at, b.confirmed_at,
           p.payment_intent_id, p.client_secret, coalesce(p.status, 'requires_payment') AS payment_status,
           coalesce(p.amount_minor, b.total_minor) AS amount_minor, p.refund_id
    FROM bookings b LEFT JOIN payments p ON p.booking_id = b.booking_id
    """
)

_SEAT_DETAILS = text(
    """
    SELECT ls.seat_id, ls.section_id, ls.row_label, ls.number
    FROM events e
    JOIN venues v ON v.venue_id = e.venue_id
    JOIN layout_seats ls ON ls.layout_id = v.layout_id
    WHERE e.event_id = :event_id AND ls.seat_id = ANY(:seat_ids)
    """
)

# Rows are locked in seat order first, so two overlapping requests queue instead of deadlocking; the UPDATE then
# re-checks each row's latest version (READ COMMITTED re-evaluation) before moving it.
_RESERVE_TICKETS = text(
    f"""
    WITH fence AS MATERIALIZED (SELECT nextval('booking_fence_seq') AS value),
    target AS (
        SELECT seat_id, status FROM tickets
        WHERE event_id = :event_id AND seat_id = ANY(:seat_ids)
        ORDER BY seat_id
        FOR UPDATE
    )
    UPDATE tickets t
    SET status = 'reserved', booking_id = :booking_id, fence = fence.value,
        reserved_until = now() + make_interval(secs => :hold_seconds), version = {NEXT_VERSION}
    FROM target, fence
    WHERE t.event_id = :event_id AND t.seat_id = target.seat_id AND t.fence < fence.value
      AND (t.status = 'available' OR (t.status = 'reserved' AND t.reserved_until < now()))
    RETURNING t.seat_id, t.price_minor, fence.value AS fence, t.section_id, target.status AS previous, t.version
    """
)

# A new booking and its payment row in one statement, returned in the shape of _BOOKING.
_INSERT_BOOKING = text(
    """
    WITH booking AS (
        INSERT INTO bookings (booking_id, event_id, user_id, status, seat_ids, seat_prices, total_minor, currency,
                              fence, request_id, admission_ticket, expires_at)
        SELECT :booking_id, :event_id, :user_id, 'reserved', :seat_ids, :prices, :total, :currency, :fence,
               :request_id, :admission_ticket, reserved_until
        FROM tickets WHERE event_id = :event_id AND seat_id = :first_seat
        ON CONFLICT DO NOTHING
        RETURNING *
    ),
    payment AS (
        INSERT INTO payments (booking_id, amount_minor, currency, status)
        SELECT booking_id, total_minor, currency, 'requires_payment' FROM booking
        RETURNING booking_id
    )
    SELECT b.booking_id, b.event_id, b.user_id, b.status, b.status_reason, b.seat_ids, b.seat_prices,
           b.total_minor, b.currency, b.fence, b.request_id, b.created_at, b.expires_at, b.confirmed_at,
           NULL::text AS payment_intent_id, NULL::text AS client_secret, 'requires_payment' AS payment_status,
           b.total_minor AS amount_minor, NULL::text AS refund_id
    FROM booking b JOIN payment USING (booking_id)
    """
)

# Late payment: the booking's own rows, or rows free again, become booked under a new fence.
_REBOOK_TICKETS = text(
    f"""
    WITH target AS (
        SELECT seat_id, status FROM tickets
        WHERE event_id = :event_id AND seat_id = ANY(:seat_ids)
        ORDER BY seat_id
        FOR UPDATE
    )
    UPDATE tickets t
    SET status = 'booked', booking_id = :booking_id, fence = :fence, reserved_until = NULL,
        version = {NEXT_VERSION}
    FROM target
    WHERE t.event_id = :event_id AND t.seat_id = target.seat_id AND t.fence < :fence
      AND (t.booking_id = :booking_id OR t.status = 'available'
           OR (t.status = 'reserved' AND t.reserved_until < now()))
    RETURNING t.seat_id, t.section_id, target.status AS previous, t.version
    """
)

_FREE_TICKETS = text(
    f"""
    UPDATE tickets SET status = 'available', booking_id = NULL, reserved_until = NULL, version = {NEXT_VERSION}
    WHERE event_id = :event_id AND booking_id = :booking_id AND fence = :fence AND status = 'reserved'
    RETURNING seat_id, section_id, 'reserved' AS previous, version
    """
)


# A refunded booking's seats go back on sale (tix bookings' operator refund).
_FREE_BOOKED_TICKETS = text(
    f"""
    UPDATE tickets SET status = 'available', booking_id = NULL, reserved_until = NULL, version = {NEXT_VERSION}
    WHERE event_id = :event_id AND booking_id = :booking_id AND status = 'booked'
    RETURNING seat_id, section_id, 'booked' AS previous, version
    """
)


def _seat_changes(rows: Sequence[Row[Any]], status: str) -> tuple[tuple[SeatChange, ...], int]:
    """Rows returned by a ticket update (seat_id, section_id, previous, version) as published changes, and the
    batch's seat-map version."""
    changes = tuple(SeatChange(r.seat_id, r.section_id, r.previous, status) for r in rows)
    return changes, max((int(r.version) for r in rows), default=0)


def _record(row: Row[Any]) -> BookingRecord:
    m = row._mapping
    return BookingRecord(
        booking_id=m["booking_id"],
        event_id=m["event_id"],
        user_id=m["user_id"],
        status=BookingStatus(m["status"]),
        status_reason=m["status_reason"],
        seat_ids=tuple(m["seat_ids"]),
        seat_prices=tuple(m["seat_prices"]),
        total_minor=m["total_minor"],
        currency=m["currency"],
        fence=m["fence"],
        request_id=m["request_id"],
        created_at=m["created_at"],
        expires_at=m["expires_at"],
        confirmed_at=m["confirmed_at"],
        payment_intent_id=m["payment_intent_id"],
        client_secret=m["client_secret"],
        payment_status=PaymentStatus(m["payment_status"]),
        amount_minor=m["amount_minor"],
        refund_id=m["refund_id"],
    )


class BookingRepository:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        # Reads and single-statement writes need no transaction: in autocommit they cost one round trip instead
        # of three (BEGIN, statement, COMMIT/ROLLBACK). Same pool.
        self._single = engine.execution_options(isolation_level="AUTOCOMMIT")

    # --- catalog -------------------------------------------------------------------------------------------

    async def load_event_catalog(
        self, event_id: int, known_seats: dict[str, CatalogSeat] | None = None
    ) -> EventCatalog | None:
        """The event's rules, and its seats unless ``known_seats`` (from an earlier load) are given: seats and
        prices never change once tickets exist, so a refresh re-reads only the rules (one row, not 70,000)."""
        async with self._engine.begin() as conn:
            row = (
                await conn.execute(
                    text(
                        "SELECT event_id, sale_starts_at, starts_at, sale_ends_at, cancelled, max_seats_per_user, queue_enabled,"
                        " currency FROM events WHERE event_id = :event_id"
                    ),
                    {"event_id": event_id},
                )
            ).first()
            if row is None:
                return None
            if known_seats is not None:
                return EventCatalog(EventRules(**row._mapping), known_seats)
            await ensure_tickets(conn, event_id)
            seats = {
                r.seat_id: CatalogSeat(r.seat_id, r.section_id, r.row_label, r.number, r.price_tier, r.rank,
                                       r.price_minor)
                for r in await conn.execute(_CATALOG, {"event_id": event_id})
            }
        return EventCatalog(EventRules(**row._mapping), seats)

    async def ensure_event_tickets(self, event_id: int) -> None:
        """Materialise the event's ticket rows if nobody has yet (one cheap read once they exist)."""
        async with self._engine.begin() as conn:
            await ensure_tickets(conn, event_id)

    async def sellable_seat_ids(self, event_id: int, section_id: str | None) -> set[str]:
        """Seats that are free or whose reservation has expired (held keys in Redis may still refuse some)."""
        async with self._single.connect() as conn:
            rows = await conn.scalars(_SELLABLE, {"event_id": event_id, "section_id": section_id})
            return set(rows)

    # --- reservations --------------------------------------------------------------------------------------

    async def reserve(
        self,
        *,
        booking_id: uuid.UUID,
        event_id: int,
        user_id: str,
        seat_ids: Sequence[str],
        currency: str,
        hold_seconds: int,
        max_seats_per_user: int,
        request_id: str | None,
        admission_ticket: str | None = None,
        best_available: BestAvailableQuery | None = None,
    ) -> ReserveResult:
        """Reserve exactly ``seat_ids`` for a new booking, all or nothing, with its payments row. Four statements:
        the fan's lock, the duplicate, admission and seat-limit checks, the conditional ticket update (which draws
        the fence), and the booking with its payment row. ``admission_ticket`` (the queue ticket an admission token
        names) is spent by this booking: the fan's lock serializes the check, a unique index backs it. With
        ``best_available`` (and no ``seat_ids``: the database path of best-available, Redis down) the seats are
        chosen after the checks, a block this transaction could lock among the best free ones."""
        async with self._engine.connect() as conn, conn.begin() as tx:
                # One fan's reservations for one event run one at a time, so the seat limit cannot be raced.
                await conn.execute(
                    text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"),
                    {"key": f"tix:booking:{event_id}:{user_id}"},
                )
                existing, active, spent = (
                    await conn.execute(
                        text(
                            "SELECT (SELECT booking_id FROM bookings WHERE booking_id = :booking_id"
                            "          OR (CAST(:request_id AS text) IS NOT NULL AND user_id = :user_id"
                            "              AND request_id = :request_id) LIMIT 1),"
                            " (SELECT coalesce(sum(cardinality(seat_ids)), 0) FROM bookings"
                            "   WHERE event_id = :event_id AND user_id = :user_id AND (status = 'confirmed'"
                            "   OR (status = 'reserved' AND expires_at > now()))),"
                            " (CAST(:ticket AS text) IS NOT NULL AND EXISTS (SELECT 1 FROM bookings"
                            "   WHERE admission_ticket = :ticket))"
                        ),
                        {
                            "booking_id": booking_id, "request_id": request_id, "user_id": user_id,
                            "event_id": event_id, "ticket": admission_ticket,
                        },
                    )
                ).one()
                if existing is not None:
                    return ReserveResult(ReserveOutcome.DUPLICATE, booking_id=booking_id)
                if spent:
                    return ReserveResult(ReserveOutcome.ADMISSION_USED)
                wanted = best_available.quantity if best_available is not None else len(seat_ids)
                if int(active) + wanted > max_seats_per_user:
                    return ReserveResult(ReserveOutcome.LIMIT_EXCEEDED, active_seats=int(active))
                if best_available is not None:
                    chosen = await self._lock_best_block(conn, event_id, booking_id, best_available)
                    if chosen is None:
                        return ReserveResult(ReserveOutcome.NO_BLOCK)
                    seat_ids = chosen
                moved_rows = (
                    await conn.execute(
                        _RESERVE_TICKETS,
                        {
                            "event_id": event_id,
                            "seat_ids": list(seat_ids),
                            "booking_id": booking_id,
                            "hold_seconds": hold_seconds,
                        },
                    )
                ).all()
                moved = {r.seat_id: r.price_minor for r in moved_rows}
                if len(moved) != len(seat_ids):
                    await tx.rollback()
                    return ReserveResult(
                        ReserveOutcome.SEATS_TAKEN,
                        unavailable_seat_ids=tuple(s for s in seat_ids if s not in moved),
                    )
                fence = int(moved_rows[0].fence)
                prices = [moved[s] for s in seat_ids]
                created = (
                    await conn.execute(
                        _INSERT_BOOKING,
                        {
                            "booking_id": booking_id,
                            "event_id": event_id,
                            "user_id": user_id,
                            "seat_ids": list(seat_ids),
                            "prices": prices,
                            "total": sum(prices),
                            "currency": currency,
                            "fence": fence,
                            "request_id": request_id,
                            "admission_ticket": admission_ticket,
                            "first_seat": seat_ids[0],
                        },
                    )
                ).first()
                if created is None:
                    # The same request id reached another event's booking first: that booking is the answer.
                    await tx.rollback()
                    return ReserveResult(ReserveOutcome.DUPLICATE, booking_id=booking_id)
        record = _record(created)
        changes, version = _seat_changes(moved_rows, "reserved")
        return ReserveResult(
            ReserveOutcome.RESERVED, booking_id=booking_id, fence=fence, record=record, seat_changes=changes,
            version=version,
        )

    async def _lock_best_block(
        self, conn: AsyncConnection, event_id: int, booking_id: uuid.UUID, wish: BestAvailableQuery
    ) -> list[str] | None:
        """The database path's block: read the best free seats (bounded, from the rank index), rank candidate
        blocks (booking_svc.blocks), and lock one with SKIP LOCKED. Concurrent fans start at different candidates
        among the best few (by booking id), so they rarely meet; a block partly locked by someone else is passed
        over."""
        excluded: list[str] = []
        for _ in range(_ROUNDS):
            free = [
                FreeSeat(r.seat_id, r.section_id, r.row_label, r.number, r.rank)
                for r in await conn.execute(
                    _BEST_FREE_SEATS,
                    {"event_id": event_id, "section_id": wish.section_id, "tier": wish.price_tier,
                     "excluded": excluded, "limit": _FREE_SEATS_PER_WANTED * wish.quantity},
                )
            ]
            blocks = candidate_blocks(free, wish.quantity)
            if not blocks:
                return None
            spread = min(_SPREAD, len(blocks))
            first = booking_id.int % spread
            for block in blocks[first:spread] + blocks[:first] + blocks[spread:]:
                locked = list(await conn.scalars(_LOCK_FREE, {"event_id": event_id, "seat_ids": block}))
                if len(locked) == len(block):
                    return block
                excluded.extend(block)
                if len(excluded) > _FREE_SEATS_PER_WANTED * wish.quantity // 2:
                    break
        return None

    async def booking_states(self, booking_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, tuple[str, tuple[str, ...]]]:
        """Status and seats of the bookings that exist among ``booking_ids`` (for the hold reaper)."""
        if not booking_ids:
            return {}
        async with self._single.connect() as conn:
            rows = await conn.execute(
                text("SELECT booking_id, status, seat_ids FROM bookings WHERE booking_id = ANY(:ids)"),
                {"ids": list(booking_ids)},
            )
            return {r.booking_id: (r.status, tuple(r.seat_ids)) for r in rows}

    async def booking_id_for_request(self, user_id: str, request_id: str) -> uuid.UUID | None:
        async with self._single.connect() as conn:
            booking_id: uuid.UUID | None = await conn.scalar(
                text("SELECT booking_id FROM bookings WHERE user_id = :user_id AND request_id = :request_id"),
                {"user_id": user_id, "request_id": request_id},
            )
        return booking_id

    async def withdraw_unpaid_reservation(self, booking_id: uuid.UUID) -> ReleasedBooking | None:
        """Undo a reservation that never reached the fan (no PaymentIntent could be made): free its seats and
        remove the booking, so a retry with the same request id starts afresh.

        Only while no PaymentIntent is attached: a retry with the same request id (another replica, or this one)
        may have attached one and handed its client secret to the fan, and that booking must stay payable. The
        booking and payment rows are locked together, so this and ``attach_payment_intent`` are serialized: one
        of them sees the other's result. None when nothing was withdrawn (gone already, or an intent attached)."""
        async with self._engine.begin() as conn:
            row = (
                await conn.execute(
                    text(
                        "SELECT b.event_id, b.seat_ids, b.fence, p.payment_intent_id FROM bookings b"
                        " JOIN payments p USING (booking_id) WHERE b.booking_id = :booking_id"
                        " AND b.status = 'reserved' FOR UPDATE OF b, p"
                    ),
                    {"booking_id": booking_id},
                )
            ).first()
            if row is None or row.payment_intent_id is not None:
                return None
            freed = (
                await conn.execute(
                    _FREE_TICKETS, {"event_id": row.event_id, "booking_id": booking_id, "fence": row.fence}
                )
            ).all()
            await conn.execute(text("DELETE FROM payments WHERE booking_id = :b"), {"b": booking_id})
            await conn.execute(text("DELETE FROM bookings WHERE booking_id = :b"), {"b": booking_id})
        changes, version = _seat_changes(freed, "available")
        return ReleasedBooking(
            booking_id, row.event_id, tuple(row.seat_ids), tuple(r.seat_id for r in freed), None,
            seat_changes=changes, version=version,
        )

    async def attach_payment_intent(
        self, booking_id: uuid.UUID, payment_intent_id: str, client_secret: str, status: PaymentStatus
    ) -> tuple[str, str, PaymentStatus] | None:
        """Store the booking's PaymentIntent; returns the one stored (id, client secret, status). The first intent
        stored stays: a retry never swaps the one the fan may be paying. None when the booking was withdrawn
        (see ``withdraw_unpaid_reservation``) or is no longer reserved (cancelled, expired): the intent pays for
        nothing and must not reach the fan. The booking row is locked (FOR SHARE) while the intent is stored, so a
        cancellation or expiry either comes first (nothing is stored) or waits and then reads the stored intent
        (``cancel`` and ``expire_overdue`` read payments after taking the booking's lock) and cancels it."""
        async with self._single.connect() as conn:
            row = (
                await conn.execute(
                    text(
                        "WITH live AS (SELECT booking_id FROM bookings WHERE booking_id = :booking_id"
                        "   AND status = 'reserved' FOR SHARE),"
                        " attached AS (UPDATE payments p SET payment_intent_id = :pi, client_secret = :secret,"
                        "   status = :status, updated_at = now() FROM live WHERE p.booking_id = live.booking_id"
                        "   AND (p.payment_intent_id IS NULL OR p.payment_intent_id = :pi)"
                        "   RETURNING p.payment_intent_id, p.client_secret, p.status)"
                        " SELECT * FROM attached UNION ALL"
                        " SELECT payment_intent_id, client_secret, status FROM payments"
                        "   WHERE booking_id = :booking_id AND NOT EXISTS (SELECT 1 FROM attached)"
                    ),
                    {"booking_id": booking_id, "pi": payment_intent_id, "secret": client_secret, "status": status},
                )
            ).first()
        # The UPDATE waits for a concurrent withdrawal and then finds no row; the SELECT's snapshot may still show
        # the withdrawn row without an intent. Either way nothing was attached.
        if row is None or row.payment_intent_id is None:
            return None
        return row.payment_intent_id, row.client_secret, PaymentStatus(row.status)

    async def get_booking(self, booking_id: uuid.UUID, *, with_seats: bool = True) -> BookingRecord | None:
        async with self._single.connect() as conn:
            row = (await conn.execute(text(f"{_BOOKING.text} WHERE b.booking_id = :b"), {"b": booking_id})).first()
        if row is None:
            return None
        record = _record(row)
        return await self.with_seat_details(record) if with_seats else record

    async def list_user_bookings(
        self, user_id: str, limit: int, after: tuple[datetime, uuid.UUID] | None
    ) -> list[BookingRecord]:
        """One fan's bookings, newest first, after a keyset position (ix_bookings_user_created), with seats."""
        where = "WHERE b.user_id = :user_id"
        params: dict[str, Any] = {"user_id": user_id, "limit": limit}
        if after is not None:
            where += " AND (b.created_at, b.booking_id) < (:created_at, :booking_id)"
            params |= {"created_at": after[0], "booking_id": after[1]}
        query = f"{_BOOKING.text} {where} ORDER BY b.created_at DESC, b.booking_id DESC LIMIT :limit"
        async with self._single.connect() as conn:
            rows = (await conn.execute(text(query), params)).all()
        return [await self.with_seat_details(_record(row)) for row in rows]

    async def with_seat_details(self, record: BookingRecord) -> BookingRecord:
        """The booking with its seats' section, row and number, read from the venue's layout."""
        async with self._single.connect() as conn:
            details = {
                r.seat_id: r
                for r in await conn.execute(
                    _SEAT_DETAILS, {"event_id": record.event_id, "seat_ids": list(record.seat_ids)}
                )
            }
        seats = []
        for seat_id, price in zip(record.seat_ids, record.seat_prices, strict=True):
            d = details.get(seat_id)
            seats.append(
                BookedSeatDetail(seat_id, d.section_id if d else "", d.row_label if d else "", d.number if d else 0,
                                 price)
            )
        return BookingRecord(**{**record.__dict__, "seats": tuple(seats)})

    async def booking_id_for_payment_intent(self, payment_intent_id: str) -> uuid.UUID | None:
        async with self._single.connect() as conn:
            booking_id: uuid.UUID | None = await conn.scalar(
                text("SELECT booking_id FROM payments WHERE payment_intent_id = :pi"), {"pi": payment_intent_id}
            )
        return booking_id

    # --- payment outcomes ----------------------------------------------------------------------------------

    async def settle_payment(
        self, booking_id: uuid.UUID, *, stripe_event: StripeEventRecord | None = None
    ) -> SettleResult:
        """The booking's PaymentIntent has succeeded: confirm it, or (paid after its hold ended) rebook the same
        seats if they are still free, else mark it refunded with the refund owed. With ``stripe_event``, the event
        is recorded in the same transaction, and a duplicate changes nothing."""
        async with self._engine.connect() as conn, conn.begin():
            if stripe_event is not None and not await self._record_event(conn, stripe_event):
                return SettleResult(SettleOutcome.DUPLICATE_EVENT, booking_id)
            row = (
                await conn.execute(
                    text(
                        "SELECT event_id, status, seat_ids, fence, admission_ticket FROM bookings"
                        " WHERE booking_id = :b FOR UPDATE"
                    ),
                    {"b": booking_id},
                )
            ).first()
            if row is None:
                return SettleResult(SettleOutcome.UNKNOWN_BOOKING, booking_id)
            seat_ids = tuple(row.seat_ids)
            base = {
                "booking_id": booking_id, "event_id": row.event_id, "seat_ids": seat_ids,
                "admission_ticket": row.admission_ticket,
            }
            if row.status in ("confirmed", "refunded"):
                await self._set_payment_status(conn, booking_id, "succeeded", only_open=True)
                return SettleResult(SettleOutcome.ALREADY_SETTLED, **base)

            if row.status == "reserved":
                savepoint = await conn.begin_nested()
                booked = (
                    await conn.execute(
                        text(
                            f"UPDATE tickets SET status = 'booked', reserved_until = NULL, version = {NEXT_VERSION}"
                            " WHERE event_id = :event_id AND booking_id = :booking_id AND fence = :fence"
                            " AND status = 'reserved' RETURNING seat_id, section_id, 'reserved' AS previous,"
                            " version"
                        ),
                        {"event_id": row.event_id, "booking_id": booking_id, "fence": row.fence},
                    )
                ).all()
                if len(booked) == len(seat_ids):
                    await savepoint.commit()
                    await self._confirm(conn, booking_id, row.fence, reason="")
                    changes, version = _seat_changes(booked, "booked")
                    return SettleResult(SettleOutcome.CONFIRMED, **base, seat_changes=changes, version=version)
                await savepoint.rollback()

            # Late payment: the hold ended (or part of it was resold) before the money arrived.
            fence = int(await conn.scalar(text("SELECT nextval('booking_fence_seq')")))
            savepoint = await conn.begin_nested()
            rebooked = (
                await conn.execute(
                    _REBOOK_TICKETS,
                    {"event_id": row.event_id, "seat_ids": list(seat_ids), "booking_id": booking_id,
                     "fence": fence},
                )
            ).all()
            if len(rebooked) == len(seat_ids):
                await savepoint.commit()
                await self._confirm(
                    conn, booking_id, fence,
                    reason="paid after the hold ended; the same seats were still free and are booked",
                )
                changes, version = _seat_changes(rebooked, "booked")
                return SettleResult(SettleOutcome.REBOOKED, **base, seat_changes=changes, version=version)
            await savepoint.rollback()
            freed = (
                await conn.execute(_FREE_TICKETS, {"event_id": row.event_id, "booking_id": booking_id,
                                                   "fence": row.fence})
            ).all()
            await conn.execute(
                text(
                    "UPDATE bookings SET status = 'refunded', status_reason = :reason, updated_at = now()"
                    " WHERE booking_id = :b"
                ),
                {
                    "b": booking_id,
                    "reason": "paid after the hold ended and the seats were sold to someone else; "
                    "the payment is refunded",
                },
            )
            await self._set_payment_status(conn, booking_id, "succeeded")
            changes, version = _seat_changes(freed, "available")
            return SettleResult(SettleOutcome.REFUND_OWED, **base, seat_changes=changes, version=version)

    async def _confirm(self, conn: AsyncConnection, booking_id: uuid.UUID, fence: int, *, reason: str) -> None:
        await conn.execute(
            text(
                "UPDATE bookings SET status = 'confirmed', status_reason = :reason, fence = :fence,"
                " confirmed_at = now(), updated_at = now() WHERE booking_id = :b"
            ),
            {"b": booking_id, "fence": fence, "reason": reason},
        )
        await self._set_payment_status(conn, booking_id, "succeeded")

    async def _set_payment_status(
        self, conn: AsyncConnection, booking_id: uuid.UUID, status: str, *, only_open: bool = False
    ) -> None:
        condition = " AND status IN ('requires_payment', 'processing', 'failed', 'canceled')" if only_open else ""
        await conn.execute(
            text(f"UPDATE payments SET status = :status, updated_at = now() WHERE booking_id = :b{condition}"),
            {"b": booking_id, "status": status},
        )

    async def _record_event(self, conn: AsyncConnection, event: StripeEventRecord) -> bool:
        recorded = await conn.scalar(
            text(
                "INSERT INTO stripe_events (stripe_event_id, type) VALUES (:id, :type)"
                " ON CONFLICT DO NOTHING RETURNING stripe_event_id"
            ),
            {"id": event.stripe_event_id, "type": event.type},
        )
        return recorded is not None

    async def record_stripe_event(self, stripe_event: StripeEventRecord) -> bool:
        """Remember a webhook event as processed; False when it was seen before."""
        async with self._engine.begin() as conn:
            return await self._record_event(conn, stripe_event)

    async def record_payment_update(
        self, booking_id: uuid.UUID | None, status: PaymentStatus, *, stripe_event: StripeEventRecord
    ) -> bool:
        """Record a webhook that changes no seats (for example a failed attempt: the hold stays until expiry).
        False when the event was seen before."""
        async with self._engine.begin() as conn:
            if not await self._record_event(conn, stripe_event):
                return False
            if booking_id is not None:
                await conn.execute(
                    text(
                        "UPDATE payments SET status = :status, updated_at = now()"
                        " WHERE booking_id = :b AND status IN ('requires_payment', 'processing', 'failed')"
                    ),
                    {"b": booking_id, "status": status},
                )
        return True

    async def set_payment_status(self, booking_id: uuid.UUID, status: PaymentStatus) -> None:
        async with self._single.begin() as conn:
            await self._set_payment_status(conn, booking_id, status)

    async def record_refund(self, booking_id: uuid.UUID, refund_id: str) -> None:
        async with self._single.begin() as conn:
            await conn.execute(
                text(
                    "UPDATE payments SET refund_id = :refund_id, status = 'refunded', updated_at = now()"
                    " WHERE booking_id = :b"
                ),
                {"b": booking_id, "refund_id": refund_id},
            )

    async def refunds_owed(self, limit: int = 100) -> list[tuple[uuid.UUID, str]]:
        """Refunded bookings whose refund Stripe has not confirmed yet: (booking id, payment intent id)."""
        async with self._single.connect() as conn:
            rows = await conn.execute(
                text(
                    "SELECT b.booking_id, p.payment_intent_id FROM bookings b JOIN payments p USING (booking_id)"
                    " WHERE b.status = 'refunded' AND p.refund_id IS NULL AND p.payment_intent_id IS NOT NULL"
                    " ORDER BY b.updated_at LIMIT :limit"
                ),
                {"limit": limit},
            )
            return [(r.booking_id, r.payment_intent_id) for r in rows]

    # --- PaymentIntent cancellations owed ------------------------------------------------------------------

    async def owe_cancellation(self, payment_intent_id: str, booking_id: uuid.UUID | None, error: str) -> None:
        """Remember that ``payment_intent_id`` must be cancelled (Stripe did not answer); the sweeper retries it."""
        async with self._single.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO payment_cancellations (payment_intent_id, booking_id, attempts, last_error,"
                    " next_attempt_at) VALUES (:pi, :b, 1, :error, now() + make_interval(secs => 2))"
                    " ON CONFLICT (payment_intent_id) DO UPDATE SET last_error = EXCLUDED.last_error"
                ),
                {"pi": payment_intent_id, "b": booking_id, "error": error[:500]},
            )

    async def claim_due_cancellations(self, limit: int, lease_seconds: float) -> list[OwedCancellation]:
        """Cancellations due for a retry, leased to this caller for ``lease_seconds`` (other sweepers skip them)."""
        async with self._single.begin() as conn:
            rows = await conn.execute(
                text(
                    """
                    WITH due AS (
                        SELECT payment_intent_id FROM payment_cancellations
                        WHERE next_attempt_at <= now() ORDER BY next_attempt_at LIMIT :limit
                        FOR UPDATE SKIP LOCKED
                    )
                    UPDATE payment_cancellations c SET next_attempt_at = now() + make_interval(secs => :lease)
                    FROM due WHERE c.payment_intent_id = due.payment_intent_id
                    RETURNING c.payment_intent_id, c.booking_id, c.attempts
                    """
                ),
                {"limit": limit, "lease": lease_seconds},
            )
            return [OwedCancellation(r.payment_intent_id, r.booking_id, r.attempts) for r in rows]

    async def cancellation_done(self, payment_intent_id: str) -> None:
        async with self._single.begin() as conn:
            await conn.execute(
                text("DELETE FROM payment_cancellations WHERE payment_intent_id = :pi"), {"pi": payment_intent_id}
            )

    async def cancellation_failed(self, payment_intent_id: str, error: str) -> None:
        """Another failed attempt: back off exponentially (2 s, 4 s, ... at most 5 minutes)."""
        async with self._single.begin() as conn:
            await conn.execute(
                text(
                    "UPDATE payment_cancellations SET attempts = attempts + 1, last_error = :error,"
                    " next_attempt_at = now() + make_interval(secs => least(300, 2 ^ least(attempts + 1, 9)))"
                    " WHERE payment_intent_id = :pi"
                ),
                {"pi": payment_intent_id, "error": error[:500]},
            )

    async def cancellations_owed(self) -> int:
        async with self._single.connect() as conn:
            return int(await conn.scalar(text("SELECT count(*) FROM payment_cancellations")) or 0)

    # --- releasing holds -----------------------------------------------------------------------------------

    async def cancel(self, booking_id: uuid.UUID, reason: str) -> ReleasedBooking | None:
        """Cancel a reserved booking and free its seats; other statuses are left alone (``status_before``).
        The PaymentIntent is read after the booking's lock is taken, in a statement of its own, so an intent a
        checkout stored while holding that lock is seen (and then cancelled by the caller)."""
        async with self._engine.begin() as conn:
            locked = (
                await conn.execute(
                    text("SELECT b.event_id, b.status, b.seat_ids, b.fence FROM bookings b"
                         " WHERE b.booking_id = :b FOR UPDATE"),
                    {"b": booking_id},
                )
            ).first()
            if locked is None:
                return None
            row = (
                await conn.execute(
                    text(
                        "SELECT b.event_id, b.status, b.seat_ids, b.fence, b.admission_ticket, p.payment_intent_id"
                        " FROM bookings b LEFT JOIN payments p USING (booking_id) WHERE b.booking_id = :b"
                    ),
                    {"b": booking_id},
                )
            ).one()
            if row.status != "reserved":
                return ReleasedBooking(booking_id, row.event_id, tuple(row.seat_ids), (), row.payment_intent_id,
                                       status_before=BookingStatus(row.status))
            freed = (
                await conn.execute(
                    _FREE_TICKETS, {"event_id": row.event_id, "booking_id": booking_id, "fence": row.fence}
                )
            ).all()
            await conn.execute(
                text(
                    "UPDATE bookings SET status = 'cancelled', status_reason = :reason, updated_at = now()"
                    " WHERE booking_id = :b"
                ),
                {"b": booking_id, "reason": reason},
            )
        changes, version = _seat_changes(freed, "available")
        return ReleasedBooking(
            booking_id, row.event_id, tuple(row.seat_ids), tuple(r.seat_id for r in freed), row.payment_intent_id,
            seat_changes=changes, version=version, admission_ticket=row.admission_ticket,
        )

    async def refund_confirmed(self, booking_id: uuid.UUID, reason: str) -> ReleasedBooking | None:
        """An operator's refund: a confirmed booking becomes refunded (the refund is then owed until Stripe's
        refund is recorded) and its seats go back on sale; other statuses are left alone (``status_before``)."""
        async with self._engine.begin() as conn:
            row = (
                await conn.execute(
                    text(
                        "SELECT b.event_id, b.status, b.seat_ids, p.payment_intent_id FROM bookings b"
                        " LEFT JOIN payments p USING (booking_id) WHERE b.booking_id = :b FOR UPDATE OF b"
                    ),
                    {"b": booking_id},
                )
            ).first()
            if row is None:
                return None
            if row.status != "confirmed":
                return ReleasedBooking(booking_id, row.event_id, tuple(row.seat_ids), (), row.payment_intent_id,
                                       status_before=BookingStatus(row.status))
            freed = (await conn.execute(_FREE_BOOKED_TICKETS, {"event_id": row.event_id, "booking_id": booking_id})).all()
            await conn.execute(
                text(
                    "UPDATE bookings SET status = 'refunded', status_reason = :reason, updated_at = now()"
                    " WHERE booking_id = :b"
                ),
                {"b": booking_id, "reason": reason},
            )
        changes, version = _seat_changes(freed, "available")
        return ReleasedBooking(
            booking_id, row.event_id, tuple(row.seat_ids), tuple(r.seat_id for r in freed), row.payment_intent_id,
            status_before=BookingStatus.CONFIRMED, seat_changes=changes, version=version,
        )

    async def expire_overdue(self, limit: int) -> list[ReleasedBooking]:
        """Expire one batch of reserved bookings past their deadline. Replicas share the work: rows another
        sweeper has locked are skipped, not waited for."""
        async with self._engine.begin() as conn:
            expired = list(
                await conn.execute(
                    text(
                        """
                        WITH due AS (
                            SELECT booking_id FROM bookings
                            WHERE status = 'reserved' AND expires_at < now()
                            ORDER BY expires_at
                            LIMIT :limit
                            FOR UPDATE SKIP LOCKED
                        )
                        UPDATE bookings b
                        SET status = 'expired', status_reason = 'the hold ended before payment', updated_at = now()
                        FROM due WHERE b.booking_id = due.booking_id
                        RETURNING b.booking_id, b.event_id, b.seat_ids, b.fence, b.admission_ticket
                        """
                    ),
                    {"limit": limit},
                )
            )
            if not expired:
                return []
            freed: dict[uuid.UUID, list[Row[Any]]] = {}
            for r in await conn.execute(
                text(
                    f"""
                    UPDATE tickets t SET status = 'available', booking_id = NULL, reserved_until = NULL,
                                         version = {NEXT_VERSION}
                    FROM unnest(CAST(:ids AS uuid[]), CAST(:fences AS bigint[])) AS x(booking_id, fence)
                    WHERE t.booking_id = x.booking_id AND t.fence = x.fence AND t.status = 'reserved'
                    RETURNING x.booking_id, t.seat_id, t.section_id, 'reserved' AS previous, t.version
                    """
                ),
                {"ids": [r.booking_id for r in expired], "fences": [r.fence for r in expired]},
            ):
                freed.setdefault(r.booking_id, []).append(r)
            intents = {
                r.booking_id: r.payment_intent_id
                for r in await conn.execute(
                    text("SELECT booking_id, payment_intent_id FROM payments WHERE booking_id = ANY(:ids)"),
                    {"ids": [r.booking_id for r in expired]},
                )
            }
        released = []
        for r in expired:
            rows = freed.get(r.booking_id, [])
            changes, version = _seat_changes(rows, "available")
            released.append(
                ReleasedBooking(
                    r.booking_id, r.event_id, tuple(r.seat_ids), tuple(f.seat_id for f in rows),
                    intents.get(r.booking_id), seat_changes=changes, version=version,
                    admission_ticket=r.admission_ticket,
                )
            )
        return released

    # --- reconciliation ------------------------------------------------------------------------------------

    async def unsettled_payments(
        self, limit: int = 10_000, since_seconds: float | None = None
    ) -> list[tuple[uuid.UUID, BookingStatus, str]]:
        """Bookings not confirmed whose PaymentIntent we have not seen end (cancelled or refunded): the ones a
        lost webhook could have left paid without a ticket; with ``since_seconds``, only bookings changed within
        that time. (booking id, booking status, payment intent id)."""
        async with self._single.connect() as conn:
            rows = await conn.execute(
                text(
                    "SELECT b.booking_id, b.status, p.payment_intent_id FROM bookings b JOIN payments p"
                    " USING (booking_id) WHERE p.payment_intent_id IS NOT NULL"
                    " AND b.status IN ('reserved', 'cancelled', 'expired')"
                    " AND p.status NOT IN ('canceled', 'refunded')"
                    " AND (CAST(:since AS double precision) IS NULL"
                    "      OR greatest(b.updated_at, p.updated_at) > now() - make_interval(secs => CAST(:since AS double precision)))"
                    " ORDER BY b.created_at LIMIT :limit"
                ),
                {"limit": limit, "since": since_seconds},
            )
            return [(r.booking_id, BookingStatus(r.status), r.payment_intent_id) for r in rows]

    async def confirmed_ticket_drift(self) -> list[TicketDrift]:
        """Confirmed bookings whose booked ticket rows do not match their seats."""
        async with self._single.connect() as conn:
            rows = await conn.execute(
                text(
                    """
                    SELECT b.booking_id, cardinality(b.seat_ids) AS expected,
                           count(t.seat_id) FILTER (WHERE t.status = 'booked' AND t.seat_id = ANY(b.seat_ids))
                               AS booked
                    FROM bookings b
                    LEFT JOIN tickets t ON t.event_id = b.event_id AND t.booking_id = b.booking_id
                    WHERE b.status = 'confirmed'
                    GROUP BY b.booking_id
                    HAVING count(t.seat_id) FILTER (WHERE t.status = 'booked' AND t.seat_id = ANY(b.seat_ids))
                           <> cardinality(b.seat_ids)
                    """
                )
            )
            return [TicketDrift(r.booking_id, r.expected, r.booked) for r in rows]
