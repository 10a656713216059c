"""Checkout (BookingService.checkout_booking): a hold made with ``defer_payment`` has no PaymentIntent; the fan's
checkout makes one (once, whatever the retries), only while the hold lives; a hold that ends before checkout leaves
no intent to cancel, and a cancellation racing a checkout never leaves a payable intent behind."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest
from sqlalchemy import text

from booking_svc.sweeper import sweep_once
from tests.factories import create_event
from tests.integration.booking_harness import (
    age_booking,
    assert_never_sold_twice,
    booking_settings,
    booking_world,
    build_world,
    intent_object,
    named,
    pay_as_fan,
    ticket_states,
)
from tix.errors import FailedPrecondition, NotFound, Unavailable
from tix_dev.readiness import free_port

pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=<...>':DeprecationWarning")


@pytest.fixture
async def world(db, redis, redis_url, localstripe_url):
    async with booking_world(db, redis_url, localstripe_url) as built:
        yield built


def hold(user_id: str, event_id: int, *seat_ids: str, request_id: str | None = None):
    return replace(named(user_id, event_id, *seat_ids, request_id=request_id), defer_payment=True)


async def _intents_stored(engine) -> int:
    async with engine.connect() as conn:
        return int(await conn.scalar(text("SELECT count(*) FROM payments WHERE payment_intent_id IS NOT NULL")))


async def test_a_hold_has_no_intent_until_checkout_which_makes_one_for_any_number_of_calls(world, db, localstripe_url):
    event = await create_event(db)
    held = await world.service.reserve_seats(hold("fan-1", event.event_id, *event.seat_ids[:2], request_id="r-1"))
    assert (held.status, held.payment_intent_id, held.client_secret) == ("reserved", None, None)
    assert [s.seat_id for s in held.seats] == list(event.seat_ids[:2])
    # A retry of the reservation answers the same hold, still without an intent.
    again = await world.service.reserve_seats(hold("fan-1", event.event_id, *event.seat_ids[:2], request_id="r-1"))
    assert (again.booking_id, again.payment_intent_id) == (held.booking_id, None)
    assert await _intents_stored(db) == 0

    answers = await asyncio.gather(*(world.service.checkout_booking("fan-1", held.booking_id) for _ in range(5)))
    assert len({(a.payment_intent_id, a.client_secret) for a in answers}) == 1
    checked_out = answers[0]
    assert checked_out.payment_intent_id
    assert checked_out.client_secret
    intent = await intent_object(localstripe_url, checked_out.payment_intent_id)
    assert (intent["amount"], intent["metadata"]["booking_id"]) == (held.total_minor, str(held.booking_id))
    later = await world.service.checkout_booking("fan-1", held.booking_id)
    assert later.payment_intent_id == checked_out.payment_intent_id
    assert await _intents_stored(db) == 1

    await pay_as_fan(localstripe_url, checked_out.payment_intent_id)
    confirmed = await world.service.confirm_booking("fan-1", held.booking_id)
    assert confirmed.status == "confirmed"
    # A paid booking's checkout answers the booking as it is.
    assert (await world.service.checkout_booking("fan-1", held.booking_id)).status == "confirmed"
    await assert_never_sold_twice(db, event.event_id)


async def test_checkout_is_the_owners_and_only_for_a_live_hold(world, db):
    event = await create_event(db)
    held = await world.service.reserve_seats(hold("fan-1", event.event_id, event.seat_ids[0]))
    with pytest.raises(NotFound) as other:
        await world.service.checkout_booking("fan-2", held.booking_id)
    assert other.value.reason == "BOOKING_NOT_FOUND"

    await world.service.cancel_booking("fan-1", held.booking_id)
    with pytest.raises(FailedPrecondition) as cancelled:
        await world.service.checkout_booking("fan-1", held.booking_id)
    assert cancelled.value.reason == "BOOKING_CANCELLED"

    expiring = await world.service.reserve_seats(hold("fan-1", event.event_id, event.seat_ids[1]))
    await age_booking(db, expiring.booking_id)
    with pytest.raises(FailedPrecondition) as ended:
        await world.service.checkout_booking("fan-1", expiring.booking_id)
    assert ended.value.reason == "HOLD_EXPIRED"
    assert await _intents_stored(db) == 0


async def test_a_hold_nobody_checked_out_expires_with_no_intent_to_cancel(world, db, redis):
    event = await create_event(db)
    held = await world.service.reserve_seats(hold("fan-1", event.event_id, event.seat_ids[0]))
    await age_booking(db, held.booking_id)
    await sweep_once(world.service)
    after = await world.service.get_booking("fan-1", held.booking_id)
    assert (after.status, after.payment_intent_id) == ("expired", None)
    assert (await ticket_states(db, event.event_id))[event.seat_ids[0]] == ("available", None)
    async with db.connect() as conn:
        assert await conn.scalar(text("SELECT count(*) FROM payment_cancellations")) == 0


async def test_a_cancellation_racing_checkouts_leaves_no_payable_intent(world, db, localstripe_url):
    """Whichever comes first, an intent stored for the booking is cancelled with it, and an intent made for a
    booking already cancelled is never stored nor handed out (and is cancelled in Stripe)."""
    event = await create_event(db)
    for round_ in range(6):
        held = await world.service.reserve_seats(hold(f"fan-{round_}", event.event_id, event.seat_ids[round_]))
        results = await asyncio.gather(
            world.service.checkout_booking(f"fan-{round_}", held.booking_id),
            world.service.cancel_booking(f"fan-{round_}", held.booking_id),
            return_exceptions=True,
        )
        checkout, cancelled = results
        assert not isinstance(cancelled, BaseException), cancelled
        assert cancelled.status == "cancelled"
        if isinstance(checkout, BaseException):
            assert isinstance(checkout, FailedPrecondition), checkout
            assert checkout.reason == "BOOKING_CANCELLED"
        after = await world.service.get_booking(f"fan-{round_}", held.booking_id)
        assert after.status == "cancelled"
        if after.payment_intent_id:
            assert (await intent_object(localstripe_url, after.payment_intent_id))["status"] == "canceled"
    await assert_never_sold_twice(db, event.event_id)


async def test_stripe_down_at_checkout_keeps_the_hold_for_a_retry(db, redis, redis_url, localstripe_url):
    event = await create_event(db)
    down = await build_world(
        db, booking_settings(f"http://127.0.0.1:{free_port()}", redis_url=redis_url, stripe_max_retries=0), redis_url
    )
    try:
        held = await down.service.reserve_seats(hold("fan-1", event.event_id, event.seat_ids[0]))
        with pytest.raises(Unavailable) as unavailable:
            await down.service.checkout_booking("fan-1", held.booking_id)
        assert unavailable.value.reason == "PAYMENTS_UNAVAILABLE"
    finally:
        await down.aclose()
    assert (await ticket_states(db, event.event_id))[event.seat_ids[0]] == ("reserved", str(held.booking_id))
    async with booking_world(db, redis_url, localstripe_url) as world:
        retried = await world.service.checkout_booking("fan-1", held.booking_id)
    assert retried.client_secret
