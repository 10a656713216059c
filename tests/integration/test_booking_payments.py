"""Stripe's side of booking: signed webhooks (duplicated, reordered, forged), late payments (rebooked or refunded,
never paid without a ticket), Stripe outages while reserving, and reconciliation of lost webhooks."""

from __future__ import annotations

import asyncio
import time

import pytest
from sqlalchemy import text

from booking_svc.model import SettleOutcome
from booking_svc.reconcile import reconcile_bookings
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
    refunds_of,
    sign,
    stripe_event,
    ticket_states,
)
from tix.errors import InvalidArgument, Unavailable
from tix_dev.readiness import free_port

pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=<...>':DeprecationWarning")


@pytest.fixture
async def world(db, redis, redis_url, localstripe_url):
    async with booking_world(db, redis_url, localstripe_url) as built:
        yield built


async def _stripe_event_count(engine) -> int:
    async with engine.connect() as conn:
        return int(await conn.scalar(text("SELECT count(*) FROM stripe_events")))


async def _paid_webhook(localstripe_url: str, payment_intent_id: str, event_id: str | None = None) -> bytes:
    return stripe_event("payment_intent.succeeded", await intent_object(localstripe_url, payment_intent_id), event_id)


async def test_the_succeeded_webhook_confirms_the_booking_once(world, db, localstripe_url):
    event = await create_event(db)
    booking = await world.service.reserve_seats(named("fan-1", event.event_id, event.seat_ids[0]))
    await pay_as_fan(localstripe_url, booking.payment_intent_id)
    payload = await _paid_webhook(localstripe_url, booking.payment_intent_id, "evt_paid_1")

    await world.service.handle_stripe_webhook(payload, sign(payload))
    confirmed = await world.service.get_booking("fan-1", booking.booking_id)
    assert confirmed.status == "confirmed"
    # Stripe retries deliveries: the same event again changes nothing (and is recorded once).
    await world.service.handle_stripe_webhook(payload, sign(payload))
    assert (await world.service.get_booking("fan-1", booking.booking_id)).confirmed_at == confirmed.confirmed_at
    assert await _stripe_event_count(db) == 1
    # ConfirmBooking after the webhook is a no-op returning the same booking.
    assert (await world.service.confirm_booking("fan-1", booking.booking_id)).status == "confirmed"
    await assert_never_sold_twice(db, event.event_id)


async def test_a_forged_webhook_is_refused_and_changes_nothing(world, db, localstripe_url):
    event = await create_event(db)
    booking = await world.service.reserve_seats(named("fan-1", event.event_id, event.seat_ids[0]))
    intent = await intent_object(localstripe_url, booking.payment_intent_id)
    intent["status"] = "succeeded"  # a forger claims the fan paid
    payload = stripe_event("payment_intent.succeeded", intent)

    for signature in (sign(payload, secret="whsec_not_ours"), "", "t=1,v1=deadbeef", sign(payload + b" ")):
        with pytest.raises(InvalidArgument) as refused:
            await world.service.handle_stripe_webhook(payload, signature)
        assert refused.value.reason == "WEBHOOK_SIGNATURE_INVALID"
    assert (await world.service.get_booking("fan-1", booking.booking_id)).status == "reserved"
    assert await _stripe_event_count(db) == 0


async def test_reordered_webhooks_are_harmless(world, db, localstripe_url):
    event = await create_event(db)
    booking = await world.service.reserve_seats(named("fan-1", event.event_id, event.seat_ids[0]))
    await pay_as_fan(localstripe_url, booking.payment_intent_id)
    succeeded = await _paid_webhook(localstripe_url, booking.payment_intent_id)
    failed_intent = await intent_object(localstripe_url, booking.payment_intent_id)
    failed_intent["status"] = "requires_payment_method"
    failed = stripe_event("payment_intent.payment_failed", failed_intent)

    # The success arrives first, then an older failure of a previous card attempt.
    await world.service.handle_stripe_webhook(succeeded, sign(succeeded))
    await world.service.handle_stripe_webhook(failed, sign(failed))
    after = await world.service.get_booking("fan-1", booking.booking_id)
    assert (after.status, after.payment_status) == ("confirmed", "succeeded")


async def test_a_failed_payment_keeps_the_hold_until_it_expires(world, db, localstripe_url):
    event = await create_event(db)
    booking = await world.service.reserve_seats(named("fan-1", event.event_id, event.seat_ids[0]))
    intent = await intent_object(localstripe_url, booking.payment_intent_id)
    payload = stripe_event("payment_intent.payment_failed", intent)
    await world.service.handle_stripe_webhook(payload, sign(payload))
    after = await world.service.get_booking("fan-1", booking.booking_id)
    assert (after.status, after.payment_status) == ("reserved", "failed")
    assert (await ticket_states(db, event.event_id))[event.seat_ids[0]][0] == "reserved"


async def test_payment_after_expiry_with_the_seat_resold_is_refunded(world, db, redis, localstripe_url):
    event = await create_event(db)
    seat = event.seat_ids[0]
    slow = await world.service.reserve_seats(named("slow-fan", event.event_id, seat))
    await age_booking(db, slow.booking_id)
    await redis.flushdb()
    # The hold ran out, so the seat is sellable again (before any sweeper): another fan takes it.
    quick = await world.service.reserve_seats(named("quick-fan", event.event_id, seat))
    # Then the slow fan's card goes through, and Stripe says so.
    await pay_as_fan(localstripe_url, slow.payment_intent_id)
    payload = await _paid_webhook(localstripe_url, slow.payment_intent_id)
    await world.service.handle_stripe_webhook(payload, sign(payload))

    refunded = await world.service.get_booking("slow-fan", slow.booking_id)
    assert refunded.status == "refunded"
    assert "sold to someone else" in refunded.status_reason
    assert refunded.refund_id
    assert refunded.payment_status == "refunded"
    refunds = await refunds_of(localstripe_url, slow.payment_intent_id)
    assert [r["id"] for r in refunds] == [refunded.refund_id]
    assert refunds[0]["amount"] == slow.total_minor
    assert (await ticket_states(db, event.event_id))[seat] == ("reserved", str(quick.booking_id))
    await assert_never_sold_twice(db, event.event_id)


async def test_the_sweeper_refunds_a_payment_that_raced_the_expiry_and_lost_the_seat(world, db, redis, localstripe_url):
    event = await create_event(db)
    seat = event.seat_ids[0]
    slow = await world.service.reserve_seats(named("slow-fan", event.event_id, seat))
    await age_booking(db, slow.booking_id)
    await redis.flushdb()
    await world.service.reserve_seats(named("quick-fan", event.event_id, seat))
    await pay_as_fan(localstripe_url, slow.payment_intent_id)
    # The webhook is lost; the sweeper expires the booking, tries to cancel the intent, finds it paid.
    await sweep_once(world.service)
    refunded = await world.service.get_booking("slow-fan", slow.booking_id)
    assert refunded.status == "refunded"
    assert refunded.refund_id
    assert len(await refunds_of(localstripe_url, slow.payment_intent_id)) == 1
    await assert_never_sold_twice(db, event.event_id)


async def test_payment_after_expiry_with_the_seat_still_free_is_rebooked(world, db, redis, localstripe_url):
    event = await create_event(db)
    seat = event.seat_ids[0]
    booking = await world.service.reserve_seats(named("fan-1", event.event_id, seat))
    await age_booking(db, booking.booking_id)
    # Paid just as the hold ran out, before the sweeper noticed: ConfirmBooking books the (still free) seat.
    await pay_as_fan(localstripe_url, booking.payment_intent_id)
    confirmed = await world.service.confirm_booking("fan-1", booking.booking_id)
    assert confirmed.status == "confirmed"
    assert (await ticket_states(db, event.event_id))[seat] == ("booked", str(booking.booking_id))

    # Paid after expiry, and the sweeper got there first: it frees the seat, finds the intent paid, and the
    # late-payment path books the same seat again under a new fence.
    other = await world.service.reserve_seats(named("fan-2", event.event_id, event.seat_ids[1]))
    await age_booking(db, other.booking_id)
    await redis.flushdb()
    await pay_as_fan(localstripe_url, other.payment_intent_id)
    assert (await sweep_once(world.service))[0] == 1
    rebooked = await world.service.get_booking("fan-2", other.booking_id)
    assert rebooked.status == "confirmed"
    assert "still free" in rebooked.status_reason
    assert rebooked.fence > other.fence
    assert (await ticket_states(db, event.event_id))[event.seat_ids[1]] == ("booked", str(other.booking_id))
    assert await refunds_of(localstripe_url, other.payment_intent_id) == []
    # Its webhook arriving afterwards is a no-op.
    payload = await _paid_webhook(localstripe_url, other.payment_intent_id)
    await world.service.handle_stripe_webhook(payload, sign(payload))
    assert (await world.service.get_booking("fan-2", other.booking_id)).fence == rebooked.fence
    await assert_never_sold_twice(db, event.event_id)


async def test_a_paid_intent_found_while_cancelling_takes_the_late_payment_path(world, db, localstripe_url):
    event = await create_event(db)
    booking = await world.service.reserve_seats(named("fan-1", event.event_id, event.seat_ids[0]))
    await pay_as_fan(localstripe_url, booking.payment_intent_id)
    # The fan paid in another tab and cancelled here before the webhook: the seat is still free, so it is booked.
    after = await world.service.cancel_booking("fan-1", booking.booking_id)
    assert after.status == "confirmed"
    await assert_never_sold_twice(db, event.event_id)


async def test_reconcile_repairs_a_lost_webhook(world, db, redis, localstripe_url):
    event = await create_event(db)
    kept = await world.service.reserve_seats(named("fan-1", event.event_id, event.seat_ids[0]))
    lost = await world.service.reserve_seats(named("fan-2", event.event_id, event.seat_ids[1]))
    await pay_as_fan(localstripe_url, kept.payment_intent_id)
    # fan-2's hold ran out, the seat was resold, then fan-2's payment went through and its webhook was lost.
    await age_booking(db, lost.booking_id)
    await redis.flushdb()
    async with db.begin() as conn:  # expired without the sweeper cancelling the intent (a crash in between)
        await conn.execute(text("UPDATE bookings SET status = 'expired' WHERE booking_id = :b"),
                           {"b": lost.booking_id})
        await conn.execute(
            text("UPDATE tickets SET status = 'available', booking_id = NULL, reserved_until = NULL"
                 " WHERE booking_id = :b"), {"b": lost.booking_id},
        )
    await world.service.reserve_seats(named("fan-3", event.event_id, event.seat_ids[1]))
    await pay_as_fan(localstripe_url, lost.payment_intent_id)

    dry = await reconcile_bookings(world.service, world.repository, world.payments, apply=False)
    assert dry.paid_not_confirmed == 2
    assert not dry.consistent(applied=False)
    report = await reconcile_bookings(world.service, world.repository, world.payments, apply=True)
    assert report.consistent(applied=True), report.summary()
    assert (await world.service.get_booking("fan-1", kept.booking_id)).status == "confirmed"
    refunded = await world.service.get_booking("fan-2", lost.booking_id)
    assert refunded.status == "refunded"
    assert refunded.refund_id
    again = await reconcile_bookings(world.service, world.repository, world.payments, apply=False)
    assert again.consistent(applied=False), again.summary()
    await assert_never_sold_twice(db, event.event_id)


async def test_stripe_down_while_reserving_gives_the_seats_back(db, redis, redis_url):
    event = await create_event(db)
    dead_stripe = f"http://127.0.0.1:{free_port()}"
    down = await build_world(
        db, booking_settings(dead_stripe, redis_url=redis_url, stripe_max_retries=1), redis_url
    )
    try:
        with pytest.raises(Unavailable) as unavailable:
            await down.service.reserve_seats(named("fan-1", event.event_id, event.seat_ids[0], request_id="r"))
        assert unavailable.value.reason == "PAYMENTS_UNAVAILABLE"
    finally:
        await down.aclose()
    assert (await ticket_states(db, event.event_id))[event.seat_ids[0]] == ("available", None)
    async with db.connect() as conn:
        assert await conn.scalar(text("SELECT count(*) FROM bookings")) == 0


async def test_settling_twice_is_idempotent(world, db, localstripe_url):
    event = await create_event(db)
    booking = await world.service.reserve_seats(named("fan-1", event.event_id, event.seat_ids[0]))
    await pay_as_fan(localstripe_url, booking.payment_intent_id)
    first = await world.service.settle_paid_booking(booking.booking_id)
    second = await world.service.settle_paid_booking(booking.booking_id)
    assert (first.outcome, second.outcome) == (SettleOutcome.CONFIRMED, SettleOutcome.ALREADY_SETTLED)


async def test_the_reconcile_command_repairs_and_exits_zero_when_consistent(
    world, db, localstripe_url, settings_env, monkeypatch, capsys
):
    from booking_svc.reconcile import run_reconcile
    from booking_svc.settings import BookingSettings

    monkeypatch.setenv("TIX_STRIPE_API_BASE", localstripe_url)
    event = await create_event(db)
    booking = await world.service.reserve_seats(named("fan-1", event.event_id, event.seat_ids[0]))
    await pay_as_fan(localstripe_url, booking.payment_intent_id)  # and the webhook never came

    assert await run_reconcile(BookingSettings(), apply=False) == 1
    assert await run_reconcile(BookingSettings(), apply=True) == 0
    out = capsys.readouterr().out
    assert "paid but not confirmed: 1" in out
    assert out.rstrip().endswith("consistent")
    assert (await world.service.get_booking("fan-1", booking.booking_id)).status == "confirmed"
    assert await run_reconcile(BookingSettings(), apply=False) == 0


async def test_a_burst_of_fans_beyond_the_stripe_rate_is_paced_into_bookings_not_failed(
    db, redis, redis_url, localstripe_url
):
    """Stripe allows 25 requests/s in test mode: 60 fans reserving at once must all get their booking and
    PaymentIntent, the calls spread over time at the configured rate instead of failing with 429s."""
    event = await create_event(db, sections=1, rows=6, seats_per_row=10, layout_id="paced-60")
    paced = await build_world(
        db,
        booking_settings(
            localstripe_url, redis_url=redis_url, stripe_requests_per_second=20.0,
            stripe_max_backlog=100, stripe_max_wait_seconds=10.0,
        ),
        redis_url,
    )
    try:
        started = time.monotonic()
        bookings = await asyncio.gather(*(
            paced.service.reserve_seats(named(f"fan-{i}", event.event_id, seat))
            for i, seat in enumerate(event.seat_ids)
        ))
        elapsed = time.monotonic() - started
    finally:
        await paced.aclose()
    assert len(bookings) == 60
    assert all(b.status == "reserved" and b.payment_intent_id.startswith("pi_") for b in bookings)
    assert len({b.payment_intent_id for b in bookings}) == 60
    # A burst of 20 (one second's worth) at once, then 20/s: the other 40 take at least 2 s.
    assert elapsed >= 1.8, elapsed
    await assert_never_sold_twice(db, event.event_id)
