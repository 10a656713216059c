"""Settlement through the edge: signed Stripe webhooks posted to Envoy's /v1/webhooks/stripe confirm a booking
only with the booking's own paid PaymentIntent. A paid 1-cent intent whose metadata names the booking changes
nothing and is refunded; the real payment then confirms it."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid

import httpx
import pytest

from tix.settings import DEVELOPMENT_STRIPE_API_KEY, DEVELOPMENT_STRIPE_WEBHOOK_SECRET
from tix_dev.tokens import issue_token
from tix_dev.up import Mesh

pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=<...>':DeprecationWarning")


def _signed(payload: bytes) -> str:
    stamp = int(time.time())
    signature = hmac.new(DEVELOPMENT_STRIPE_WEBHOOK_SECRET.encode(), b"%d.%s" % (stamp, payload), hashlib.sha256)
    return f"t={stamp},v1={signature.hexdigest()}"


async def _post_succeeded(http: httpx.AsyncClient, intent: dict) -> httpx.Response:
    payload = json.dumps(
        {
            "id": f"evt_{uuid.uuid4().hex[:16]}", "object": "event", "created": int(time.time()),
            "type": "payment_intent.succeeded", "data": {"object": intent},
        }
    ).encode()
    return await http.post(
        "/v1/webhooks/stripe", content=payload,
        headers={"Stripe-Signature": _signed(payload), "Content-Type": "application/json"},
    )


async def _paid_intent(stripe: httpx.AsyncClient, payment_intent_id: str) -> dict:
    attached = await stripe.post(f"/v1/payment_intents/{payment_intent_id}", data={"payment_method": "pm_card_visa"})
    attached.raise_for_status()
    (await stripe.post(f"/v1/payment_intents/{payment_intent_id}/confirm")).raise_for_status()
    found = await stripe.get(f"/v1/payment_intents/{payment_intent_id}")
    found.raise_for_status()
    return found.json()


async def test_a_signed_webhook_for_a_one_cent_intent_naming_the_booking_confirms_nothing(
    mesh: Mesh, http: httpx.AsyncClient, token, catalog_event
):
    auth = {"Authorization": f"Bearer {token}"}
    reserved = await http.post(
        "/v1/bookings:reserve", headers=auth,
        json={"eventId": str(catalog_event.event_id), "seatIds": [catalog_event.seat_ids[0]]},
    )
    assert reserved.status_code == 200, reserved.text
    booking = reserved.json()
    async with httpx.AsyncClient(
        base_url=mesh.stripe_api_base, headers={"Authorization": f"Bearer {DEVELOPMENT_STRIPE_API_KEY}"}
    ) as stripe:
        cent = await stripe.post(
            "/v1/payment_intents",
            data={"amount": "1", "currency": "usd", "metadata[booking_id]": booking["bookingId"]},
        )
        cent.raise_for_status()
        forged = await _post_succeeded(http, await _paid_intent(stripe, cent.json()["id"]))
        assert forged.status_code == 200, forged.text
        after = await http.get(f"/v1/bookings/{booking['bookingId']}", headers=auth)
        assert after.json()["status"] == "BOOKING_STATUS_RESERVED"
        refunds = await stripe.get("/v1/refunds", params={"payment_intent": cent.json()["id"]})
        assert [r["amount"] for r in refunds.json()["data"]] == [1]

        paid = await _post_succeeded(http, await _paid_intent(stripe, booking["payment"]["paymentIntentId"]))
        assert paid.status_code == 200, paid.text
    confirmed = await http.get(f"/v1/bookings/{booking['bookingId']}", headers=auth)
    assert confirmed.json()["status"] == "BOOKING_STATUS_CONFIRMED"


def _reason(response: httpx.Response) -> str:
    infos = [
        d for d in response.json().get("details", [])
        if d.get("@type") == "type.googleapis.com/google.rpc.ErrorInfo"
    ]
    return str(infos[0]["reason"]) if infos else ""


async def test_a_hold_is_checked_out_through_the_edge_once_and_only_while_it_lives(
    mesh: Mesh, http: httpx.AsyncClient, catalog_event
):
    """POST /v1/bookings/{id}:checkout: the PaymentIntent of a hold made with deferPayment, the same one however
    often it is asked; the signed-in owner only; refused with its reason once the hold was released."""
    # A fan of this test's own (the mesh outlives each test; other tests count their fan's bookings).
    auth = {"Authorization": f"Bearer {issue_token(mesh.var_dir, f'e2e-checkout-{uuid.uuid4().hex[:8]}')}"}
    stranger = {"Authorization": f"Bearer {issue_token(mesh.var_dir, f'e2e-stranger-{uuid.uuid4().hex[:8]}')}"}
    reserved = await http.post(
        "/v1/bookings:reserve", headers=auth,
        json={"eventId": str(catalog_event.event_id), "seatIds": [catalog_event.seat_ids[1]], "deferPayment": True},
    )
    assert reserved.status_code == 200, reserved.text
    booking = reserved.json()
    assert not booking["payment"].get("clientSecret")
    checkout = f"/v1/bookings/{booking['bookingId']}:checkout"
    assert (await http.post(checkout, json={})).status_code == 401
    hidden = await http.post(checkout, headers=stranger, json={})
    assert hidden.status_code == 404, hidden.text
    assert _reason(hidden) == "BOOKING_NOT_FOUND"
    first = await http.post(checkout, headers=auth, json={"requestId": uuid.uuid4().hex})
    again = await http.post(checkout, headers=auth, json={})
    assert first.status_code == 200, first.text
    assert first.json()["payment"]["clientSecret"]
    assert again.json()["payment"]["paymentIntentId"] == first.json()["payment"]["paymentIntentId"]

    released = await http.post(
        "/v1/bookings:reserve", headers=auth,
        json={"eventId": str(catalog_event.event_id), "seatIds": [catalog_event.seat_ids[2]], "deferPayment": True},
    )
    assert released.status_code == 200, released.text
    released_id = released.json()["bookingId"]
    cancelled = await http.post(f"/v1/bookings/{released_id}:cancel", headers=auth, json={})
    assert cancelled.status_code == 200, cancelled.text
    refused = await http.post(f"/v1/bookings/{released_id}:checkout", headers=auth, json={})
    assert refused.status_code == 400, refused.text
    assert _reason(refused) == "BOOKING_CANCELLED"
