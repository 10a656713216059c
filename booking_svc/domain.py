"""Booking rules: hold seats, take payment, confirm, cancel, expire. Settling payments (webhook, confirm, late
payment, refund) is ``settlement``'s. Pure: no grpc, redis, sqlalchemy or stripe here; the stores are the Protocols
of ``ports`` (PostgreSQL ``repository``, Redis ``holds``, Stripe ``payments``, the seat feed), wired in ``server``.

Choices made here (see ``holds`` for Redis-down and fencing):
- Checkout (``defer_payment``): the hold is only a hold; the PaymentIntent is made when the fan proceeds to pay
  (``checkout_booking``, idempotent: the gateway makes one intent per booking id and the first one stored stays),
  and only while the booking is still reserved. A hold nobody checks out has no intent to cancel when it ends.
- Stripe unavailable while reserving (without ``defer_payment``): the reservation is withdrawn (seats freed, booking removed) and the call fails
  UNAVAILABLE (PAYMENTS_UNAVAILABLE / PAYMENTS_BUSY), so no seat stays held for a fan who cannot pay, and a retry
  with the same request id starts afresh.
- Owner-only calls answer NOT_FOUND for another fan's booking, so booking ids cannot be probed.
- The seat limit is FAILED_PRECONDITION (SEAT_LIMIT_EXCEEDED): retrying does not help until the fan frees seats.
- Request ids (AIP-155): the booking id is derived from (fan, request id), so a retry holds the same Redis keys
  under the same id and meets the first booking at the database (UNIQUE(user_id, request_id) behind a per-fan
  advisory lock), which answers with that booking: sequential or concurrent retries never make a second hold. A
  retry arriving after the booking ended and its seats went to someone else loses in Redis like any other fan
  (SEAT_UNAVAILABLE): losers are never sent to PostgreSQL, not even for a replay lookup.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from cachetools import LRUCache
from prometheus_client import Counter

from booking_svc.blocks import AllocationOutcome, Allocator, BestAvailableQuery
from booking_svc.listing import BookingPage, list_bookings
from booking_svc.model import (
    BookedSeatDetail,
    BookingRecord,
    BookingStatus,
    CatalogSeat,
    EventCatalog,
    HoldOutcome,
    PaymentIntentInfo,
    PaymentStatus,
    ReleasedBooking,
    ReserveOutcome,
    SettleOutcome,
    SettleResult,
)
from booking_svc.ports import AdmissionEndsPort, BookingStore, PaymentProvider, SeatFeed, SeatHoldStore
from booking_svc.settings import BookingSettings
from booking_svc.settlement import BOOKINGS, Settlement
from tix.admission_tokens import AdmissionEnd, verify_admission_token
from tix.errors import (
    Aborted,
    DomainError,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    Unavailable,
)
from tix.logs import get_logger
from tix.sales import SaleStatus, SaleWindow, sale_status
from tix.singleflight import CachedLoads

log = get_logger("booking_svc.domain")

SHED = Counter(
    "tix_booking_reserve_shed_total",
    "ReserveSeats calls answered RESOURCE_EXHAUSTED before any work, because this process had too many in flight.",
)
ABANDONED = Counter(
    "tix_booking_reserve_abandoned_total",
    "ReserveSeats calls whose caller went away (deadline or cancel): their reservation is given back.",
    ["undone"],
)

# A hard ceiling on one request, whatever an event's own limit says (events allow at most 100 per fan).
MAX_SEATS_PER_REQUEST = 100
_MAX_SEAT_ID_LENGTH = 40
_CATALOG_CACHE_SIZE = 256
# Booking ids of requests carrying a request id are derived from (user, request id): concurrent retries then hold
# the seats under the same id in Redis and meet at the database, where the first one wins and the others replay it.
_REQUEST_NAMESPACE = uuid.UUID("5b0c3c52-8f3e-4c5e-9d55-7f1f5f3a2b10")

@dataclass(frozen=True)
class BestAvailable:
    quantity: int
    section_id: str | None = None
    price_tier: int = 0


@dataclass(frozen=True)
class SeatRequest:
    """What a fan asks ReserveSeats for: named seats, or the best N adjacent ones."""

    user_id: str
    event_id: int
    seat_ids: tuple[str, ...] = ()
    best_available: BestAvailable | None = None
    admission_token: str = ""
    request_id: str | None = None
    # The queue ticket of a verified admission token: the booking spends it (set by the sale check, not by callers).
    admission_ticket: str | None = None
    # Hold only: the PaymentIntent is made later, by checkout_booking, when the fan proceeds to pay.
    defer_payment: bool = False


def _found(event_id: int, catalog: EventCatalog | None) -> EventCatalog:
    if catalog is None:
        raise NotFound("EVENT_NOT_FOUND", f"no event {event_id}", event_id=event_id)
    return catalog


def _with_seat_details(record: BookingRecord, catalog_seats: Mapping[str, CatalogSeat]) -> BookingRecord:
    """The booking with its seats' section, row and number, from the event's (cached) seat catalog."""
    seats = []
    for seat_id, price in zip(record.seat_ids, record.seat_prices, strict=True):
        seat = catalog_seats[seat_id]
        seats.append(BookedSeatDetail(seat_id, seat.section_id, seat.row_label, seat.number, price))
    return replace(record, seats=tuple(seats))


class BookingService:
    """The booking rules over the stores; one instance per process."""

    def __init__(
        self,
        settings: BookingSettings,
        repository: BookingStore,
        holds: SeatHoldStore,
        payments: PaymentProvider,
        seat_feed: SeatFeed,
        admission_ends: AdmissionEndsPort | None = None,
        allocator: Allocator | None = None,
    ) -> None:
        self._settings = settings
        # Best-available's allocator (booking_svc.allocation); without it best-available takes the database path.
        self._allocator = allocator
        # Tells the waiting room when an admitted fan's booking ends, so their shopper slot frees at once.
        self._admission_ends = admission_ends
        self._repository = repository
        self._holds = holds
        self._payments = payments
        self._seat_feed = seat_feed
        # Event rules and seats, briefly cached: a stampede on one event reads them from PostgreSQL once. An
        # event's seats never change, so they outlive the rules: a reload after expiry reads only the rules.
        self._catalogs: CachedLoads[int, EventCatalog | None] = CachedLoads(
            maxsize=_CATALOG_CACHE_SIZE, ttl=settings.event_cache_seconds
        )
        self._catalog_seats: LRUCache[int, dict[str, CatalogSeat]] = LRUCache(maxsize=_CATALOG_CACHE_SIZE)
        # Best-available needs the event's rules, not its 70,000 seats: those are the allocator's business.
        self._rules: CachedLoads[int, EventCatalog | None] = CachedLoads(
            maxsize=_CATALOG_CACHE_SIZE, ttl=settings.event_cache_seconds
        )
        # Reservations in progress in this process; beyond the limit a call waits briefly, then is shed.
        self._in_flight = asyncio.Semaphore(settings.reserve_max_in_flight)
        # Reservations whose caller went away, being given back (kept referenced until done).
        self._abandoned: set[asyncio.Future[None]] = set()
        self.settlement = Settlement(
            repository, holds, payments, seat_feed, self._sold_marker_ttl_ms, admission_ended=self._admission_ended
        )

    # --- ReserveSeats ---------------------------------------------------------------------------------------

    async def reserve_seats(self, request: SeatRequest, *, deadline: float | None = None) -> BookingRecord:
        """Hold seats for the fan. ``deadline`` (``time.monotonic()`` clock) is when the caller stops waiting.

        Crowd behaviour: beyond ``reserve_max_in_flight`` reservations in this process a call waits at most
        ``reserve_queue_seconds`` (and never past its deadline) for a turn, then is answered RESOURCE_EXHAUSTED
        (BOOKING_BUSY, with a retry delay) before doing any work. The work itself (hold, reservation, payment) runs
        shielded from the caller's cancellation: when the caller goes away (deadline, disconnect), the step
        finishes and whatever it reserved is given back at once, so no hold outlives a fan who stopped waiting."""
        _validate(request)
        wait = self._settings.reserve_queue_seconds
        if deadline is not None:
            wait = min(wait, deadline - time.monotonic() - self._settings.reserve_min_work_seconds)
        try:
            if wait <= 0:
                raise TimeoutError
            await asyncio.wait_for(self._in_flight.acquire(), wait)
        except TimeoutError:
            SHED.inc()
            raise ResourceExhausted(
                "BOOKING_BUSY", "too many fans are booking right now; try again in a moment"
            ).retry_after(self._settings.reserve_retry_after_seconds) from None
        task = asyncio.ensure_future(self._reserve_seats(request))
        task.add_done_callback(lambda _: self._in_flight.release())
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            self._give_back_when_done(task)
            raise

    def _give_back_when_done(self, task: asyncio.Future[BookingRecord]) -> None:
        async def give_back() -> None:
            try:
                record = await task
            except BaseException:  # noqa: BLE001 - it failed by itself, and released what it held
                ABANDONED.labels("false").inc()
                return
            released = await self._repository.cancel(record.booking_id, "the fan stopped waiting for the answer")
            if released is not None and released.status_before is BookingStatus.RESERVED:
                await self._after_release(released)
            ABANDONED.labels("true").inc()
            log.info("reservation_abandoned", booking_id=str(record.booking_id))

        undo = asyncio.ensure_future(give_back())
        self._abandoned.add(undo)
        undo.add_done_callback(self._abandoned.discard)

    async def _reserve_seats(self, request: SeatRequest) -> BookingRecord:
        catalog = await (
            self._event_catalog(request.event_id) if request.seat_ids else self._event_rules(request.event_id)
        )
        request = replace(request, admission_ticket=self._check_sale(catalog, request))
        return await self._reserve(request, catalog)

    async def _reserve(self, request: SeatRequest, catalog: EventCatalog) -> BookingRecord:
        limit = min(catalog.rules.max_seats_per_user, self._settings.max_seats_per_user)
        wanted = len(request.seat_ids) or (request.best_available.quantity if request.best_available else 0)
        if wanted > limit:
            raise FailedPrecondition(
                "SEAT_LIMIT_EXCEEDED", f"at most {limit} seats per fan for this event", limit=limit, requested=wanted
            )
        booking_id = (
            uuid.uuid5(_REQUEST_NAMESPACE, f"{request.user_id}\x00{request.request_id}")
            if request.request_id
            else uuid.uuid4()
        )
        if request.seat_ids:
            unknown = [s for s in request.seat_ids if s not in catalog.seats]
            if unknown:
                raise NotFound(
                    "SEAT_NOT_FOUND", f"no such seats at this event: {', '.join(unknown)}",
                    seat_ids=",".join(unknown), event_id=request.event_id,
                )
            return await self._hold_and_reserve(request, catalog, request.seat_ids, booking_id, limit)
        return await self._reserve_best_available(request, catalog, booking_id, limit)

    async def _reserve_best_available(
        self, request: SeatRequest, catalog: EventCatalog, booking_id: uuid.UUID, limit: int
    ) -> BookingRecord:
        """The allocator (Redis) picks and holds the best block in one step; PostgreSQL's conditional update still
        decides. Seats PostgreSQL refuses (Redis lost or flushed) are marked taken and the next block is tried.
        When the allocator cannot serve (Redis down, event still loading) the database path chooses the block."""
        wish = request.best_available
        assert wish is not None
        if self._allocator is not None:
            for _ in range(self._settings.best_available_attempts):
                allocation = await self._allocator.allocate(
                    request.event_id, wish.quantity, str(booking_id), self._settings.hold_seconds * 1000,
                    section_id=wish.section_id, price_tier=wish.price_tier,
                )
                if allocation.outcome is AllocationOutcome.NONE:
                    raise _no_block(request.event_id, wish.quantity)
                if allocation.outcome is not AllocationOutcome.ALLOCATED:
                    break
                try:
                    return await self._hold_and_reserve(
                        request, catalog, allocation.seat_ids, booking_id, limit, allocated=True
                    )
                except Aborted as lost:
                    if lost.reason != "SEAT_UNAVAILABLE":
                        raise
                    taken = lost.metadata.get("seat_ids", "")
                    await self._allocator.refused(request.event_id, taken.split(",") if taken else ())
            else:
                raise _no_block(request.event_id, wish.quantity)
        BOOKINGS.labels("best_available_database_path").inc()
        return await self._hold_and_reserve(
            request, catalog, (), booking_id, limit,
            best_available=BestAvailableQuery(wish.quantity, wish.section_id, wish.price_tier),
        )

    async def _hold_and_reserve(
        self,
        request: SeatRequest,
        catalog: EventCatalog,
        seat_ids: Sequence[str],
        booking_id: uuid.UUID,
        limit: int,
        *,
        allocated: bool = False,
        best_available: BestAvailableQuery | None = None,
    ) -> BookingRecord:
        """Hold ``seat_ids`` in Redis (already held on the first node when ``allocated``; none on the database
        path, ``best_available``), then reserve them in PostgreSQL and create the PaymentIntent. Whatever fails
        after the hold gives the hold back."""
        event_id = request.event_id
        if seat_ids and (not allocated or self._holds.node_count > 1):
            hold = await self._holds.hold(event_id, seat_ids, str(booking_id), self._settings.hold_seconds * 1000)
            if hold.outcome is HoldOutcome.LOST:
                # The stampede's losers end here, in Redis, without a single PostgreSQL query. (A retry of a
                # booking that still holds its seats is not a loser: its keys carry the same booking id.)
                raise _seats_unavailable(event_id, hold.taken_seat_ids)

        try:
            result = await self._repository.reserve(
                booking_id=booking_id,
                event_id=event_id,
                user_id=request.user_id,
                seat_ids=seat_ids,
                currency=catalog.rules.currency,
                hold_seconds=self._settings.hold_seconds,
                max_seats_per_user=limit,
                request_id=request.request_id,
                admission_ticket=request.admission_ticket,
                best_available=best_available,
            )
        except BaseException:
            await self._holds.release(event_id, seat_ids, str(booking_id))
            raise
        if result.outcome is ReserveOutcome.NO_BLOCK:
            assert best_available is not None
            raise _no_block(event_id, best_available.quantity)
        if result.outcome is ReserveOutcome.DUPLICATE:
            return await self._replay_duplicate(request, seat_ids, booking_id)
        if result.outcome is not ReserveOutcome.RESERVED:
            await self._holds.release(event_id, seat_ids, str(booking_id))
            if result.outcome is ReserveOutcome.ADMISSION_USED:
                raise PermissionDenied(
                    "ADMISSION_USED", "this admission already bought a booking: join the queue again",
                    event_id=event_id,
                )
            if result.outcome is ReserveOutcome.LIMIT_EXCEEDED:
                raise FailedPrecondition(
                    "SEAT_LIMIT_EXCEEDED",
                    f"at most {limit} seats per fan for this event; {result.active_seats} already held or bought",
                    limit=limit, held=result.active_seats,
                )
            # Redis said yes but the database said no: Redis was lost, flushed or wrong. The database wins.
            BOOKINGS.labels("refused_by_database").inc()
            log.info("hold_refused_by_database", event_id=event_id, seats=result.unavailable_seat_ids)
            raise _seats_unavailable(event_id, result.unavailable_seat_ids)

        BOOKINGS.labels("reserved").inc()
        record = result.record
        assert record is not None  # RESERVED carries the new booking
        seat_ids = record.seat_ids
        catalog_seats = (
            catalog.seats if all(seat in catalog.seats for seat in seat_ids) else await self._seats_of(record)
        )
        if request.defer_payment:
            await self._seat_feed.publish(event_id, result.version, result.seat_changes)
            return _with_seat_details(record, catalog_seats)
        try:
            intent = await self._create_intent(record)
        except Exception as error:
            # No PaymentIntent, no way to pay: give the seats back rather than hold them for nothing...
            withdrawn = await self._repository.withdraw_unpaid_reservation(booking_id)
            if withdrawn is None:
                # ...unless a retry of this request (same request id, same booking) attached a PaymentIntent in
                # the meantime and may have handed it to the fan: then the booking stands, and is the answer.
                log.info("reservation_kept_for_retry", booking_id=str(booking_id), error=repr(error))
                await self._seat_feed.publish(event_id, result.version, result.seat_changes)
                return await self._view(booking_id)
            await self._holds.release(event_id, seat_ids, str(booking_id))
            BOOKINGS.labels("withdrawn").inc()
            log.warning("reservation_withdrawn", booking_id=str(booking_id), error=repr(error))
            if isinstance(error, DomainError):
                raise
            raise Unavailable("PAYMENTS_UNAVAILABLE", "payments are unavailable, try again shortly") from error
        attached = await self._attach(booking_id, intent)
        await self._seat_feed.publish(event_id, result.version, result.seat_changes)
        payment_intent_id, client_secret, payment_status = attached
        # Everything the answer needs is at hand: no need to read the booking back.
        return _with_seat_details(
            replace(
                record,
                payment_intent_id=payment_intent_id,
                client_secret=client_secret,
                payment_status=payment_status,
            ),
            catalog_seats,
        )

    async def _seats_of(self, record: BookingRecord) -> Mapping[str, CatalogSeat]:
        """Catalog entries of a booking's seats, read from the layout (best-available does not load the event's
        whole catalog)."""
        detailed = await self._repository.with_seat_details(record)
        return {
            s.seat_id: CatalogSeat(s.seat_id, s.section_id, s.row_label, s.number, 0, 0, s.price_minor)
            for s in detailed.seats
        }

    async def _replay_duplicate(
        self, request: SeatRequest, seat_ids: Sequence[str], booking_id: uuid.UUID
    ) -> BookingRecord:
        """This request was made before (same fan, same request id): answer with that booking. Keys this attempt
        set that the booking does not hold now (it ended, or best-available picked other seats this time) are
        given back, or they would keep other fans off those seats until their TTL."""
        replay = await self._repository.booking_id_for_request(request.user_id, request.request_id or "")
        found = await self._repository.get_booking(replay or booking_id, with_seats=False)
        stray = [
            s for s in seat_ids
            if found is None or found.status is not BookingStatus.RESERVED or s not in found.seat_ids
        ]
        if stray:
            await self._holds.release(request.event_id, stray, str(booking_id))
        if found is None:
            # The first attempt was withdrawn (Stripe failed it) after this one met it: nothing to replay.
            raise _withdrawn()
        return await self._replay(found.booking_id, defer_payment=request.defer_payment)

    async def _replay(self, booking_id: uuid.UUID, *, defer_payment: bool = False) -> BookingRecord:
        """The answer to a retried ReserveSeats: the first booking, with its PaymentIntent even when the first
        call is still creating it (the gateway makes one intent per booking id; the first one stored wins). A
        retry of a hold-only reservation (``defer_payment``) answers the booking as it is."""
        record = await self._view(booking_id)
        if defer_payment or record.status is not BookingStatus.RESERVED or record.payment_intent_id:
            return record
        await self._attach(booking_id, await self._create_intent(record))
        return await self._view(booking_id)

    async def _create_intent(self, record: BookingRecord) -> PaymentIntentInfo:
        """The booking's PaymentIntent (the gateway makes one per booking id, so a retry gets the same one)."""
        return await self._payments.create_payment_intent(
            booking_id=str(record.booking_id),
            amount_minor=record.total_minor,
            currency=record.currency,
            user_id=record.user_id,
            event_id=record.event_id,
        )

    async def _store_intent(
        self, booking_id: uuid.UUID, intent: PaymentIntentInfo
    ) -> tuple[str, str, PaymentStatus] | None:
        """Store the intent with the booking; the one stored wins. An intent that lost (another attempt stored
        its own first, or the booking is no longer reserved) is cancelled, so it can never take money. None when
        the booking could not take an intent."""
        attached = await self._repository.attach_payment_intent(
            booking_id, intent.payment_intent_id, intent.client_secret, PaymentStatus.of_stripe(intent.status)
        )
        if attached is None or attached[0] != intent.payment_intent_id:
            await self.settlement.cancel_stray_intent(intent.payment_intent_id, booking_id)
        return attached

    async def _attach(self, booking_id: uuid.UUID, intent: PaymentIntentInfo) -> tuple[str, str, PaymentStatus]:
        """``_store_intent`` for ReserveSeats: a reservation withdrawn meanwhile answers as withdrawn."""
        attached = await self._store_intent(booking_id, intent)
        if attached is None:
            raise _withdrawn()
        return attached

    def _check_sale(self, catalog: EventCatalog, request: SeatRequest) -> str | None:
        """Refuse a reservation outside the sale; for a waiting-room event, the queue ticket the fan's admission
        token names (the booking spends it)."""
        rules = catalog.rules
        window = SaleWindow(rules.starts_at, rules.sale_starts_at, rules.sale_ends_at, rules.cancelled)
        status = sale_status(window, datetime.now(UTC))
        if status is SaleStatus.CANCELLED:
            raise FailedPrecondition("SALE_ENDED", "the event was cancelled", event_id=rules.event_id)
        if status is SaleStatus.SCHEDULED:
            raise FailedPrecondition(
                "SALE_NOT_OPEN", "the sale has not started yet", event_id=rules.event_id,
                sale_start_time=rules.sale_starts_at.isoformat(),
            )
        if status is SaleStatus.ENDED:
            raise FailedPrecondition("SALE_ENDED", "the sale has ended", event_id=rules.event_id)
        if not rules.queue_enabled:
            return None
        admission = verify_admission_token(
            self._settings.admission_secret, request.admission_token,
            user_id=request.user_id, event_id=rules.event_id,
        )
        return admission.ticket_id

    async def _event_catalog(self, event_id: int) -> EventCatalog:
        return _found(event_id, await self._catalogs.get(event_id, lambda: self._load_catalog(event_id)))

    async def _event_rules(self, event_id: int) -> EventCatalog:
        """The event's rules (its seats only if already cached): what best-available needs."""
        catalog = self._catalogs.peek(event_id)
        if catalog is None:
            catalog = await self._rules.get(event_id, lambda: self._load_rules(event_id))
        return _found(event_id, catalog)

    async def _load_rules(self, event_id: int) -> EventCatalog | None:
        await self._repository.ensure_event_tickets(event_id)
        return await self._repository.load_event_catalog(event_id, known_seats=self._catalog_seats.get(event_id, {}))

    async def _load_catalog(self, event_id: int) -> EventCatalog | None:
        loaded = await self._repository.load_event_catalog(event_id, known_seats=self._catalog_seats.get(event_id))
        if loaded is not None:
            self._catalog_seats[event_id] = loaded.seats
        return loaded

    # --- CheckoutBooking -----------------------------------------------------------------------------------

    async def checkout_booking(self, user_id: str, booking_id: uuid.UUID) -> BookingRecord:
        """The fan proceeds to pay: the booking's PaymentIntent (made now, or the one made before) and its client
        secret. Idempotent: retries, concurrent calls and replicas end with the one intent stored first (others
        are cancelled). Only a reserved booking gets one: the intent is stored only while the booking row is
        still reserved (the repository locks it), so a hold that ended meanwhile never hands out a payable
        secret, and a cancellation or expiry after the store finds the intent and cancels it."""
        record = await self._owned(user_id, booking_id)
        if record.payment_intent_id:
            return record
        if record.status is not BookingStatus.RESERVED or record.expires_at <= datetime.now(UTC):
            raise _not_payable(record)
        try:
            intent = await self._create_intent(record)
        except DomainError:
            raise
        except Exception as error:
            log.warning("checkout_failed", booking_id=str(booking_id), error=repr(error))
            raise Unavailable(
                "PAYMENTS_UNAVAILABLE", "payments are unavailable, try again shortly"
            ).retry_after(1.0) from error
        attached = await self._store_intent(booking_id, intent)
        current = await self._view(booking_id)
        if attached is None:
            raise _not_payable(current)
        BOOKINGS.labels("checked_out").inc()
        return current

    # --- ConfirmBooking, webhook, late payment --------------------------------------------------------------

    async def confirm_booking(self, user_id: str, booking_id: uuid.UUID) -> BookingRecord:
        record = await self._owned(user_id, booking_id)
        if record.status.final:
            return record
        if not record.payment_intent_id:
            raise FailedPrecondition("PAYMENT_INCOMPLETE", "the booking has no payment yet", booking_id=booking_id)
        intent = await self._payments.retrieve_payment_intent(record.payment_intent_id)
        if intent.status == "succeeded":
            result = await self.settlement.settle_paid_booking(booking_id, intent=intent, source="confirm")
            if result.outcome is SettleOutcome.REFUSED:
                raise FailedPrecondition(
                    "PAYMENT_MISMATCH", "the payment does not match the booking", booking_id=booking_id,
                    refusal=str(result.refusal),
                )
            return await self._view(booking_id)
        if record.status is BookingStatus.RESERVED and record.expires_at > datetime.now(UTC):
            raise FailedPrecondition(
                "PAYMENT_INCOMPLETE", "the payment has not succeeded yet", booking_id=booking_id,
                payment_status=intent.status,
            )
        if record.status is BookingStatus.CANCELLED:
            raise FailedPrecondition("BOOKING_CANCELLED", "the booking was cancelled", booking_id=booking_id)
        raise FailedPrecondition(
            "HOLD_EXPIRED", "the hold ended before the payment succeeded", booking_id=booking_id,
            expire_time=record.expires_at.isoformat(),
        )

    async def handle_stripe_webhook(self, payload: bytes, signature: str) -> None:
        await self.settlement.handle_webhook(payload, signature)

    async def settle_paid_booking(self, booking_id: uuid.UUID) -> SettleResult:
        """Settle the booking against its PaymentIntent as Stripe has it now (see ``settlement``)."""
        return await self.settlement.settle_paid_booking(booking_id, source="reconcile")

    async def _sold_marker_ttl_ms(self, event_id: int) -> int:
        """Sold markers last until the event has started (a day at least): nobody can buy a seat after that."""
        catalog = await self._event_catalog(event_id)
        until_start = (catalog.rules.starts_at - datetime.now(UTC)).total_seconds()
        return int(max(until_start, 24 * 3600) * 1000)

    # --- CancelBooking, GetBooking, expiry ------------------------------------------------------------------

    async def cancel_booking(self, user_id: str, booking_id: uuid.UUID) -> BookingRecord:
        record = await self._owned(user_id, booking_id)
        return await self._cancel(record, "cancelled by the fan", paid="a paid booking cannot be cancelled here")

    async def _cancel(self, record: BookingRecord, reason: str, *, paid: str) -> BookingRecord:
        """Cancel an unpaid reservation: seats back on sale, PaymentIntent cancelled, waiting-room slot freed. A
        booking already cancelled or expired is answered as it is; a paid one is refused with ``paid``."""
        booking_id = record.booking_id
        if record.status.can_become(BookingStatus.CANCELLED):
            released = await self._repository.cancel(booking_id, reason)
            if released is not None and released.status_before is BookingStatus.RESERVED:
                BOOKINGS.labels("cancelled").inc()
                await self._after_release(released)
                await self._admission_ended(released, AdmissionEnd.CANCELLED)
                return await self._view(booking_id)
            record = await self._view(booking_id)
        if record.status is BookingStatus.CONFIRMED:
            raise FailedPrecondition("BOOKING_CONFIRMED", paid, booking_id=booking_id)
        return record

    async def get_booking(self, user_id: str, booking_id: uuid.UUID) -> BookingRecord:
        return await self._owned(user_id, booking_id)

    async def list_bookings(self, user_id: str, page_size: int, page_token: str) -> BookingPage:
        """The fan's own bookings, newest first (booking_svc.listing)."""
        return await list_bookings(self._repository, user_id, page_size, page_token)

    async def expire_overdue_bookings(self) -> int:
        """Expire every reserved booking past its deadline, batch by batch; returns how many."""
        total = 0
        while True:
            batch = await self._repository.expire_overdue(self._settings.sweeper_batch_size)
            for released in batch:
                BOOKINGS.labels("expired").inc()
                await self._after_release(released)
                await self._admission_ended(released, AdmissionEnd.EXPIRED)
            total += len(batch)
            if len(batch) < self._settings.sweeper_batch_size:
                return total

    async def retry_owed_refunds(self) -> int:
        return await self.settlement.retry_owed_refunds()

    async def retry_owed_cancellations(self) -> int:
        return await self.settlement.retry_owed_cancellations()

    async def _after_release(self, released: ReleasedBooking) -> None:
        """Seats went back on sale: tell Redis and watchers, and stop the PaymentIntent (or, if the fan paid in
        the meantime, take the late-payment path)."""
        await self._holds.release(released.event_id, released.seat_ids, str(released.booking_id))
        await self._seat_feed.publish(released.event_id, released.version, released.seat_changes)
        if released.payment_intent_id:
            await self.cancel_payment(released.booking_id, released.payment_intent_id)

    async def _admission_ended(self, ended: ReleasedBooking | SettleResult, end: AdmissionEnd) -> None:
        """The fan is done shopping (paid, cancelled or let the hold lapse): free the waiting-room slot of the
        ticket the booking was bought through (the booking row names it; other bookings have none)."""
        if self._admission_ends is not None and ended.admission_ticket and ended.booking_id is not None:
            await self._admission_ends.publish(str(ended.booking_id), ended.event_id, ended.admission_ticket, end)

    async def cancel_payment(self, booking_id: uuid.UUID, payment_intent_id: str) -> bool:
        return await self.settlement.cancel_payment(booking_id, payment_intent_id)

    # --- operators (admin_svc) -----------------------------------------------------------------------------

    async def booking_for_operator(self, booking_id: uuid.UUID) -> BookingRecord:
        """Any fan's booking: operators look bookings up by id, whoever holds them."""
        return await self._view(booking_id)

    async def cancel_for_operator(self, booking_id: uuid.UUID, reason: str) -> BookingRecord:
        """Cancel an unpaid reservation as the fan's own cancel does (seats back on sale, PaymentIntent
        cancelled, waiting-room slot freed); a paid booking is refunded instead (``refund_for_operator``)."""
        record = await self._view(booking_id)
        return await self._cancel(record, reason, paid="a paid booking is refunded, not cancelled")

    async def refund_for_operator(self, booking_id: uuid.UUID, reason: str) -> BookingRecord:
        """Refund a confirmed booking: its seats go back on sale, then Stripe refunds the payment (when Stripe
        fails, the refund stays owed and the sweeper or reconcile retries it). Refunding twice changes nothing."""
        released = await self._repository.refund_confirmed(booking_id, reason)
        if released is None:
            raise NotFound("BOOKING_NOT_FOUND", f"no booking {booking_id}", booking_id=booking_id)
        if released.status_before is BookingStatus.CONFIRMED:
            BOOKINGS.labels("refunded").inc()
            await self._holds.release(released.event_id, released.seat_ids, f"sold:{booking_id}")
            await self._seat_feed.publish(released.event_id, released.version, released.seat_changes)
        elif released.status_before is not BookingStatus.REFUNDED:
            raise FailedPrecondition(
                "BOOKING_NOT_CONFIRMED",
                f"only a confirmed booking can be refunded (this one is {released.status_before})",
                booking_id=booking_id,
            )
        await self.settlement.refund(booking_id)
        return await self._view(booking_id)

    # --- helpers --------------------------------------------------------------------------------------------

    async def _owned(self, user_id: str, booking_id: uuid.UUID) -> BookingRecord:
        record = await self._repository.get_booking(booking_id, with_seats=False)
        if record is None or record.user_id != user_id:
            # Another fan's booking looks exactly like a missing one.
            raise NotFound("BOOKING_NOT_FOUND", f"no booking {booking_id}", booking_id=booking_id)
        return await self._detailed(record)

    async def _view(self, booking_id: uuid.UUID) -> BookingRecord:
        record = await self._repository.get_booking(booking_id, with_seats=False)
        if record is None:
            raise NotFound("BOOKING_NOT_FOUND", f"no booking {booking_id}", booking_id=booking_id)
        return await self._detailed(record)

    async def _detailed(self, record: BookingRecord) -> BookingRecord:
        """Seat details from the event's cached catalog while its sale is hot; from the database otherwise (a
        fan looking up an old booking should not load a stadium's 70,000 seats)."""
        seats = self._catalog_seats.get(record.event_id)
        if seats is not None and all(seat in seats for seat in record.seat_ids):
            return _with_seat_details(record, seats)
        return await self._repository.with_seat_details(record)


def _validate(request: SeatRequest) -> None:
    if request.seat_ids and request.best_available is not None:
        raise InvalidArgument("best_available", "give either seat_ids or best_available, not both")
    if not request.seat_ids and request.best_available is None:
        raise InvalidArgument("seat_ids", "name the seats to hold, or ask for best_available")
    if request.best_available is not None:
        wish = request.best_available
        if not 1 <= wish.quantity <= MAX_SEATS_PER_REQUEST:
            raise InvalidArgument("best_available.quantity", f"must be between 1 and {MAX_SEATS_PER_REQUEST}")
        if wish.price_tier < 0:
            raise InvalidArgument("best_available.price_tier", "must not be negative")
        return
    if len(request.seat_ids) > MAX_SEATS_PER_REQUEST:
        raise InvalidArgument("seat_ids", f"at most {MAX_SEATS_PER_REQUEST} seats per request")
    seen: set[str] = set()
    for seat in request.seat_ids:
        if not seat or len(seat) > _MAX_SEAT_ID_LENGTH:
            raise InvalidArgument("seat_ids", f"{seat[:_MAX_SEAT_ID_LENGTH]!r} is not a valid seat id")
        if seat in seen:
            raise InvalidArgument("seat_ids", f"lists {seat} twice")
        seen.add(seat)


def _no_block(event_id: int, quantity: int) -> Aborted:
    return Aborted(
        "SEAT_UNAVAILABLE", f"no {quantity} adjacent seats are available", seat_ids="", event_id=event_id,
        quantity=quantity,
    )


def _seats_unavailable(event_id: int, seat_ids: Sequence[str]) -> Aborted:
    return Aborted(
        "SEAT_UNAVAILABLE", f"seats already taken: {', '.join(seat_ids)}", seat_ids=",".join(seat_ids),
        event_id=event_id,
    )


def _not_payable(record: BookingRecord) -> FailedPrecondition:
    """Checkout of a booking that is no longer a live hold."""
    if record.status is BookingStatus.CANCELLED:
        return FailedPrecondition("BOOKING_CANCELLED", "the booking was cancelled", booking_id=record.booking_id)
    if record.status is BookingStatus.RESERVED or record.status is BookingStatus.EXPIRED:
        return FailedPrecondition(
            "HOLD_EXPIRED", "the hold ended before checkout", booking_id=record.booking_id,
            expire_time=record.expires_at.isoformat(),
        )
    return FailedPrecondition(
        "BOOKING_NOT_RESERVED", f"the booking is {record.status.value}: there is nothing to pay",
        booking_id=record.booking_id, status=record.status.value,
    )


def _withdrawn() -> Unavailable:
    return Unavailable(
        "PAYMENTS_UNAVAILABLE", "this reservation was withdrawn because payments failed; try again shortly"
    )
