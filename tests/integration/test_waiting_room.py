"""The waiting room with booking beside it: slots free when admitted fans are done, the line keeps moving."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
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
from tix_dev.processes import RedisServer
from tix_dev.readiness import free_port
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
        AdmissionEnds(world.redis),
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



# --- the line moves on its own, past fans who left -----------------------------------------------------------------


@pytest.fixture
async def quick_presence_queue(db, redis, settings_env):
    """Two queue servers whose fans count as gone two seconds after their stream closes."""
    settings = QueueSettings(port=0, tick_seconds=0.1, heartbeat_seconds=1.0, event_cache_seconds=0.2,
                             admission_secret=SECRET, db_pool_size=4, presence_grace_seconds=2.0)
    servers = [await start_server(SERVICE, settings) for _ in range(2)]
    channels = [grpc.aio.insecure_channel(f"127.0.0.1:{s.port}") for s in servers]
    yield [queue_pb2_grpc.QueueServiceStub(c) for c in channels]
    for channel in channels:
        await channel.close()
    for server in servers:
        await server.stop(grace=0)


async def _set_rate(db, event_id: int, rate: int) -> None:
    async with db.begin() as conn:
        await conn.execute(text("UPDATE events SET queue_rate_per_second = :r WHERE event_id = :e"),
                           {"r": rate, "e": event_id})


async def test_fans_who_left_are_passed_over_and_do_not_stall_the_line(quick_presence_queue, db, redis):
    queue = quick_presence_queue
    event_id, _ = await _queued_event(db, rate=0, max_active=1000)
    tickets = [
        await queue[i % 2].JoinQueue(queue_pb2.JoinQueueRequest(event_id=str(event_id)), metadata=_md(f"fan-{i}"))
        for i in range(40)
    ]
    leavers, stayers = tickets[0::2], tickets[1::2]  # every other fan, from the head of the line on, leaves
    for ticket in leavers:
        user = f"fan-{tickets.index(ticket)}"
        await _first_view(queue[0], event_id, ticket.ticket_id, user)  # looked once, closed the tab
    watching = [
        asyncio.create_task(_admitted(queue[i % 2], event_id, t.ticket_id, f"fan-{tickets.index(t)}"))
        for i, t in enumerate(stayers)
    ]
    await asyncio.sleep(3.0)  # past the leavers' grace period; the stayers' streams keep their places
    rate = 10
    await _set_rate(db, event_id, rate)
    started = time.monotonic()
    await asyncio.wait_for(asyncio.gather(*watching), timeout=20)
    elapsed = time.monotonic() - started
    # 20 fans who stayed at 10/s: about 2 s; had the 20 leavers used admissions, it would take about 4 s.
    assert elapsed < 3.2, elapsed
    base = f"tix:q:{{{event_id}}}"
    assert await redis.zcard(f"{base}:active") == len(stayers)
    for ticket in leavers:
        assert await redis.hget(f"{base}:t:{ticket.ticket_id}", "left") is not None
        assert await redis.hget(f"{base}:t:{ticket.ticket_id}", "admitted") is None
    # A fan who left and comes back joins again at the back, with a new ticket.
    back = await queue[0].JoinQueue(queue_pb2.JoinQueueRequest(event_id=str(event_id)), metadata=_md("fan-0"))
    assert back.ticket_id != leavers[0].ticket_id
    assert back.state in (WAITING, ADMITTED)


async def test_a_reconnect_within_the_grace_period_keeps_the_place(quick_presence_queue, db):
    queue = quick_presence_queue
    event_id, _ = await _queued_event(db, rate=0, max_active=1000)
    ticket = await queue[0].JoinQueue(queue_pb2.JoinQueueRequest(event_id=str(event_id)), metadata=_md("fan"))
    for _ in range(4):  # 4 s in all, never away for more than a second
        await _first_view(queue[1], event_id, ticket.ticket_id, "fan")
        await asyncio.sleep(1.0)
    await _set_rate(db, event_id, 50)
    admitted = await asyncio.wait_for(_admitted(queue[1], event_id, ticket.ticket_id, "fan"), timeout=5)
    assert admitted.admission_token


async def test_fans_without_a_stream_are_admitted_while_they_poll(queue, db):
    """Admission steps whoever is watching: 30 fans who only call JoinQueue again now and then get in."""
    event_id, _ = await _queued_event(db, rate=15, max_active=1000)
    users = [f"poller-{i}" for i in range(30)]
    pending = set(users)
    deadline = time.monotonic() + 15
    while pending and time.monotonic() < deadline:
        for user in list(pending):
            ticket = await queue[hash(user) % 2].JoinQueue(
                queue_pb2.JoinQueueRequest(event_id=str(event_id)), metadata=_md(user)
            )
            if ticket.state == ADMITTED:
                assert ticket.admission_token
                pending.discard(user)
        await asyncio.sleep(0.5)
    assert not pending, f"{len(pending)} fans without a stream were never admitted"


# --- estimates -----------------------------------------------------------------------------------------------------


async def test_the_wait_estimated_at_joining_matches_the_actual_wait_within_a_fifth(queue, db):
    rate, fans = 5, 50
    event_id, _ = await _queued_event(db, rate=0, max_active=1000)
    tickets = [
        await queue[i % 2].JoinQueue(queue_pb2.JoinQueueRequest(event_id=str(event_id)), metadata=_md(f"fan-{i}"))
        for i in range(fans)
    ]
    watching = [
        asyncio.create_task(_admitted(queue[i % 2], event_id, t.ticket_id, f"fan-{i}")) for i, t in enumerate(tickets)
    ]
    await asyncio.sleep(0.3)
    await _set_rate(db, event_id, rate)
    await asyncio.sleep(0.5)  # the new rate is read within the settings cache's 0.2 s
    late = []
    for i in range(20):  # fans joining a moving line: their estimate is what is checked
        user = f"late-{i}"
        joined = await queue[i % 2].JoinQueue(queue_pb2.JoinQueueRequest(event_id=str(event_id)), metadata=_md(user))
        late.append((joined, time.monotonic(), asyncio.create_task(_admitted(queue[i % 2], event_id,
                                                                                joined.ticket_id, user))))
        await asyncio.sleep(0.1)
    errors = []
    for joined, at, task in late:
        await asyncio.wait_for(task, timeout=40)
        actual = time.monotonic() - at
        estimate = joined.estimated_wait.seconds
        errors.append((estimate, round(actual, 2)))
        assert abs(actual - estimate) <= 0.2 * estimate, errors
    await asyncio.gather(*watching)


async def test_pre_queue_fans_see_how_many_wait_and_when_the_sale_opens(queue, db):
    event = await create_event(db, queue_enabled=True)
    opens = datetime.now(UTC) + timedelta(seconds=120)
    async with db.begin() as conn:
        await conn.execute(
            text("UPDATE events SET queue_rate_per_second = 10, sale_starts_at = :s WHERE event_id = :e"),
            {"s": opens, "e": event.event_id},
        )
    for i in range(9):
        await queue[i % 2].JoinQueue(queue_pb2.JoinQueueRequest(event_id=str(event.event_id)), metadata=_md(f"f{i}"))
    mine = await queue[0].JoinQueue(queue_pb2.JoinQueueRequest(event_id=str(event.event_id)), metadata=_md("me"))
    assert mine.state == queue_pb2.QUEUE_TICKET_STATE_PRE_QUEUE
    assert mine.fans_waiting == 10
    assert mine.sale_start_time.seconds == int(opens.timestamp())
    # Until the opening, plus half the pre-queue at 10/s: about 120 s + 0.55 s.
    assert 115 <= mine.estimated_wait.seconds <= 125
    watched = await _first_view(queue[1], event.event_id, mine.ticket_id, "me")
    assert (watched.fans_waiting, watched.sale_start_time.seconds) == (10, int(opens.timestamp()))


async def test_estimates_stay_finite_while_the_shopper_cap_binds(queue, db):
    event_id, _ = await _queued_event(db, rate=100, max_active=2)
    tickets = [
        await queue[0].JoinQueue(queue_pb2.JoinQueueRequest(event_id=str(event_id)), metadata=_md(f"fan-{i}"))
        for i in range(10)
    ]
    await asyncio.sleep(3.0)  # the cap binds: two shoppers in, nobody frees a slot, the measured pace decays
    last = await _first_view(queue[1], event_id, tickets[-1].ticket_id, "fan-9")
    assert (last.state, last.position) == (WAITING, 8)
    # Each admission ends within its 600 s lifetime, so 2 slots free at least every 600 s: at most 8 x 300 s.
    assert last.HasField("estimated_wait")
    assert 0 < last.estimated_wait.seconds <= 8 * 600 / 2


# --- the opening, with several worker processes ----------------------------------------------------------------------


async def test_joins_racing_the_opening_are_all_placed_and_admitted_with_two_workers(db, redis, settings_env):
    event = await create_event(db, queue_enabled=True)
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "tix.cli", "serve", "queue", "--port", str(port)],
        env={**os.environ, **settings_env, "TIX_WORKERS": "2", "TIX_METRICS_PORT": "0", "TIX_TICK_SECONDS": "0.1",
             "TIX_EVENT_CACHE_SECONDS": "0.5"},
    )
    # Separate connections (no shared subchannel), which the kernel spreads over both workers.
    channels = [
        grpc.aio.insecure_channel(f"127.0.0.1:{port}", options=[("grpc.use_local_subchannel_pool", 1)])
        for _ in range(4)
    ]
    try:
        for channel in channels:
            await asyncio.wait_for(channel.channel_ready(), 20)
        stubs = [queue_pb2_grpc.QueueServiceStub(c) for c in channels]
        async with db.begin() as conn:
            await conn.execute(
                text("UPDATE events SET queue_rate_per_second = 300, queue_max_active = 10000, sale_starts_at = :s"
                     " WHERE event_id = :e"),
                {"s": datetime.now(UTC) + timedelta(seconds=2), "e": event.event_id},
            )

        async def join(i: int) -> queue_pb2.QueueTicket:
            return await stubs[i % len(stubs)].JoinQueue(
                queue_pb2.JoinQueueRequest(event_id=str(event.event_id)), metadata=_md(f"racer-{i}")
            )

        # 400 fans arrive over 4 s, straddling the opening at 2 s.
        joins = []
        for batch in range(40):
            joins += await asyncio.gather(*(join(i) for i in range(batch * 10, (batch + 1) * 10)))
            await asyncio.sleep(0.1)
        states = {t.state for t in joins}
        assert queue_pb2.QUEUE_TICKET_STATE_PRE_QUEUE in states
        assert WAITING in states or ADMITTED in states
        pending = set(range(400))
        deadline = time.monotonic() + 20
        while pending and time.monotonic() < deadline:
            asked = sorted(pending)
            results = await asyncio.gather(*(join(i) for i in asked))
            pending -= {i for i, t in zip(asked, results, strict=True) if t.state == ADMITTED}
            await asyncio.sleep(0.3)
        assert not pending, f"{len(pending)} fans were stranded"
        base = f"tix:q:{{{event.event_id}}}"
        assert await redis.scard(f"{base}:pre") == 0
        assert int(await redis.get(f"{base}:seq")) == 400
    finally:
        for channel in channels:
            await channel.close()
        process.terminate()
        process.wait(10)


# --- durability ----------------------------------------------------------------------------------------------------


async def _line_across_a_redis_crash(db, tmp_path, *, append_only: bool) -> tuple[list, list]:
    """Fans join a paused line on a private redis-server, which is killed and started again on its data; the same
    fans then join again. Returns their tickets before and after."""
    node = RedisServer(append_only_dir=str(tmp_path) if append_only else None).start()
    settings = QueueSettings(port=0, tick_seconds=0.1, event_cache_seconds=0.2, admission_secret=SECRET,
                             db_pool_size=2, redis_url=node.url)
    server = await start_server(SERVICE, settings)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{server.port}")
    stub = queue_pb2_grpc.QueueServiceStub(channel)
    try:
        event_id, _ = await _queued_event(db, rate=0, max_active=1000)

        async def join(user: str) -> queue_pb2.QueueTicket:
            deadline = time.monotonic() + 60
            while True:  # pooled connections to the old server fail once each, then reconnect
                try:
                    return await stub.JoinQueue(queue_pb2.JoinQueueRequest(event_id=str(event_id)),
                                                metadata=_md(user))
                except grpc.aio.AioRpcError:
                    if time.monotonic() > deadline:
                        raise
                    await asyncio.sleep(0.1)

        before = [await join(f"fan-{i}") for i in range(20)]
        await asyncio.sleep(1.5)  # appendfsync everysec: what is older than a second is on disk
        node.crash()
        node.start()
        after = [await join(f"fan-{i}") for i in range(20)]
        return before, after
    finally:
        await channel.close()
        await server.stop(grace=0)
        node.stop()


async def test_with_an_append_only_file_the_line_survives_a_redis_crash(db, tmp_path):
    before, after = await _line_across_a_redis_crash(db, tmp_path, append_only=True)
    assert [t.ticket_id for t in after] == [t.ticket_id for t in before]
    assert [t.position for t in after] == [t.position for t in before] == list(range(1, 21))


async def test_without_persistence_a_redis_crash_loses_the_line(db, tmp_path):
    before, after = await _line_across_a_redis_crash(db, tmp_path, append_only=False)
    assert not {t.ticket_id for t in after} & {t.ticket_id for t in before}
