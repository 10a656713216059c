"""What the booking tests share: a BookingService on the real stores (PostgreSQL, private Redis nodes, a private
localstripe), a fan who pays like Stripe.js does, signed webhooks, and database checks of the never-sell-twice
invariant. (Helpers only; the tests live in the test_booking_* modules.)"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from booking_svc.allocation import SeatAllocator
from booking_svc.domain import BookingService, SeatRequest
from booking_svc.holds import SeatHolds
from booking_svc.payments import PaymentGateway
from booking_svc.repository import BookingRepository
from booking_svc.settings import BookingSettings
from tix.db import libpq_url
from tix.redis_pool import create_redis
from tix.seatfeed import SeatFeedPublisher
from tix.settings import DEVELOPMENT_STRIPE_API_KEY

WEBHOOK_SECRET = "whsec_booking_tests"


def booking_settings(localstripe_url: str, **overrides) -> BookingSettings:
    values = {
        "stripe_api_base": localstripe_url,
        "stripe_api_key": DEVELOPMENT_STRIPE_API_KEY,
        "stripe_webhook_secret": WEBHOOK_SECRET,
        "stripe_requests_per_second": 1000.0,
        "stripe_max_backlog": 2000,
        "stripe_max_wait_seconds": 30.0,
        "sweeper_interval_seconds": 0.2,
        "event_cache_seconds": 0.5,
        # Storms of a thousand in-process calls test the holds, not load shedding (test_best_available does).
        "reserve_max_in_flight": 100_000,
    }
    values.update(overrides)
    return BookingSettings(**values)


@dataclass
class BookingWorld:
    service: BookingService
    repository: BookingRepository
    holds: SeatHolds
    payments: PaymentGateway
    settings: BookingSettings
    engine: AsyncEngine

    redis: Redis
    allocator: SeatAllocator

    async def aclose(self) -> None:
        await self.payments.aclose()
        await self.holds.aclose()
        await self.redis.aclose()


async def build_world(engine: AsyncEngine, settings: BookingSettings, seat_feed_url: str) -> BookingWorld:
    holds = SeatHolds.from_urls(
        settings.lock_urls(), drift_factor=settings.lock_drift_factor, node_timeout=settings.lock_node_timeout_seconds
    )
    redis = create_redis(seat_feed_url)
    payments = PaymentGateway(settings, redis)
    repository = BookingRepository(engine)
    # Wired as booking_svc.server wires it.
    allocator = SeatAllocator(
        holds.first_node, redis_url=settings.lock_urls()[0], dsn=libpq_url(str(engine.url.render_as_string(False))),
        load_wait_seconds=settings.allocator_load_wait_seconds,
    )
    holds.on_release(allocator.returned)
    service = BookingService(settings, repository, holds, payments, SeatFeedPublisher(redis, engine), allocator=allocator)
    return BookingWorld(service, repository, holds, payments, settings, engine, redis, allocator)


@asynccontextmanager
async def booking_world(engine: AsyncEngine, redis_url: str, localstripe_url: str) -> AsyncIterator[BookingWorld]:
    """A booking service on one Redis node (the session's private one); each test module's ``world`` fixture."""
    built = await build_world(engine, booking_settings(localstripe_url, redis_url=redis_url), redis_url)
    try:
        yield built
    finally:
        await built.aclose()


def named(user_id: str, event_id: int, *seat_ids: str, request_id: str | None = None) -> SeatRequest:
    return SeatRequest(user_id=user_id, event_id=event_id, seat_ids=tuple(seat_ids), request_id=request_id)


async def pay_as_fan(localstripe_url: str, payment_intent_id: str, payment_method: str = "pm_card_visa") -> dict:
    """What Stripe.js does on the fan's device: attach a test card, then confirm (localstripe cannot take the
    payment method in the confirm call itself)."""
    async with httpx.AsyncClient(base_url=localstripe_url, headers={"Authorization": f"Bearer {DEVELOPMENT_STRIPE_API_KEY}"}) as http:
        attached = await http.post(f"/v1/payment_intents/{payment_intent_id}", data={"payment_method": payment_method})
        attached.raise_for_status()
        confirmed = await http.post(f"/v1/payment_intents/{payment_intent_id}/confirm")
        return confirmed.json()


async def refunds_of(localstripe_url: str, payment_intent_id: str) -> list[dict]:
    async with httpx.AsyncClient(base_url=localstripe_url, headers={"Authorization": f"Bearer {DEVELOPMENT_STRIPE_API_KEY}"}) as http:
        found = await http.get("/v1/refunds", params={"payment_intent": payment_intent_id})
        found.raise_for_status()
        return found.json()["data"]


def stripe_event(event_type: str, intent: dict, event_id: str | None = None) -> bytes:
    """A Stripe event body around a PaymentIntent object, as Stripe would send it."""
    return json.dumps(
        {
            "id": event_id or f"evt_{uuid.uuid4().hex[:16]}",
            "object": "event",
            "api_version": "2020-08-27",
            "created": int(time.time()),
            "type": event_type,
            "data": {"object": intent},
        }
    ).encode()


def sign(payload: bytes, secret: str = WEBHOOK_SECRET, timestamp: int | None = None) -> str:
    """A Stripe-Signature header: HMAC-SHA256 of "<t>.<payload>" with the endpoint secret."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    signature = hmac.new(secret.encode(), b"%d.%s" % (timestamp, payload), hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={signature}"


async def intent_object(localstripe_url: str, payment_intent_id: str) -> dict:
    async with httpx.AsyncClient(base_url=localstripe_url, headers={"Authorization": f"Bearer {DEVELOPMENT_STRIPE_API_KEY}"}) as http:
        found = await http.get(f"/v1/payment_intents/{payment_intent_id}")
        found.raise_for_status()
        return found.json()


async def ticket_states(engine: AsyncEngine, event_id: int) -> dict[str, tuple[str, str | None]]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            text("SELECT seat_id, status, booking_id FROM tickets WHERE event_id = :e"), {"e": event_id}
        )
        return {r.seat_id: (r.status, str(r.booking_id) if r.booking_id else None) for r in rows}


async def assert_never_sold_twice(engine: AsyncEngine, event_id: int) -> dict[str, str]:
    """Every active booking's seats are held for it in the tickets table, no seat is in two active bookings, and
    no ticket points at a booking that is not active. Returns seat -> booking id of the active bookings."""
    async with engine.connect() as conn:
        bookings = list(
            await conn.execute(
                text(
                    "SELECT booking_id, status, seat_ids FROM bookings WHERE event_id = :e"
                    " AND status IN ('reserved', 'confirmed')"
                ),
                {"e": event_id},
            )
        )
    owner: dict[str, str] = {}
    for booking in bookings:
        for seat in booking.seat_ids:
            assert seat not in owner, f"{seat} is in two active bookings: {owner[seat]} and {booking.booking_id}"
            owner[seat] = str(booking.booking_id)
    tickets = await ticket_states(engine, event_id)
    for seat, booking_id in owner.items():
        assert tickets[seat][1] == booking_id, f"{seat}: ticket row says {tickets[seat]}, booking {booking_id}"
    held = {seat for seat, (status, _) in tickets.items() if status != "available"}
    assert held == set(owner), f"tickets held without an active booking: {held - set(owner)}"
    return owner


async def active_seat_count(engine: AsyncEngine, event_id: int) -> int:
    async with engine.connect() as conn:
        return int(
            await conn.scalar(
                text("SELECT count(*) FROM tickets WHERE event_id = :e AND status <> 'available'"), {"e": event_id}
            )
        )


async def age_booking(engine: AsyncEngine, booking_id: uuid.UUID | str, seconds: int = 3600) -> None:
    """Move a booking's hold deadline into the past, as if the fan had walked away."""
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "UPDATE bookings SET expires_at = now() - make_interval(secs => :s) WHERE booking_id = :b"
            ),
            {"b": booking_id, "s": seconds},
        )
        await conn.execute(
            text(
                "UPDATE tickets SET reserved_until = now() - make_interval(secs => :s)"
                " WHERE booking_id = :b AND status = 'reserved'"
            ),
            {"b": booking_id, "s": seconds},
        )


def seat_ids_of(seats: Sequence) -> list[str]:
    return [s.seat_id for s in seats]
