"""One Stripe budget per account, shared by every booking process: two `tix serve booking` processes reserving at
once stay within the account's rate together (a bucket per process would let each spend the whole budget)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time

import grpc
import pytest

from tests.factories import create_event
from tests.integration.booking_harness import assert_never_sold_twice, booking_settings
from tix.identity import USER_ID_METADATA
from tix_dev.processes import stop_process
from tix_dev.readiness import free_port, grpc_serving, wait_until
from tixpb.v1 import booking_pb2, booking_pb2_grpc

pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=<...>':DeprecationWarning")

RATE = 8  # Stripe calls per second for the whole account
FANS_PER_PROCESS = 16


def _start_booking(env: dict[str, str], port: int) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "tix.cli", "serve", "booking", "--port", str(port), "--workers", "1"],
        env={
            **os.environ, **env, "TIX_METRICS_PORT": "0", "TIX_GRACE_SECONDS": "1", "TIX_DB_POOL_SIZE": "4",
            "TIX_DB_MAX_OVERFLOW": "2",
        },
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def _reserve(port: int, fan: str, event_id: int, seat: str) -> booking_pb2.Booking:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = booking_pb2_grpc.BookingServiceStub(channel)
        return await stub.ReserveSeats(
            booking_pb2.ReserveSeatsRequest(event_id=str(event_id), seat_ids=[seat]),
            metadata=((USER_ID_METADATA, fan),), timeout=60,
        )


async def test_two_booking_processes_share_one_stripe_budget(db, redis, settings_env, localstripe_url):
    event = await create_event(db, sections=1, rows=4, seats_per_row=8, layout_id="budget-32")
    settings = booking_settings(localstripe_url)
    env = {
        **settings_env,
        "TIX_STRIPE_API_BASE": localstripe_url,
        "TIX_STRIPE_WEBHOOK_SECRET": settings.stripe_webhook_secret,
        "TIX_STRIPE_REQUESTS_PER_SECOND": str(RATE),
        "TIX_STRIPE_MAX_WAIT_SECONDS": "30",
    }
    ports = [free_port(), free_port()]
    processes = [_start_booking(env, port) for port in ports]
    try:
        for port in ports:
            await asyncio.to_thread(wait_until, lambda p=port: grpc_serving(p), what=f"booking on {port}", timeout=30)
        seats = iter(event.seat_ids)
        calls = [
            _reserve(port, f"fan-{index}-{n}", event.event_id, next(seats))
            for index, port in enumerate(ports)
            for n in range(FANS_PER_PROCESS)
        ]
        started = time.monotonic()
        bookings = await asyncio.gather(*calls)
        elapsed = time.monotonic() - started
    finally:
        for process in processes:
            stop_process(process, timeout=5)
    total = len(bookings)
    assert total == 2 * FANS_PER_PROCESS
    assert len({b.payment.payment_intent_id for b in bookings}) == total
    assert all(b.status == booking_pb2.BOOKING_STATUS_RESERVED for b in bookings)
    # One bucket of RATE/s with a burst of RATE: the calls beyond the burst take (total - RATE) / RATE seconds.
    # Each process pacing on its own would have needed only (FANS_PER_PROCESS - RATE) / RATE = 1 s.
    shared_floor = (total - RATE) / RATE
    assert elapsed >= shared_floor * 0.9, f"{total} PaymentIntents in {elapsed:.2f}s: faster than {RATE}/s"
    assert await redis.keys("tix:stripe:budget:*")
    await assert_never_sold_twice(db, event.event_id)


@pytest.mark.parametrize("rate", [RATE])
async def test_without_redis_each_process_paces_on_its_own(localstripe_url, rate):
    from redis.asyncio import Redis

    from booking_svc.payments import PaymentGateway, SharedStripeBudget

    dead = Redis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=0.5)
    gateway = PaymentGateway(booking_settings(localstripe_url, stripe_requests_per_second=rate), dead)
    try:
        assert isinstance(gateway.budget, SharedStripeBudget)
        started = time.monotonic()
        intents = await asyncio.gather(*(
            gateway.create_payment_intent(
                booking_id=f"b-{n}", amount_minor=100, currency="usd", user_id="fan", event_id=1
            )
            for n in range(rate + 4)
        ))
        elapsed = time.monotonic() - started
    finally:
        await gateway.aclose()
        await dead.aclose()
    assert len({i.payment_intent_id for i in intents}) == rate + 4
    # The local bucket (rate/s, burst rate) still paces the four calls beyond the burst.
    assert elapsed >= 4 / rate * 0.9
