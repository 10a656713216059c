"""The localstripe launcher: loopback only, nothing pickled to /tmp, a working API, signed webhooks."""

from __future__ import annotations

import asyncio
import json
import os
import urllib.parse
import urllib.request

import pytest
import stripe
from aiohttp import web

from tix.settings import DEVELOPMENT_STRIPE_API_KEY
from tix_dev.localstripe import configure_webhook, start_localstripe, stop_localstripe
from tix_dev.readiness import free_port

PICKLE = "/tmp/localstripe.pickle"


def _call(api_base: str, method: str, path: str, form: dict[str, str] | None = None) -> dict:
    data = urllib.parse.urlencode(form).encode() if form is not None else None
    request = urllib.request.Request(
        f"{api_base}{path}", data=data, method=method, headers={"Authorization": f"Bearer {DEVELOPMENT_STRIPE_API_KEY}"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def _listening_addresses(port: int) -> set[str]:
    """Local addresses with a socket in LISTEN state on ``port`` (IPv4 and IPv6), from /proc/net."""
    found: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            next(f)
            for line in f:
                local, state = line.split()[1], line.split()[3]
                address, hex_port = local.split(":")
                if state == "0A" and int(hex_port, 16) == port:
                    found.add(address)
    return found


def _pickle_mtime() -> float | None:
    return os.stat(PICKLE).st_mtime if os.path.exists(PICKLE) else None


def test_localstripe_listens_on_loopback_only(localstripe_url):
    port = urllib.parse.urlsplit(localstripe_url).port
    # 0100007F is 127.0.0.1 in /proc/net/tcp's little-endian hex; no IPv6 or wildcard socket may exist.
    assert _listening_addresses(port) == {"0100007F"}


def test_payment_intent_round_trip_leaves_no_pickle(localstripe_url):
    before = _pickle_mtime()
    created = _call(localstripe_url, "POST", "/v1/payment_intents",
                    {"amount": "4200", "currency": "usd", "payment_method": "pm_card_visa",
                     "metadata[booking_id]": "bk_1"})
    assert created["status"] == "requires_confirmation"
    confirmed = _call(localstripe_url, "POST", f"/v1/payment_intents/{created['id']}/confirm", {})
    assert confirmed["status"] == "succeeded"
    fetched = _call(localstripe_url, "GET", f"/v1/payment_intents/{created['id']}")
    assert (fetched["status"], fetched["amount"], fetched["metadata"]) == ("succeeded", 4200, {"booking_id": "bk_1"})
    assert _pickle_mtime() == before


def test_a_fresh_localstripe_starts_empty(localstripe_url):
    _call(localstripe_url, "POST", "/v1/payment_intents", {"amount": "100", "currency": "usd"})
    port = free_port()
    process = start_localstripe(port)
    try:
        listed = _call(f"http://127.0.0.1:{port}", "GET", "/v1/payment_intents?limit=100")
        assert listed["data"] == []
    finally:
        stop_localstripe(process)
    assert process.returncode is not None


async def test_webhooks_reach_a_local_receiver_with_a_valid_signature(localstripe_url):
    secret = "whsec_launcher_test"
    received: asyncio.Queue[tuple[bytes, str]] = asyncio.Queue()

    async def receive(request: web.Request) -> web.Response:
        await received.put((await request.read(), request.headers.get("Stripe-Signature", "")))
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/webhooks/stripe", receive)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    try:
        await asyncio.to_thread(
            configure_webhook, localstripe_url, f"http://127.0.0.1:{port}/webhooks/stripe", secret,
            name="launcher-test",
        )
        created = await asyncio.to_thread(
            _call, localstripe_url, "POST", "/v1/payment_intents",
            {"amount": "1500", "currency": "eur", "payment_method": "pm_card_visa", "confirm": "true"},
        )
        assert created["status"] == "succeeded"

        # localstripe delivers about one second after the event; other tests' events may arrive too.
        deadline = asyncio.get_running_loop().time() + 10
        while True:
            payload, signature = await asyncio.wait_for(
                received.get(), timeout=max(0.1, deadline - asyncio.get_running_loop().time())
            )
            event = stripe.Webhook.construct_event(payload, signature, secret)
            if event["data"]["object"]["id"] == created["id"]:
                break
        assert event["type"] == "payment_intent.succeeded"
        with pytest.raises(stripe.SignatureVerificationError):
            stripe.Webhook.construct_event(payload, signature, "whsec_someone_else")
    finally:
        # Point the registration somewhere harmless so later events do not hit a closed port.
        await asyncio.to_thread(
            configure_webhook, localstripe_url, "http://127.0.0.1:9/unused", secret, events=[],
            name="launcher-test",
        )
        await runner.cleanup()
