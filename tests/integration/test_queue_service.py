"""The waiting room through its gRPC API, against real Redis and PostgreSQL."""

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

from queue_svc.repository import RedisQueueRepository
from queue_svc.server import SERVICE
from queue_svc.settings import QueueSettings
from tests.factories import create_event
from tix.admission import verify_admission_token
from tix.server import start_server
from tix_dev.readiness import free_port
from tixpb.v1 import queue_pb2, queue_pb2_grpc

SECRET = "queue-test-admission-secret-32-bytes!!"
ADMITTED = queue_pb2.QUEUE_TICKET_STATE_ADMITTED


def _md(user: str) -> tuple[tuple[str, str], ...]:
    return (("x-user-id", user),)


@pytest.fixture
async def queue(db, redis, settings_env):
    settings = QueueSettings(port=0, tick_seconds=0.05, heartbeat_seconds=1.0, event_cache_seconds=0.2,
                             admission_secret=SECRET, db_pool_size=4)
    servers = [await start_server(SERVICE, settings) for _ in range(2)]
    channels = [grpc.aio.insecure_channel(f"127.0.0.1:{s.port}") for s in servers]
    yield [queue_pb2_grpc.QueueServiceStub(c) for c in channels]
    for channel in channels:
        await channel.close()
    for server in servers:
        await server.stop(grace=0)


async def _queued_event(db, *, rate: int, max_active: int = 10_000, sale_in: float = -60.0) -> int:
    event = await create_event(db, queue_enabled=True)
    async with db.begin() as conn:
        await conn.execute(
            text("UPDATE events SET queue_rate_per_second = :r, queue_max_active = :m, sale_starts_at = :s"
                 " WHERE event_id = :e"),
            {"r": rate, "m": max_active, "s": datetime.now(UTC) + timedelta(seconds=sale_in), "e": event.event_id},
        )
    return event.event_id


async def _watch_until_admitted(stub, event_id: int, ticket_id: str, user: str) -> list[queue_pb2.QueueTicket]:
    seen = []
    call = stub.WatchQueue(queue_pb2.WatchQueueRequest(event_id=str(event_id), ticket_id=ticket_id), metadata=_md(user))
    async for update in call:
        seen.append(update)
    return seen


async def test_joining_needs_a_fan_an_event_and_a_waiting_room(queue, db):
    stub = queue[0]
    plain = await create_event(db, queue_enabled=False)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.JoinQueue(queue_pb2.JoinQueueRequest(event_id=str(plain.event_id)))
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.JoinQueue(queue_pb2.JoinQueueRequest(event_id=str(plain.event_id)), metadata=_md("fan"))
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "WAITING_ROOM_DISABLED" in str(caught.value.trailing_metadata())
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.JoinQueue(queue_pb2.JoinQueueRequest(event_id="999999"), metadata=_md("fan"))
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.JoinQueue(queue_pb2.JoinQueueRequest(event_id="x"), metadata=_md("fan"))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_joining_twice_returns_the_same_ticket_and_others_cannot_watch_it(queue, db):
    event_id = await _queued_event(db, rate=0)
    first = await queue[0].JoinQueue(queue_pb2.JoinQueueRequest(event_id=str(event_id)), metadata=_md("fan-a"))
    again = await queue[1].JoinQueue(queue_pb2.JoinQueueRequest(event_id=str(event_id)), metadata=_md("fan-a"))
    assert first.ticket_id == again.ticket_id
    assert first.state == queue_pb2.QUEUE_TICKET_STATE_WAITING
    assert first.position == 1
    call = queue[0].WatchQueue(
        queue_pb2.WatchQueueRequest(event_id=str(event_id), ticket_id=first.ticket_id), metadata=_md("fan-b")
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call.read()
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


async def test_fans_are_admitted_at_the_configured_rate_across_processes_with_valid_tokens(queue, db):
    rate, fans = 40, 100
    event_id = await _queued_event(db, rate=rate)
    tickets = await asyncio.gather(*(
        queue[i % 2].JoinQueue(queue_pb2.JoinQueueRequest(event_id=str(event_id)), metadata=_md(f"fan-{i}"))
        for i in range(fans)
    ))
    positions = sorted(t.position for t in tickets)
    assert positions[-1] <= fans
    assert len({t.ticket_id for t in tickets}) == fans
    started = time.monotonic()
    streams = await asyncio.gather(*(
        _watch_until_admitted(queue[i % 2], event_id, t.ticket_id, f"fan-{i}") for i, t in enumerate(tickets)
    ))
    elapsed = time.monotonic() - started
    # Two processes drive admission, yet together they admit no faster than the rate (100 fans at 40/s).
    assert elapsed >= (fans / rate) * 0.75, elapsed
    assert elapsed < (fans / rate) * 2 + 2, elapsed
    for i, updates in enumerate(streams):
        last = updates[-1]
        assert last.state == ADMITTED
        assert last.position == 0
        assert last.admission_expire_time.seconds > time.time()
        token = verify_admission_token(SECRET, last.admission_token, user_id=f"fan-{i}", event_id=event_id)
        assert token.ticket_id == tickets[i].ticket_id
        waiting = [u for u in updates if u.state == queue_pb2.QUEUE_TICKET_STATE_WAITING]
        assert [u.position for u in waiting] == sorted((u.position for u in waiting), reverse=True)
    # The fan at the back was told a wait in the right range when joining.
    back = max(tickets, key=lambda t: t.position)
    assert 1 <= back.estimated_wait.seconds <= fans / rate * 2 + 1


async def test_active_shoppers_cap_holds_admission_back(queue, db):
    event_id = await _queued_event(db, rate=1000, max_active=5)
    tickets = [
        await queue[0].JoinQueue(queue_pb2.JoinQueueRequest(event_id=str(event_id)), metadata=_md(f"fan-{i}"))
        for i in range(12)
    ]
    await asyncio.sleep(0.5)
    states = []
    for i, ticket in enumerate(tickets):
        call = queue[0].WatchQueue(
            queue_pb2.WatchQueueRequest(event_id=str(event_id), ticket_id=ticket.ticket_id), metadata=_md(f"fan-{i}")
        )
        states.append((await call.read()).state)
        call.cancel()
    assert states.count(ADMITTED) == 5


async def test_pre_queue_is_shuffled_at_opening_and_later_fans_queue_behind_it(queue, db):
    event_id = await _queued_event(db, rate=0, sale_in=1.0)
    early = [
        await queue[0].JoinQueue(queue_pb2.JoinQueueRequest(event_id=str(event_id)), metadata=_md(f"early-{i}"))
        for i in range(30)
    ]
    assert {t.state for t in early} == {queue_pb2.QUEUE_TICKET_STATE_PRE_QUEUE}
    await asyncio.sleep(1.3)
    late = await queue[1].JoinQueue(queue_pb2.JoinQueueRequest(event_id=str(event_id)), metadata=_md("late"))
    assert late.state == queue_pb2.QUEUE_TICKET_STATE_WAITING
    assert late.position == 31
    placed = []
    for i, ticket in enumerate(early):
        call = queue[0].WatchQueue(
            queue_pb2.WatchQueueRequest(event_id=str(event_id), ticket_id=ticket.ticket_id), metadata=_md(f"early-{i}")
        )
        placed.append((await call.read()).position)
        call.cancel()
    assert sorted(placed) == list(range(1, 31))
    assert placed != list(range(1, 31)), "arrival order must buy nothing: the pre-queue is shuffled"


async def test_hundreds_of_watchers_in_one_process_all_get_admitted(queue, db):
    fans = 600
    event_id = await _queued_event(db, rate=0)
    tickets = await asyncio.gather(*(
        queue[0].JoinQueue(queue_pb2.JoinQueueRequest(event_id=str(event_id)), metadata=_md(f"fan-{i}"))
        for i in range(fans)
    ))
    watching = [
        asyncio.create_task(_watch_until_admitted(queue[0], event_id, t.ticket_id, f"fan-{i}"))
        for i, t in enumerate(tickets)
    ]
    await asyncio.sleep(1.0)
    assert not any(task.done() for task in watching)
    async with db.begin() as conn:
        await conn.execute(text("UPDATE events SET queue_rate_per_second = 5000 WHERE event_id = :e"), {"e": event_id})
    results = await asyncio.wait_for(asyncio.gather(*watching), timeout=30)
    assert all(updates[-1].state == ADMITTED for updates in results)


async def _join_burst(env: dict[str, str], event_id: int, fans: int, max_pending_calls: int | None) -> list:
    port = free_port()
    extra = {"TIX_MAX_PENDING_CALLS": str(max_pending_calls)} if max_pending_calls else {}
    process = subprocess.Popen(
        [sys.executable, "-m", "tix.cli", "serve", "queue", "--port", str(port)],
        env={**os.environ, **env, **extra, "TIX_METRICS_PORT": "0"},
    )
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            await asyncio.wait_for(channel.channel_ready(), 20)
            stub = queue_pb2_grpc.QueueServiceStub(channel)
            return await asyncio.gather(
                *(
                    stub.JoinQueue(queue_pb2.JoinQueueRequest(event_id=str(event_id)), metadata=_md(f"b-{i}"))
                    for i in range(fans)
                ),
                return_exceptions=True,
            )
    finally:
        process.terminate()
        process.wait(10)


async def test_a_burst_of_two_thousand_fans_is_served_not_cancelled(db, settings_env):
    """grpc.aio takes calls from the core one at a time; the core cancels calls left waiting past its pending
    limits. The negative control (a tiny limit) shows the failure the defaults caused for a 2,000-fan burst; the
    server's settings let such a burst queue and be served."""
    event_id = await _queued_event(db, rate=0)
    control = await _join_burst(settings_env, event_id, 2000, max_pending_calls=10)
    assert any(isinstance(r, grpc.aio.AioRpcError) and r.code() == grpc.StatusCode.CANCELLED for r in control)
    served = await _join_burst(settings_env, event_id, 2000, max_pending_calls=None)
    assert [r for r in served if isinstance(r, Exception)] == []
    assert len({r.ticket_id for r in served}) == 2000


async def test_fans_far_back_hear_of_coarser_steps_while_the_front_sees_every_place(queue, db):
    """Past the first 100 places a fan is shown the place rounded up to two significant figures, so a step reaches
    far-back fans only when their figure changes; near the front every step is a message."""
    fans = 250
    event_id = await _queued_event(db, rate=0)
    tickets = await asyncio.gather(*(
        queue[0].JoinQueue(queue_pb2.JoinQueueRequest(event_id=str(event_id)), metadata=_md(f"fan-{i}"))
        for i in range(fans)
    ))
    front = next(i for i, t in enumerate(tickets) if t.position == 70)
    back = [i for i, t in enumerate(tickets) if t.position > 200]
    assert {tickets[i].position for i in back} == {210, 220, 230, 240, 250}  # rounded up: 201..250
    seen: dict[int, list[int]] = {i: [] for i in (front, *back)}

    async def watch(i: int) -> None:
        call = queue[0].WatchQueue(
            queue_pb2.WatchQueueRequest(event_id=str(event_id), ticket_id=tickets[i].ticket_id), metadata=_md(f"fan-{i}")
        )
        async for update in call:
            if not seen[i] or seen[i][-1] != update.position:  # heartbeats repeat the last message
                seen[i].append(update.position)

    watching = [asyncio.create_task(watch(i)) for i in seen]
    await asyncio.sleep(0.5)
    async with db.begin() as conn:  # the line moves one place per tick (20/s, ticks of 50 ms)
        await conn.execute(text("UPDATE events SET queue_rate_per_second = 20 WHERE event_id = :e"), {"e": event_id})
    deadline = time.monotonic() + 20
    while len(seen[front]) < 41 and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    async with db.begin() as conn:
        await conn.execute(text("UPDATE events SET queue_rate_per_second = 0 WHERE event_id = :e"), {"e": event_id})
    await asyncio.sleep(0.5)
    for task in watching:
        task.cancel()
    await asyncio.gather(*watching, return_exceptions=True)

    # The front fan was told of every step: exact places, one message per place moved (a late tick on a busy
    # machine may move the line two places at once, hence the margin).
    moved = seen[front][0] - seen[front][-1]
    assert moved >= 40
    assert seen[front] == sorted(set(seen[front]), reverse=True)
    assert len(seen[front]) >= moved // 2 + 1, seen[front]
    # Fans 200+ places back moved as far, but were told only when the figure (a multiple of 10) changed.
    for i in back:
        assert all(position % 10 == 0 for position in seen[i]), seen[i]
        assert seen[i] == sorted(seen[i], reverse=True)
        assert len(seen[i]) <= moved // 10 + 2, seen[i]


async def test_a_final_message_handed_over_while_the_stream_writes_the_one_before_is_still_written(db, redis):
    """gRPC holds a stream at its yield while it writes a message; the admission handed over meanwhile must be the
    next message, not the end of the stream (under 20,000 watchers, fans at the front saw their stream close
    without the admission)."""
    from queue_svc.domain import QueueTicketView, TicketState, WaitingRoom
    from queue_svc.servicer import TicketRenderer
    from queue_svc.watchers import QueueWatchers

    event_id = await _queued_event(db, rate=0)
    repository = RedisQueueRepository(redis, db, event_cache_seconds=60, ttl_seconds=600)
    room = WaitingRoom(repository, admission_secret=SECRET, admission_ttl_seconds=600)
    renderer = TicketRenderer()
    watchers = QueueWatchers(room, renderer, owner="test", tick_seconds=0.5, heartbeat_seconds=60,
                             lease_seconds=1.5, presence_refresh_seconds=10)
    ticket = await room.ticket_of("fan-final", event_id, (await room.join("fan-final", event_id)).ticket_id)
    stream = watchers.watch(ticket)
    first = queue_pb2.QueueTicket.FromString(await anext(stream))
    assert first.state == queue_pb2.QUEUE_TICKET_STATE_WAITING
    waiting = asyncio.create_task(anext(stream))  # the stream joins its event's watchers and waits to be woken
    await asyncio.sleep(0.05)
    (watcher,) = watchers._by_event[event_id].watchers

    def view(state: TicketState, position: int) -> bytes:
        return watcher.prefix + renderer.body(QueueTicketView(ticket.ticket_id, event_id, state, position, 60.0,
                                                                ticket.joined_at, None, None))

    watcher.send(view(TicketState.WAITING, 1), "one", time.monotonic())
    writing = queue_pb2.QueueTicket.FromString(await waiting)  # the stream now waits at its yield
    assert writing.position == 1
    watcher.send(view(TicketState.EXPIRED, 0), "final", time.monotonic(), final=True)
    last = queue_pb2.QueueTicket.FromString(await anext(stream))
    assert last.state == queue_pb2.QUEUE_TICKET_STATE_EXPIRED
    with pytest.raises(StopAsyncIteration):
        await anext(stream)
