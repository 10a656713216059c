"""The payment gateway against a real localstripe: round trips, webhooks, pacing, retries and fail-fast backlog."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
import uuid
from types import SimpleNamespace

import httpx
import pytest
from aiohttp import web

from booking_svc.model import PaymentIntentInfo
from booking_svc.payments import PaymentGateway
from booking_svc.settings import BookingSettings
from tix.errors import InvalidArgument, Unavailable
from tix.settings import DEVELOPMENT_STRIPE_API_KEY
from tix_dev.localstripe import configure_webhook
from tix_dev.readiness import free_port

WEBHOOK_SECRET = "whsec_payments_test"

# The SDK's HTTPXClient posts form bodies with httpx's deprecated `data=bytes`; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=<...>':DeprecationWarning")


def _settings(api_base: str, **overrides) -> BookingSettings:
    values = {
        "stripe_api_base": api_base,
        "stripe_webhook_secret": WEBHOOK_SECRET,
        "stripe_max_requests_per_second": 1000,
        "stripe_max_backlog": 1000,
    }
    values.update(overrides)
    return BookingSettings(**values)


@pytest.fixture
async def gateway(localstripe_url):
    gw = PaymentGateway(_settings(localstripe_url))
    yield gw
    await gw.aclose()


async def _create(gw: PaymentGateway, booking_id: str | None = None, amount: int = 12_000) -> PaymentIntentInfo:
    return await gw.create_payment_intent(
        booking_id=booking_id or f"bk_{uuid.uuid4().hex[:12]}",
        amount_minor=amount,
        currency="USD",
        user_id="fan-1",
        event_id=42,
    )


async def _pay_as_fan(api_base: str, payment_intent_id: str, payment_method: str = "pm_card_visa") -> dict:
    """What Stripe.js does for a fan: attach a test card, then confirm. (localstripe cannot take the payment method
    in the confirm call itself, so it is attached first.)"""
    async with httpx.AsyncClient(base_url=api_base, headers={"Authorization": f"Bearer {DEVELOPMENT_STRIPE_API_KEY}"}) as http:
        attached = await http.post(f"/v1/payment_intents/{payment_intent_id}", data={"payment_method": payment_method})
        attached.raise_for_status()
        confirmed = await http.post(f"/v1/payment_intents/{payment_intent_id}/confirm")
        return confirmed.json()


def _signed(payload: bytes, secret: str = WEBHOOK_SECRET, timestamp: int | None = None) -> str:
    timestamp = int(time.time()) if timestamp is None else timestamp
    signature = hmac.new(secret.encode(), b"%d.%s" % (timestamp, payload), hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={signature}"


async def test_payment_intent_carries_booking_metadata_and_round_trips(gateway, localstripe_url):
    created = await _create(gateway, booking_id="bk_roundtrip")
    assert created.status == "requires_payment_method"
    assert created.client_secret.startswith(created.payment_intent_id)
    assert (created.amount_minor, created.currency) == (12_000, "usd")
    assert created.metadata == {"booking_id": "bk_roundtrip", "user_id": "fan-1", "event_id": "42"}

    assert await gateway.retrieve_payment_intent(created.payment_intent_id) == created
    paid = await _pay_as_fan(localstripe_url, created.payment_intent_id)
    assert paid["status"] == "succeeded"
    assert (await gateway.retrieve_payment_intent(created.payment_intent_id)).status == "succeeded"


async def test_creating_twice_for_one_booking_gives_one_payment_intent(gateway):
    first, second = await asyncio.gather(_create(gateway, "bk_twice"), _create(gateway, "bk_twice"))
    third = await _create(gateway, "bk_twice")
    assert first.payment_intent_id == second.payment_intent_id == third.payment_intent_id


async def test_cancelling_is_harmless_when_already_canceled(gateway):
    created = await _create(gateway)
    assert (await gateway.cancel_payment_intent(created.payment_intent_id)).status == "canceled"
    assert (await gateway.cancel_payment_intent(created.payment_intent_id)).status == "canceled"


async def test_cancelling_a_paid_intent_reports_it_succeeded(gateway, localstripe_url):
    created = await _create(gateway)
    await _pay_as_fan(localstripe_url, created.payment_intent_id)
    assert (await gateway.cancel_payment_intent(created.payment_intent_id)).status == "succeeded"


async def test_refund_is_idempotent_per_booking(gateway, localstripe_url):
    created = await _create(gateway, "bk_refund")
    await _pay_as_fan(localstripe_url, created.payment_intent_id)
    refund_id = await gateway.refund_payment(created.payment_intent_id, booking_id="bk_refund", reason="seats gone")
    assert refund_id.startswith("re_")
    assert await gateway.refund_payment(created.payment_intent_id, booking_id="bk_refund", reason="again") == refund_id
    # Another process (a fresh gateway, no memory) finds the same refund instead of refunding twice.
    other = PaymentGateway(_settings(localstripe_url))
    try:
        assert await other.refund_payment(created.payment_intent_id, booking_id="bk_refund", reason="x") == refund_id
    finally:
        await other.aclose()
    async with httpx.AsyncClient(base_url=localstripe_url, headers={"Authorization": "Bearer sk_test_x"}) as http:
        refunds = (await http.get("/v1/refunds", params={"payment_intent": created.payment_intent_id})).json()
    assert [r["id"] for r in refunds["data"]] == [refund_id]
    assert refunds["data"][0]["metadata"] == {"booking_id": "bk_refund", "reason": "seats gone"}


def test_parse_webhook_accepts_a_signed_payload_and_rejects_a_forged_one(gateway):
    intent = {
        "id": "pi_signed", "object": "payment_intent", "client_secret": "pi_signed_secret_x", "status": "succeeded",
        "amount": 5000, "currency": "eur", "metadata": {"booking_id": "bk_signed"},
    }
    payload = json.dumps(
        {"id": "evt_1", "object": "event", "type": "payment_intent.succeeded", "data": {"object": intent}}
    ).encode()

    event = gateway.parse_webhook(payload, _signed(payload))
    assert (event.event_id, event.type) == ("evt_1", "payment_intent.succeeded")
    assert event.payment_intent == PaymentIntentInfo(
        "pi_signed", "pi_signed_secret_x", "succeeded", 5000, "eur", {"booking_id": "bk_signed"}
    )

    for forged in (
        _signed(payload, secret="whsec_attacker"),
        _signed(payload.replace(b"5000", b"1")),
        _signed(payload, timestamp=int(time.time()) - 3600),  # replayed long after
        "",
    ):
        with pytest.raises(InvalidArgument) as caught:
            gateway.parse_webhook(payload, forged)
        assert caught.value.reason == "WEBHOOK_SIGNATURE_INVALID"


@pytest.mark.parametrize(
    "payload",
    [
        b"[]",
        b"null",
        b"\xff\xfe not utf-8",
        b'{"id": 1, "type": "payment_intent.succeeded"}',
        b'{"id": "evt_x"}',
        b'{"id": "evt_x", "type": "payment_intent.succeeded", "data": {"object": {"object": "payment_intent"}}}',
    ],
)
def test_signed_webhook_that_is_not_a_stripe_event_is_invalid_argument(gateway, payload):
    with pytest.raises(InvalidArgument) as caught:
        gateway.parse_webhook(payload, _signed(payload))
    assert caught.value.reason == "WEBHOOK_PAYLOAD_INVALID"


async def test_webhook_sent_by_localstripe_parses_into_the_paid_intent(gateway, localstripe_url):
    received: asyncio.Queue[tuple[bytes, str]] = asyncio.Queue()

    async def receive(request: web.Request) -> web.Response:
        await received.put((await request.read(), request.headers["Stripe-Signature"]))
        return web.Response()

    app = web.Application()
    app.router.add_post("/webhooks/stripe", receive)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        await asyncio.to_thread(
            configure_webhook, localstripe_url, f"http://127.0.0.1:{port}/webhooks/stripe", WEBHOOK_SECRET,
            name="payments-test",
        )
        created = await _create(gateway, "bk_webhook")
        await _pay_as_fan(localstripe_url, created.payment_intent_id)
        async with asyncio.timeout(10):
            while True:
                event = gateway.parse_webhook(*(await received.get()))
                if event.payment_intent and event.payment_intent.payment_intent_id == created.payment_intent_id:
                    break
        assert event.type == "payment_intent.succeeded"
        assert event.event_id.startswith("evt_")
        assert event.payment_intent.status == "succeeded"
        assert event.payment_intent.metadata["booking_id"] == "bk_webhook"
    finally:
        await asyncio.to_thread(
            configure_webhook, localstripe_url, "http://127.0.0.1:9/unused", WEBHOOK_SECRET, events=[],
            name="payments-test",
        )
        await runner.cleanup()


async def test_a_burst_beyond_the_rate_limit_is_paced_not_failed(localstripe_url):
    rate, burst, calls = 20, 20, 60
    gw = PaymentGateway(_settings(localstripe_url, stripe_max_requests_per_second=rate, stripe_burst=burst))
    try:
        started = time.monotonic()
        intents = await asyncio.gather(*(_create(gw) for _ in range(calls)))
        elapsed = time.monotonic() - started
    finally:
        await gw.aclose()
    assert len({i.payment_intent_id for i in intents}) == calls
    # The burst goes at once, the rest at the paced rate: never faster than Stripe would allow.
    assert elapsed >= (calls - burst) / rate * 0.95
    assert elapsed < (calls - burst) / rate + 3


async def test_the_rate_is_shared_by_worker_processes(localstripe_url):
    gw = PaymentGateway(_settings(localstripe_url, stripe_max_requests_per_second=100, workers=4))
    try:
        assert gw.pacer.rate == 25
    finally:
        await gw.aclose()
    from booking_svc.settings import BookingSettings

    configured = PaymentGateway(
        BookingSettings(stripe_api_base=localstripe_url, stripe_max_requests_per_second=90, workers=3)
    )
    try:
        assert configured.pacer.rate == 30
    finally:
        await configured.aclose()


@pytest.fixture
async def flaky_stripe_edge(localstripe_url):
    """A fake *Stripe edge*, for the 429 behaviour only (localstripe never rate-limits): it answers each path's
    first ``failures`` calls with the configured error, then proxies to localstripe."""
    state = SimpleNamespace(failures=2, status=429, headers={"Retry-After": "0"}, seen=[])

    async def edge(request: web.Request) -> web.Response:
        state.seen.append(request.path)
        if state.seen.count(request.path) <= state.failures:
            body = {"error": {"type": "rate_limit_error" if state.status == 429 else "api_error", "message": "slow"}}
            return web.json_response(body, status=state.status, headers=state.headers)
        async with httpx.AsyncClient() as http:
            upstream = await http.request(
                request.method, f"{localstripe_url}{request.path_qs}", content=await request.read(),
                headers={k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length")},
            )
        return web.Response(body=upstream.content, status=upstream.status_code, content_type="application/json")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", edge)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    state.url = f"http://127.0.0.1:{port}"
    yield state
    await runner.cleanup()


async def test_rate_limited_calls_are_retried_until_they_succeed(flaky_stripe_edge):
    gw = PaymentGateway(_settings(flaky_stripe_edge.url, stripe_backoff_base_seconds=0.01))
    try:
        created = await _create(gw)
    finally:
        await gw.aclose()
    assert created.status == "requires_payment_method"
    assert flaky_stripe_edge.seen == ["/v1/payment_intents"] * 3


async def test_server_errors_are_not_retried_when_stripe_says_so(flaky_stripe_edge):
    flaky_stripe_edge.status, flaky_stripe_edge.headers = 500, {"Stripe-Should-Retry": "false"}
    gw = PaymentGateway(_settings(flaky_stripe_edge.url, stripe_backoff_base_seconds=0.01))
    try:
        with pytest.raises(Unavailable) as caught:
            await _create(gw)
    finally:
        await gw.aclose()
    assert caught.value.reason == "PAYMENTS_UNAVAILABLE"
    assert flaky_stripe_edge.seen == ["/v1/payment_intents"]


async def test_a_backlog_beyond_the_limit_fails_fast_with_payments_busy(localstripe_url):
    # One call goes at once, two may queue (0.5 s and 1 s away); the rest must not queue at all.
    gw = PaymentGateway(
        _settings(localstripe_url, stripe_max_requests_per_second=2, stripe_burst=1, stripe_max_backlog=2)
    )
    try:
        started = time.monotonic()
        results = await asyncio.gather(*(_create(gw) for _ in range(6)), return_exceptions=True)
        elapsed = time.monotonic() - started
    finally:
        await gw.aclose()
    busy = [r for r in results if isinstance(r, Unavailable)]
    assert len([r for r in results if isinstance(r, PaymentIntentInfo)]) == 3
    assert len(busy) == 3
    assert all(b.reason == "PAYMENTS_BUSY" for b in busy)
    assert 0.9 < elapsed < 3


async def test_a_wait_beyond_the_deadline_fails_fast_with_payments_busy(localstripe_url):
    gw = PaymentGateway(
        _settings(localstripe_url, stripe_max_requests_per_second=1, stripe_burst=1, stripe_max_wait_seconds=0.5)
    )
    try:
        await _create(gw)
        started = time.monotonic()
        with pytest.raises(Unavailable) as caught:
            await _create(gw)
        assert time.monotonic() - started < 0.1
    finally:
        await gw.aclose()
    assert caught.value.reason == "PAYMENTS_BUSY"


async def test_booking_settings_configure_the_gateway(localstripe_url):
    from booking_svc.settings import BookingSettings

    settings = BookingSettings(stripe_api_base=localstripe_url, stripe_requests_per_second=40, stripe_max_backlog=7)
    gw = PaymentGateway(settings)
    try:
        assert (gw.pacer.rate, gw.pacer.max_backlog) == (40, 7)
        assert (await _create(gw)).status == "requires_payment_method"
    finally:
        await gw.aclose()
