"""The waiting room with booking beside it: slots free when admitted fans are done, the line keeps moving."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from sqlalchemy import text

from booking_svc.domain import BookingService, SeatRequest
from booking_svc.sweeper import sweep_once
from queue_svc.server import SERVICE
from queue_svc.settings import QueueSettings
from tests.factories import create_event
from tests.integration.booking_harness import age_booking, booking_settings, build_world, pay_as_fan
from tix.admission import ADMISSION_ENDS_STREAM, AdmissionEnds
from tix.server import start_server
from tixpb.v1 import queue_pb2, queue_pb2_grpc

pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=<...>':DeprecationWarning")

SECRET = "waiting-room-test-admission-secret-32b!"
ADMITTED = queue_pb2.QUEUE_TICKET_STATE_ADMITTED
WAITING = queue_pb2.QUEUE_TICKET_STATE_WAITING


def _md(user: str) -> tuple[tuple[str, str], ...]:
    return (("x-user-id", user),)


@pytest.fixture
async def queue(db, redis, settings_env):
    settings = QueueSettings(port=0, tick_seconds=0.1, heartbeat_seconds=1.0, event_cache_seconds=0.2,
                             admission_secret=SECRET, db_pool_size=4)
    servers = [await start_server(SERVICE, settings) for _ in range(2)]
    channels = [grpc.aio.insecure_channel(f"127.0.0.1:{s.port}") for s in servers]
    yield [queue_pb2_grpc.QueueServiceStub(c) for c in channels]
    for channel in channels:
        await channel.close()
    for server in servers:
        await server.stop(grace=0)


@pytest.fixture
async def bookings(db, redis_url, localstripe_url):
    settings = booking_settings(localstripe_url, redis_url=redis_url, admission_secret=SECRET)
    world = await build_world(db, settings, redis_url)
    service = BookingService(
        settings, world.repository, world.holds, world.payments, world.service._seat_feed,
        AdmissionEnds(world.redis, remember_seconds=3600),
    )
    yield service, world
    await world.aclose()


async def _queued_event(db, *, rate: int, max_active: int) -> tuple[int, list[str]]:
    event = await create_event(db, queue_enabled=True)
    async with db.begin() as conn:
        await conn.execute(
            text("UPDATE events SET queue_rate_per_second = :r, queue_max_active = :m, sale_starts_at = :s"
                 " WHERE event_id = :e"),
            {"r": rate, "m": max_active, "s": datetime.now(UTC) - timedelta(seconds=60), "e": event.event_id},
        )
    return event.event_id, event.seat_ids


async def _admitted(stub, event_id: int, ticket_id: str, user: str) -> queue_pb2.QueueTicket:
    call = stub.WatchQueue(queue_pb2.WatchQueueRequest(event_id=str(event_id), ticket_id=ticket_id), metadata=_md(user))
    async for update in call:
        if update.state == ADMITTED:
            call.cancel()
            return update
    raise AssertionError("the stream ended before admission")


async def _first_view(stub, event_id: int, ticket_id: str, user: str) -> queue_pb2.QueueTicket:
    call = stub.WatchQueue(queue_pb2.WatchQueueRequest(event_id=str(event_id), ticket_id=ticket_id), metadata=_md(user))
    first = await call.read()
    call.cancel()
    return first


async def _line_of(queue, db, fans: int, *, max_active: int) -> tuple[int, list[str], list[queue_pb2.QueueTicket]]:
    event_id, seats = await _queued_event(db, rate=100, max_active=max_active)
    tickets = []
    for i in range(fans):
        tickets.append(
            await queue[i % 2].JoinQueue(queue_pb2.JoinQueueRequest(event_id=str(event_id)), metadata=_md(f"fan-{i}"))
        )
    return event_id, seats, tickets


async def test_a_buyers_confirmation_frees_their_slot_and_admits_the_next_fan_at_once(
    queue, db, bookings, localstripe_url
):
    service, _ = bookings
    event_id, seats, (first, second) = await _line_of(queue, db, 2, max_active=1)
    admitted = await _admitted(queue[0], event_id, first.ticket_id, "fan-0")
    await asyncio.sleep(0.5)  # several steps: the cap (one shopper) holds the second fan back
    held_back = await _first_view(queue[1], event_id, second.ticket_id, "fan-1")
    assert (held_back.state, held_back.position) == (WAITING, 1)

    booking = await service.reserve_seats(
        SeatRequest("fan-0", event_id, (seats[0],), admission_token=admitted.admission_token)
    )
    await pay_as_fan(localstripe_url, booking.payment_intent_id)
    confirmed_at = time.monotonic()
    assert (await service.confirm_booking("fan-0", booking.booking_id)).status == "confirmed"

    # The second fan is admitted within a second (not when the first fan's 600 s admission runs out).
    next_fan = await asyncio.wait_for(_admitted(queue[1], event_id, second.ticket_id, "fan-1"), timeout=5)
    assert next_fan.admission_token
    assert time.monotonic() - confirmed_at < 1.5


async def test_cancelled_and_expired_holds_free_their_slots_too(queue, db, bookings, redis):
    service, _ = bookings
    event_id, seats, tickets = await _line_of(queue, db, 3, max_active=1)

    token = (await _admitted(queue[0], event_id, tickets[0].ticket_id, "fan-0")).admission_token
    cancelled = await service.reserve_seats(SeatRequest("fan-0", event_id, (seats[0],), admission_token=token))
    await service.cancel_booking("fan-0", cancelled.booking_id)
    token = (
        await asyncio.wait_for(_admitted(queue[1], event_id, tickets[1].ticket_id, "fan-1"), timeout=5)
    ).admission_token

    lapsed = await service.reserve_seats(SeatRequest("fan-1", event_id, (seats[1],), admission_token=token))
    await age_booking(db, lapsed.booking_id)
    await sweep_once(service)
    await asyncio.wait_for(_admitted(queue[0], event_id, tickets[2].ticket_id, "fan-2"), timeout=5)
    ends = [fields["end"] for _, fields in await redis.xrange(ADMISSION_ENDS_STREAM)]
    assert ends[-2:] == ["cancelled", "expired"]


async def test_a_booking_without_a_waiting_room_publishes_no_end(db, bookings, redis):
    service, _ = bookings
    event = await create_event(db)
    before = await redis.xlen(ADMISSION_ENDS_STREAM)
    booking = await service.reserve_seats(SeatRequest("fan-x", event.event_id, (event.seat_ids[0],)))
    await service.cancel_booking("fan-x", booking.booking_id)
    assert await redis.xlen(ADMISSION_ENDS_STREAM) == before

