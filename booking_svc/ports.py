"""What the booking rules need from the outside world, as Protocols: the adapters in ``repository`` (PostgreSQL),
``holds`` (Redis), ``payments`` (Stripe) and ``tix.seatfeed`` (the seat feed) satisfy them, and ``server`` wires
them in. Pure: importing this loads no redis, sqlalchemy, stripe or grpc."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from booking_svc.blocks import BestAvailableQuery
from booking_svc.model import (
    BookingRecord,
    BookingStatus,
    CatalogSeat,
    EventCatalog,
    OwedCancellation,
    PaymentIntentInfo,
    PaymentStatus,
    ReleasedBooking,
    ReserveResult,
    SeatHold,
    SettleResult,
    StripeEventRecord,
    TicketDrift,
    WebhookEvent,
)

if TYPE_CHECKING:
    from tix.admission_tokens import AdmissionEnd
    from tix.seatfeed import SeatChange


class BookingStore(Protocol):
    """Bookings, tickets and payment rows (PostgreSQL): small named operations, each one transaction."""

    async def load_event_catalog(
        self, event_id: int, known_seats: dict[str, CatalogSeat] | None = None
    ) -> EventCatalog | None: ...

    async def ensure_event_tickets(self, event_id: int) -> None: ...

    async def sellable_seat_ids(self, event_id: int, section_id: str | None) -> set[str]: ...

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
    ) -> ReserveResult: ...

    async def booking_id_for_request(self, user_id: str, request_id: str) -> uuid.UUID | None: ...

    async def withdraw_unpaid_reservation(self, booking_id: uuid.UUID) -> ReleasedBooking | None: ...

    async def attach_payment_intent(
        self, booking_id: uuid.UUID, payment_intent_id: str, client_secret: str, status: PaymentStatus
    ) -> tuple[str, str, PaymentStatus] | None: ...

    async def get_booking(self, booking_id: uuid.UUID, *, with_seats: bool = True) -> BookingRecord | None: ...

    async def with_seat_details(self, record: BookingRecord) -> BookingRecord: ...

    async def list_user_bookings(
        self, user_id: str, limit: int, after: tuple[datetime, uuid.UUID] | None
    ) -> list[BookingRecord]: ...

    async def booking_id_for_payment_intent(self, payment_intent_id: str) -> uuid.UUID | None: ...

    async def settle_payment(
        self, booking_id: uuid.UUID, *, stripe_event: StripeEventRecord | None = None
    ) -> SettleResult: ...

    async def record_stripe_event(self, stripe_event: StripeEventRecord) -> bool: ...

    async def record_payment_update(
        self, booking_id: uuid.UUID | None, status: PaymentStatus, *, stripe_event: StripeEventRecord
    ) -> bool: ...

    async def set_payment_status(self, booking_id: uuid.UUID, status: PaymentStatus) -> None: ...

    async def record_refund(self, booking_id: uuid.UUID, refund_id: str) -> None: ...

    async def refunds_owed(self, limit: int = 100) -> list[tuple[uuid.UUID, str]]: ...

    async def owe_cancellation(self, payment_intent_id: str, booking_id: uuid.UUID | None, error: str) -> None: ...

    async def claim_due_cancellations(self, limit: int, lease_seconds: float) -> list[OwedCancellation]: ...

    async def cancellation_done(self, payment_intent_id: str) -> None: ...

    async def cancellation_failed(self, payment_intent_id: str, error: str) -> None: ...

    async def cancellations_owed(self) -> int: ...

    async def cancel(self, booking_id: uuid.UUID, reason: str) -> ReleasedBooking | None: ...

    async def refund_confirmed(self, booking_id: uuid.UUID, reason: str) -> ReleasedBooking | None: ...

    async def expire_overdue(self, limit: int) -> list[ReleasedBooking]: ...

    async def unsettled_payments(
        self, limit: int = 10_000, since_seconds: float | None = None
    ) -> list[tuple[uuid.UUID, BookingStatus, str]]: ...

    async def confirmed_ticket_drift(self) -> list[TicketDrift]: ...


class SeatHoldStore(Protocol):
    """Seat holds in Redis (Redlock): the cheap first gate in front of the database."""

    async def hold(self, event_id: int, seat_ids: Sequence[str], booking_id: str, ttl_ms: int) -> SeatHold: ...

    async def release(self, event_id: int, seat_ids: Sequence[str], booking_id: str) -> int: ...

    async def mark_sold(self, event_id: int, seat_ids: Sequence[str], booking_id: str, ttl_ms: int) -> None: ...

    @property
    def node_count(self) -> int: ...


class PaymentProvider(Protocol):
    """Stripe PaymentIntents and refunds."""

    async def create_payment_intent(
        self, *, booking_id: str, amount_minor: int, currency: str, user_id: str, event_id: int
    ) -> PaymentIntentInfo: ...

    async def retrieve_payment_intent(self, payment_intent_id: str) -> PaymentIntentInfo: ...

    async def cancel_payment_intent(self, payment_intent_id: str) -> PaymentIntentInfo: ...

    async def refund_payment(self, payment_intent_id: str, *, booking_id: str, reason: str) -> str: ...

    def parse_webhook(self, payload: bytes, signature_header: str) -> WebhookEvent: ...


class AdmissionEndsPort(Protocol):
    """The waiting room's side of a booking (``tix.admission.AdmissionEnds``): the end of a booking bought through
    queue ticket ``ticket_id``, so the fan's shopper slot frees at once."""

    async def publish(self, booking_id: str, event_id: int, ticket_id: str, end: AdmissionEnd) -> bool: ...


class SeatFeed(Protocol):
    """Publishes seat status changes to the event's watchers."""

    async def publish(self, event_id: int, version: int, changes: Sequence[SeatChange]) -> None: ...
