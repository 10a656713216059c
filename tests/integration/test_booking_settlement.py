"""Settlement you can trust: a payment confirms a booking only when the PaymentIntent Stripe (localstripe) returns
is the booking's own, succeeded, for its amount and currency. Forged or foreign payments change nothing, are
counted by reason, and money that pays for no booking goes back."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid

import httpx
import pytest
from aiohttp import web
from prometheus_client import REGISTRY
from sqlalchemy import text

from booking_svc.model import PaymentStatus, SettlementRefusal, SettleOutcome
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
from tix.errors import FailedPrecondition
from tix.settings import DEVELOPMENT_STRIPE_API_KEY
from tix_dev.readiness import free_port

pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=<...>':DeprecationWarning")


@pytest.fixture
async def world(db, redis, redis_url, localstripe_url):
    async with booking_world(db, redis_url, localstripe_url) as built:
        yield built


def _refused(reason: SettlementRefusal, source: str = "webhook") -> float:
    value = REGISTRY.get_sample_value(
        "tix_booking_settlement_refused_total", {"reason": reason.value, "source": source}
    )
    return value or 0.0


async def _create_intent(localstripe_url: str, amount: int, currency: str, metadata: dict[str, str]) -> dict:
    """A PaymentIntent made on the account directly (not by booking), as whoever holds the key could."""
    data = {"amount": str(amount), "currency": currency}
    data.update({f"metadata[{k}]": v for k, v in metadata.items()})
    async with httpx.AsyncClient(
        base_url=localstripe_url, headers={"Authorization": f"Bearer {DEVELOPMENT_STRIPE_API_KEY}"}
    ) as http:
        created = await http.post("/v1/payment_intents", data=data)
        created.raise_for_status()
        return created.json()


async def _deliver(world, localstripe_url: str, payment_intent_id: str) -> None:
    payload = stripe_event("payment_intent.succeeded", await intent_object(localstripe_url, payment_intent_id))
    await world.service.handle_stripe_webhook(payload, sign(payload))


async def _unchanged(world, db, event, booking) -> None:
    after = await world.service.get_booking("fan-1", booking.booking_id)
    assert after.status == "reserved"
    assert after.payment_status == "requires_payment"
    assert after.payment_intent_id == booking.payment_intent_id
    assert (await ticket_states(db, event.event_id))[booking.seat_ids[0]] == ("reserved", str(booking.booking_id))
    await assert_never_sold_twice(db, event.event_id)


@pytest.mark.parametrize(("amount", "currency"), [(1, "usd"), (None, "usd"), (None, "eur")])
async def test_a_paid_intent_that_only_names_the_booking_in_its_metadata_confirms_nothing_and_is_refunded(
    world, db, localstripe_url, amount, currency
):
    """A 1-cent intent, an intent for the full amount, an intent in another currency: each one names the booking
    in its metadata and is paid, and its signed webhook arrives. None is the booking's own intent."""
    event = await create_event(db)
    booking = await world.service.reserve_seats(named("fan-1", event.event_id, event.seat_ids[0]))
    foreign = await _create_intent(
        localstripe_url, amount or booking.total_minor, currency,
        {"booking_id": str(booking.booking_id), "user_id": "fan-1", "event_id": str(event.event_id)},
    )
    await pay_as_fan(localstripe_url, foreign["id"])
    before = _refused(SettlementRefusal.FOREIGN_INTENT)

    await _deliver(world, localstripe_url, foreign["id"])

    await _unchanged(world, db, event, booking)
    assert _refused(SettlementRefusal.FOREIGN_INTENT) == before + 1
    # The money it took pays for no seat: it goes back.
    assert len(await refunds_of(localstripe_url, foreign["id"])) == 1
    # ConfirmBooking looks at the booking's own intent, which nobody paid.
    with pytest.raises(FailedPrecondition) as incomplete:
        await world.service.confirm_booking("fan-1", booking.booking_id)
    assert incomplete.value.reason == "PAYMENT_INCOMPLETE"


@pytest.mark.parametrize(
    ("amount", "currency", "refusal"),
    [(1, "usd", SettlementRefusal.AMOUNT_MISMATCH), (None, "eur", SettlementRefusal.CURRENCY_MISMATCH)],
)
async def test_the_bookings_own_intent_for_another_amount_or_currency_confirms_nothing(
    world, db, localstripe_url, amount, currency, refusal
):
    """The intent stored with the booking was swapped for one of 1 cent or in euros (a bug, or someone with
    database access): paying it and delivering its webhook, or calling ConfirmBooking, confirms nothing."""
    event = await create_event(db)
    booking = await world.service.reserve_seats(named("fan-1", event.event_id, event.seat_ids[0]))
    swapped = await _create_intent(localstripe_url, amount or booking.total_minor, currency,
                                   {"booking_id": str(booking.booking_id)})
    async with db.begin() as conn:
        await conn.execute(
            text("UPDATE payments SET payment_intent_id = :pi, client_secret = :secret WHERE booking_id = :b"),
            {"pi": swapped["id"], "secret": swapped["client_secret"], "b": booking.booking_id},
        )
    booking = await world.service.get_booking("fan-1", booking.booking_id)
    await pay_as_fan(localstripe_url, swapped["id"])
    by_webhook, by_confirm = _refused(refusal), _refused(refusal, "confirm")

    await _deliver(world, localstripe_url, swapped["id"])
    with pytest.raises(FailedPrecondition) as mismatch:
        await world.service.confirm_booking("fan-1", booking.booking_id)

    assert mismatch.value.reason == "PAYMENT_MISMATCH"
    await _unchanged(world, db, event, booking)
    assert (_refused(refusal), _refused(refusal, "confirm")) == (by_webhook + 1, by_confirm + 1)
    result = await world.service.settle_paid_booking(booking.booking_id)
    assert (result.outcome, result.refusal) == (SettleOutcome.REFUSED, refusal)


async def test_a_webhook_body_claiming_the_own_intent_succeeded_is_checked_with_stripe(world, db, localstripe_url):
    event = await create_event(db)
    booking = await world.service.reserve_seats(named("fan-1", event.event_id, event.seat_ids[0]))
    claimed = await intent_object(localstripe_url, booking.payment_intent_id)
    claimed.update(status="succeeded", amount=1)  # signed, but not what Stripe has
    payload = stripe_event("payment_intent.succeeded", claimed)
    before = _refused(SettlementRefusal.NOT_SUCCEEDED)

    await world.service.handle_stripe_webhook(payload, sign(payload))

    await _unchanged(world, db, event, booking)
    assert _refused(SettlementRefusal.NOT_SUCCEEDED) == before + 1
    # The real payment still confirms it afterwards.
    await pay_as_fan(localstripe_url, booking.payment_intent_id)
    await _deliver(world, localstripe_url, booking.payment_intent_id)
    assert (await world.service.get_booking("fan-1", booking.booking_id)).status == "confirmed"


async def test_a_succeeded_payment_whose_booking_is_gone_is_refunded(world, db, localstripe_url):
    gone = str(uuid.uuid4())
    orphan = await _create_intent(localstripe_url, 4200, "usd", {"booking_id": gone})
    await pay_as_fan(localstripe_url, orphan["id"])
    before = _refused(SettlementRefusal.NO_BOOKING)

    await _deliver(world, localstripe_url, orphan["id"])

    assert _refused(SettlementRefusal.NO_BOOKING) == before + 1
    refunds = await refunds_of(localstripe_url, orphan["id"])
    assert [r["amount"] for r in refunds] == [4200]
    async with db.connect() as conn:
        assert await conn.scalar(text("SELECT count(*) FROM bookings")) == 0


# --- the withdraw race ------------------------------------------------------------------------------------------


@pytest.fixture
async def stalled_stripe():
    """A Stripe edge that holds every request until the test lets it go, then answers 503 (an outage met
    mid-request): the first attempt of a reservation fails only when the test says so."""
    arrived, release = asyncio.Event(), asyncio.Event()

    async def edge(request: web.Request) -> web.Response:
        arrived.set()
        await release.wait()
        return web.json_response({"error": {"type": "api_error", "message": "unavailable"}}, status=503)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", edge)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield f"http://127.0.0.1:{port}", arrived, release
    release.set()
    await runner.cleanup()


async def test_a_retry_that_attached_a_payment_keeps_the_booking_when_the_first_attempt_fails(
    db, redis, redis_url, localstripe_url, stalled_stripe
):
    """Replica A reserves and asks Stripe for the PaymentIntent; Stripe stalls. The fan retries (same request id)
    and reaches replica B, which meets the booking, makes the intent and hands the fan its client secret. Then A's
    call fails. A must not withdraw the booking the fan is now paying: once paid, it confirms."""
    stalled_url, arrived, release = stalled_stripe
    event = await create_event(db)
    seat = event.seat_ids[0]
    replica_a = await build_world(
        db, booking_settings(stalled_url, redis_url=redis_url, stripe_max_retries=0), redis_url
    )
    replica_b = await build_world(db, booking_settings(localstripe_url, redis_url=redis_url), redis_url)
    try:
        first = asyncio.create_task(replica_a.service.reserve_seats(named("fan-1", event.event_id, seat,
                                                                           request_id="r-1")))
        await asyncio.wait_for(arrived.wait(), 10)
        retried = await replica_b.service.reserve_seats(named("fan-1", event.event_id, seat, request_id="r-1"))
        assert retried.client_secret
        release.set()
        answered = await asyncio.wait_for(first, 10)
    finally:
        await replica_a.aclose()
        await replica_b.aclose()
    # Both attempts answer with the one booking and the intent the fan holds.
    assert (answered.booking_id, answered.payment_intent_id) == (retried.booking_id, retried.payment_intent_id)
    async with booking_world(db, redis_url, localstripe_url) as world:
        await pay_as_fan(localstripe_url, retried.payment_intent_id)
        await _deliver(world, localstripe_url, retried.payment_intent_id)
        paid = await world.service.get_booking("fan-1", retried.booking_id)
    assert paid.status == "confirmed"
    assert (await ticket_states(db, event.event_id))[seat] == ("booked", str(retried.booking_id))
    await assert_never_sold_twice(db, event.event_id)


async def test_withdrawing_and_attaching_a_payment_exclude_each_other(world, db):
    """Whichever comes first wins: a withdrawn booking takes no PaymentIntent, and a booking with one attached is
    not withdrawn."""
    event = await create_event(db)
    repository = world.repository
    await repository.load_event_catalog(event.event_id)  # makes the event's ticket rows
    withdrawn_first = await repository.reserve(
        booking_id=uuid.uuid4(), event_id=event.event_id, user_id="fan-1", seat_ids=[event.seat_ids[0]],
        currency="USD", hold_seconds=600, max_seats_per_user=8, request_id="a",
    )
    attached_first = await repository.reserve(
        booking_id=uuid.uuid4(), event_id=event.event_id, user_id="fan-2", seat_ids=[event.seat_ids[1]],
        currency="USD", hold_seconds=600, max_seats_per_user=8, request_id="b",
    )
    assert withdrawn_first.booking_id
    assert attached_first.booking_id

    assert await repository.withdraw_unpaid_reservation(withdrawn_first.booking_id) is not None
    assert await repository.attach_payment_intent(
        withdrawn_first.booking_id, "pi_late", "pi_late_secret", PaymentStatus.REQUIRES_PAYMENT
    ) is None

    assert await repository.attach_payment_intent(
        attached_first.booking_id, "pi_kept", "pi_kept_secret", PaymentStatus.REQUIRES_PAYMENT
    ) == ("pi_kept", "pi_kept_secret", PaymentStatus.REQUIRES_PAYMENT)
    assert await repository.withdraw_unpaid_reservation(attached_first.booking_id) is None
    assert (await repository.get_booking(attached_first.booking_id)).payment_intent_id == "pi_kept"
    await assert_never_sold_twice(db, event.event_id)


# --- cancellations owed, reconcile --------------------------------------------------------------------------------


async def test_a_cancellation_stripe_did_not_answer_is_retried_by_the_sweeper_until_done(
    db, redis, redis_url, localstripe_url
):
    event = await create_event(db)
    async with booking_world(db, redis_url, localstripe_url) as world:
        booking = await world.service.reserve_seats(named("fan-1", event.event_id, event.seat_ids[0]))
    await age_booking(db, booking.booking_id)
    # The hold ends while Stripe is unreachable: the booking expires, its intent cannot be cancelled.
    down = await build_world(
        db, booking_settings(f"http://127.0.0.1:{free_port()}", redis_url=redis_url, stripe_max_retries=0), redis_url
    )
    try:
        assert (await sweep_once(down.service))[0] == 1
        # Still down at the next due attempt: it stays owed, with one more attempt counted.
        await _make_cancellations_due(db)
        assert (await sweep_once(down.service))[2] == 0
    finally:
        await down.aclose()
    assert await _owed(db) == [(booking.payment_intent_id, 2)]
    assert REGISTRY.get_sample_value("tix_booking_payment_cancellations_owed") == 1
    assert (await intent_object(localstripe_url, booking.payment_intent_id))["status"] != "canceled"

    async with booking_world(db, redis_url, localstripe_url) as world:
        await _make_cancellations_due(db)
        assert (await sweep_once(world.service))[2] == 1
        after = await world.service.get_booking("fan-1", booking.booking_id)
    assert (await intent_object(localstripe_url, booking.payment_intent_id))["status"] == "canceled"
    assert (after.status, after.payment_status) == ("expired", "canceled")
    assert await _owed(db) == []
    assert REGISTRY.get_sample_value("tix_booking_payment_cancellations_owed") == 0


async def _make_cancellations_due(db) -> None:
    async with db.begin() as conn:
        await conn.execute(text("UPDATE payment_cancellations SET next_attempt_at = now()"))


async def _owed(db) -> list[tuple[str, int]]:
    async with db.connect() as conn:
        rows = await conn.execute(text("SELECT payment_intent_id, attempts FROM payment_cancellations"))
        return [(r.payment_intent_id, r.attempts) for r in rows]


async def test_reconcile_since_looks_only_at_recent_bookings(world, db, localstripe_url, settings_env):
    event = await create_event(db)
    recent = await world.service.reserve_seats(named("fan-1", event.event_id, event.seat_ids[0]))
    old = await world.service.reserve_seats(named("fan-2", event.event_id, event.seat_ids[1]))
    for booking in (recent, old):
        await pay_as_fan(localstripe_url, booking.payment_intent_id)  # and the webhooks are lost
    async with db.begin() as conn:
        for table in ("bookings", "payments"):
            await conn.execute(
                text(f"UPDATE {table} SET updated_at = now() - interval '3 hours' WHERE booking_id = :b"),
                {"b": old.booking_id},
            )
    env = {**os.environ, **settings_env, "TIX_STRIPE_API_BASE": localstripe_url}
    done = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "tix.cli", "bookings", "reconcile", "--since", "2h"],
        env=env, capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "paid but not confirmed: 1" in done.stdout
    assert (await world.service.get_booking("fan-1", recent.booking_id)).status == "confirmed"
    assert (await world.service.get_booking("fan-2", old.booking_id)).status == "reserved"

    everything = await reconcile_bookings(world.service, world.repository, world.payments, apply=True)
    assert everything.paid_not_confirmed == 1
    assert (await world.service.get_booking("fan-2", old.booking_id)).status == "confirmed"

    bad = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "tix.cli", "bookings", "reconcile", "--since", "soon"],
        env=env, capture_output=True, text=True, timeout=60,
    )
    assert bad.returncode == 2
    assert "--since" in bad.stderr
