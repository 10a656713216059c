"""The booking model: what a booking is, the states it moves through, and the facts the adapters hand the rules.

Pure Python: no redis, sqlalchemy, stripe or grpc here (``tests/unit/test_booking_model.py`` imports it in a clean
interpreter to prove it). The adapters (``repository``, ``holds``, ``payments``) build and return these types; the
rules (``domain``, ``settlement``) decide with them.

The state machine of a booking::

    reserved ──► confirmed                  (paid while held)
        │  ──► cancelled ─┐                 (the fan let go)
        │  ──► expired  ──┼──► confirmed    (paid late, the same seats still free: booked again)
        └──► refunded ◄───┘                 (paid late, the seats were resold: the money goes back)

``confirmed`` and ``refunded`` are final. A payment becomes ``succeeded`` only through settlement, which first
checks the PaymentIntent Stripe returns (see :func:`payment_refusal`).
"""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the seat feed's change record; its module talks to Redis and PostgreSQL
    from tix.seatfeed import SeatChange


class BookingStatus(enum.StrEnum):
    RESERVED = "reserved"
    CONFIRMED = "confirmed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    REFUNDED = "refunded"

    @property
    def final(self) -> bool:
        return self in (BookingStatus.CONFIRMED, BookingStatus.REFUNDED)

    def can_become(self, target: BookingStatus) -> bool:
        return target in _TRANSITIONS[self]


_TRANSITIONS: dict[BookingStatus, frozenset[BookingStatus]] = {
    BookingStatus.RESERVED: frozenset(
        {BookingStatus.CONFIRMED, BookingStatus.CANCELLED, BookingStatus.EXPIRED, BookingStatus.REFUNDED}
    ),
    # A late payment: the same seats booked again, or the money refunded.
    BookingStatus.CANCELLED: frozenset({BookingStatus.CONFIRMED, BookingStatus.REFUNDED}),
    BookingStatus.EXPIRED: frozenset({BookingStatus.CONFIRMED, BookingStatus.REFUNDED}),
    # An operator's refund (admin_svc): the seats go back on sale and the payment is refunded.
    BookingStatus.CONFIRMED: frozenset({BookingStatus.REFUNDED}),
    BookingStatus.REFUNDED: frozenset(),
}


class IllegalTransition(Exception):
    def __init__(self, current: BookingStatus, target: BookingStatus) -> None:
        super().__init__(f"a {current} booking cannot become {target}")
        self.current = current
        self.target = target


def transition(current: BookingStatus, target: BookingStatus) -> BookingStatus:
    """``target`` when the state machine allows the move from ``current``, else :class:`IllegalTransition`."""
    if not current.can_become(target):
        raise IllegalTransition(current, target)
    return target


class PaymentStatus(enum.StrEnum):
    REQUIRES_PAYMENT = "requires_payment"
    PROCESSING = "processing"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"
    REFUNDED = "refunded"

    @classmethod
    def of_stripe(cls, stripe_status: str) -> PaymentStatus:
        """Ours for Stripe's PaymentIntent status string."""
        return _STRIPE_TO_PAYMENT_STATUS.get(stripe_status, cls.REQUIRES_PAYMENT)


_STRIPE_TO_PAYMENT_STATUS = {
    "requires_payment_method": PaymentStatus.REQUIRES_PAYMENT,
    "requires_confirmation": PaymentStatus.REQUIRES_PAYMENT,
    "requires_action": PaymentStatus.REQUIRES_PAYMENT,
    "requires_capture": PaymentStatus.PROCESSING,
    "processing": PaymentStatus.PROCESSING,
    "succeeded": PaymentStatus.SUCCEEDED,
    "canceled": PaymentStatus.CANCELED,
}


# --- catalog ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CatalogSeat:
    seat_id: str
    section_id: str
    row_label: str
    number: int
    price_tier: int
    rank: int
    price_minor: int


@dataclass(frozen=True)
class EventRules:
    event_id: int
    sale_starts_at: datetime
    starts_at: datetime
    sale_ends_at: datetime | None
    cancelled: bool
    max_seats_per_user: int
    queue_enabled: bool
    currency: str


@dataclass(frozen=True)
class EventCatalog:
    """An event's sale rules and its (immutable) seats, as the booking service needs them."""

    rules: EventRules
    seats: dict[str, CatalogSeat]


# --- bookings -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BookedSeatDetail:
    seat_id: str
    section_id: str
    row_label: str
    number: int
    price_minor: int


@dataclass(frozen=True)
class BookingRecord:
    booking_id: uuid.UUID
    event_id: int
    user_id: str
    status: BookingStatus
    status_reason: str
    seat_ids: tuple[str, ...]
    seat_prices: tuple[int, ...]
    total_minor: int
    currency: str
    fence: int
    request_id: str | None
    created_at: datetime
    expires_at: datetime
    confirmed_at: datetime | None
    payment_intent_id: str | None
    client_secret: str | None
    payment_status: PaymentStatus
    amount_minor: int
    refund_id: str | None
    seats: tuple[BookedSeatDetail, ...] = ()


class ReserveOutcome(enum.Enum):
    RESERVED = "reserved"
    # The same booking (same user and request id) exists already: a retry.
    DUPLICATE = "duplicate"
    SEATS_TAKEN = "seats_taken"
    LIMIT_EXCEEDED = "limit_exceeded"
    # The admission token already bought another booking (each token buys one).
    ADMISSION_USED = "admission_used"
    # Best-available on the database path: no row has that many adjacent free seats (among those not locked).
    NO_BLOCK = "no_block"


@dataclass(frozen=True)
class ReserveResult:
    outcome: ReserveOutcome
    booking_id: uuid.UUID | None = None
    fence: int = 0
    # SEATS_TAKEN: the seats that could not be reserved; LIMIT_EXCEEDED: seats the fan already holds or owns.
    unavailable_seat_ids: tuple[str, ...] = ()
    active_seats: int = 0
    # RESERVED: the new booking (without its PaymentIntent and seat details yet).
    record: BookingRecord | None = None
    # RESERVED: the seats' status changes and the seat-map version they carry (see tix.seatfeed).
    seat_changes: tuple[SeatChange, ...] = ()
    version: int = 0


class SettleOutcome(enum.Enum):
    CONFIRMED = "confirmed"
    # Paid after the hold ended, and the same seats were still free: booked again.
    REBOOKED = "rebooked"
    # Paid after the hold ended and the seats went to someone else: the booking is refunded (refund owed until
    # the repository's ``record_refund`` stores Stripe's refund id).
    REFUND_OWED = "refund_owed"
    ALREADY_SETTLED = "already_settled"
    DUPLICATE_EVENT = "duplicate_event"
    UNKNOWN_BOOKING = "unknown_booking"
    # The PaymentIntent Stripe returned does not pay for this booking (see ``payment_refusal``): nothing changed.
    REFUSED = "refused"


@dataclass(frozen=True)
class SettleResult:
    outcome: SettleOutcome
    booking_id: uuid.UUID | None = None
    event_id: int = 0
    seat_ids: tuple[str, ...] = ()
    # Seat status changes to publish, and their seat-map version.
    seat_changes: tuple[SeatChange, ...] = ()
    version: int = 0
    # REFUSED: why.
    refusal: SettlementRefusal | None = None
    # The waiting-room ticket the booking was bought through (its admission token's), if any.
    admission_ticket: str | None = None


@dataclass(frozen=True)
class ReleasedBooking:
    """A booking whose hold ended (cancelled or expired) and the seats that went back on sale."""

    booking_id: uuid.UUID
    event_id: int
    seat_ids: tuple[str, ...]
    freed_seat_ids: tuple[str, ...]
    payment_intent_id: str | None
    status_before: BookingStatus = BookingStatus.RESERVED
    # The freed seats' status changes and their seat-map version.
    seat_changes: tuple[SeatChange, ...] = ()
    version: int = 0
    # The waiting-room ticket the booking was bought through (its admission token's), if any.
    admission_ticket: str | None = None


@dataclass(frozen=True)
class StripeEventRecord:
    stripe_event_id: str
    type: str


@dataclass(frozen=True)
class OwedCancellation:
    """A PaymentIntent that must be cancelled, and how many attempts failed so far."""

    payment_intent_id: str
    booking_id: uuid.UUID | None
    attempts: int


@dataclass
class TicketDrift:
    booking_id: uuid.UUID
    expected: int
    booked: int = field(default=0)


# --- payments -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PaymentIntentInfo:
    payment_intent_id: str
    client_secret: str
    status: str  # Stripe's status string: requires_payment_method, requires_confirmation, succeeded, canceled...
    amount_minor: int
    currency: str
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class WebhookEvent:
    event_id: str
    type: str
    payment_intent: PaymentIntentInfo | None  # None for events about other objects (charge.refunded carries a charge)


class SettlementRefusal(enum.StrEnum):
    """Why a PaymentIntent does not settle a booking (the ``reason`` label of the refusal metric)."""

    # The intent is not the one stored for the booking (whatever its metadata says).
    FOREIGN_INTENT = "foreign_intent"
    NOT_SUCCEEDED = "not_succeeded"
    AMOUNT_MISMATCH = "amount_mismatch"
    CURRENCY_MISMATCH = "currency_mismatch"
    # A succeeded intent that pays for no booking (its booking is gone, or it never was one's): refunded.
    NO_BOOKING = "no_booking"
    # Stripe does not know the intent the event names.
    UNKNOWN_INTENT = "unknown_intent"


def payment_refusal(booking: BookingRecord, intent: PaymentIntentInfo) -> SettlementRefusal | None:
    """None when ``intent`` (as retrieved from Stripe, never as a webhook body tells it) pays for ``booking``: the
    booking's own intent, succeeded, for the booking's amount in the booking's currency. Otherwise why not."""
    if not booking.payment_intent_id or intent.payment_intent_id != booking.payment_intent_id:
        return SettlementRefusal.FOREIGN_INTENT
    if intent.status != "succeeded":
        return SettlementRefusal.NOT_SUCCEEDED
    if intent.amount_minor != booking.total_minor:
        return SettlementRefusal.AMOUNT_MISMATCH
    if intent.currency.lower() != booking.currency.lower():
        return SettlementRefusal.CURRENCY_MISMATCH
    return None


# --- holds --------------------------------------------------------------------------------------------------------


class HoldOutcome(enum.Enum):
    WON = "won"
    LOST = "lost"
    # Too few nodes answered to decide: the caller relies on the database alone.
    DEGRADED = "degraded"


@dataclass(frozen=True)
class SeatHold:
    outcome: HoldOutcome
    # Seats another booking holds (reported by the nodes that refused), for SEAT_UNAVAILABLE's metadata.
    taken_seat_ids: tuple[str, ...] = ()
    # Milliseconds the hold is still certain to be valid (Redlock validity), 0 unless won.
    validity_ms: int = 0
