"""The booking model: the state machine of a booking, and which PaymentIntent may settle it."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from booking_svc.model import (
    BookingRecord,
    BookingStatus,
    IllegalTransition,
    PaymentIntentInfo,
    PaymentStatus,
    SettlementRefusal,
    payment_refusal,
    transition,
)

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _booking(**changes) -> BookingRecord:
    record = BookingRecord(
        booking_id=uuid.uuid4(), event_id=1, user_id="fan-1", status=BookingStatus.RESERVED, status_reason="",
        seat_ids=("S1-A-1", "S1-A-2"), seat_prices=(5000, 5000), total_minor=10_000, currency="USD", fence=7,
        request_id=None, created_at=NOW, expires_at=NOW + timedelta(minutes=10), confirmed_at=None,
        payment_intent_id="pi_own", client_secret="pi_own_secret", payment_status=PaymentStatus.REQUIRES_PAYMENT,
        amount_minor=10_000, refund_id=None,
    )
    return replace(record, **changes)


def _intent(**changes) -> PaymentIntentInfo:
    intent = PaymentIntentInfo("pi_own", "pi_own_secret", "succeeded", 10_000, "usd", {})
    return replace(intent, **changes)


def test_the_own_succeeded_intent_for_the_amount_and_currency_settles():
    assert payment_refusal(_booking(), _intent()) is None


@pytest.mark.parametrize(
    ("intent", "refusal"),
    [
        (_intent(amount_minor=1), SettlementRefusal.AMOUNT_MISMATCH),
        (_intent(currency="eur"), SettlementRefusal.CURRENCY_MISMATCH),
        (_intent(status="requires_payment_method"), SettlementRefusal.NOT_SUCCEEDED),
        (_intent(status="processing"), SettlementRefusal.NOT_SUCCEEDED),
        # Metadata naming the booking does not make another intent its own.
        (_intent(payment_intent_id="pi_other", metadata={"booking_id": "x"}), SettlementRefusal.FOREIGN_INTENT),
    ],
)
def test_anything_but_the_own_succeeded_intent_for_the_amount_and_currency_is_refused(intent, refusal):
    assert payment_refusal(_booking(), intent) is refusal


def test_a_booking_without_a_stored_intent_is_settled_by_none():
    assert payment_refusal(_booking(payment_intent_id=None), _intent()) is SettlementRefusal.FOREIGN_INTENT


def test_the_state_machine_allows_late_payments_and_keeps_final_states_final():
    assert transition(BookingStatus.RESERVED, BookingStatus.CONFIRMED) is BookingStatus.CONFIRMED
    assert transition(BookingStatus.EXPIRED, BookingStatus.CONFIRMED) is BookingStatus.CONFIRMED
    assert transition(BookingStatus.CANCELLED, BookingStatus.REFUNDED) is BookingStatus.REFUNDED
    assert transition(BookingStatus.CONFIRMED, BookingStatus.REFUNDED) is BookingStatus.REFUNDED  # an operator's
    for final in (BookingStatus.CONFIRMED, BookingStatus.REFUNDED):
        assert final.final
        for target in BookingStatus:
            if (final, target) == (BookingStatus.CONFIRMED, BookingStatus.REFUNDED):
                continue
            with pytest.raises(IllegalTransition):
                transition(final, target)
    with pytest.raises(IllegalTransition):
        transition(BookingStatus.EXPIRED, BookingStatus.RESERVED)


def test_statuses_are_their_stored_strings():
    assert BookingStatus("confirmed") == "confirmed"
    assert PaymentStatus.of_stripe("requires_capture") is PaymentStatus.PROCESSING
    assert PaymentStatus.of_stripe("something_new") is PaymentStatus.REQUIRES_PAYMENT
