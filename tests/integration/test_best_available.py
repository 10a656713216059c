"""Best-available as an allocator (booking_svc.allocation): concurrent fans get distinct adjacent blocks in one step,
named holds and allocated blocks exclude each other, the database path serves with Redis down, a fan who stops
waiting leaves no hold behind, and the reaper deletes holds no booking stands behind."""

from __future__ import annotations

import asyncio
import random
import time
import uuid

import pytest
import redis as sync_redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import REGISTRY

from booking_svc.allocation import _ALLOCATE, alloc_prefix
from booking_svc.blocks import ROWS_LOOKED_AT, best_block_in_row
from booking_svc.domain import BestAvailable, SeatRequest
from booking_svc.holds import hold_key
from booking_svc.reaper import reap_holds
from tests.factories import create_event
from tests.integration.booking_harness import (
    active_seat_count,
    assert_never_sold_twice,
    booking_settings,
    booking_world,
    build_world,
    named,
)
from tix.errors import Aborted, ResourceExhausted
from tix_dev.readiness import free_port

pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=<...>':DeprecationWarning")

HALL = {"sections": 1, "rows": 10, "seats_per_row": 10, "layout_id": "alloc-hall-100"}


@pytest.fixture
async def world(db, redis, redis_url, localstripe_url):
    async with booking_world(db, redis_url, localstripe_url) as built:
        yield built


def best(user_id: str, event_id: int, quantity: int, **wish) -> SeatRequest:
    return SeatRequest(user_id=user_id, event_id=event_id, best_available=BestAvailable(quantity, **wish))


def _parts(seat_id: str) -> tuple[str, str, int]:
    section, row, number = seat_id.split("-")
    return section, row, int(number)


def assert_adjacent_in_one_row(seat_ids) -> None:
    parts = sorted(_parts(s) for s in seat_ids)
    assert len({(p[0], p[1]) for p in parts}) == 1, seat_ids
    numbers = [p[2] for p in parts]
    assert numbers == list(range(numbers[0], numbers[0] + len(numbers))), seat_ids


def _counter(name: str, labels: dict[str, str]) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_hundreds_of_concurrent_fans_get_distinct_adjacent_blocks_until_every_seat_is_sold(world, db):
    event = await create_event(db, **HALL)
    rng = random.Random(7)
    refused_before = _counter("tix_booking_bookings_total", {"outcome": "refused_by_database"})
    # Waves of fans, 1-4 seats each, until even a single seat is no longer to be had.
    sold: list = []
    wave = 0
    while True:
        wave += 1
        quantities = [rng.randint(1, 4) for _ in range(300)] if wave == 1 else [1] * 50
        results = await asyncio.gather(
            *(world.service.reserve_seats(best(f"fan-{wave}-{i}", event.event_id, q)) for i, q in enumerate(quantities)),
            return_exceptions=True,
        )
        won = [r for r in results if not isinstance(r, BaseException)]
        # A burst beyond what the process takes on at once is shed (BOOKING_BUSY, retry later): the next wave.
        shed = [r for r in results if isinstance(r, ResourceExhausted) and r.reason == "BOOKING_BUSY"]
        unexpected = [r for r in results if isinstance(r, BaseException) and r not in shed and not (
            isinstance(r, Aborted) and r.reason == "SEAT_UNAVAILABLE")]
        assert not unexpected, unexpected[:3]
        for booking, q in zip(results, quantities, strict=True):
            if not isinstance(booking, BaseException):
                assert len(booking.seat_ids) == q
                assert_adjacent_in_one_row(booking.seat_ids)
        sold.extend(won)
        if not won and not shed:
            break
    owner = await assert_never_sold_twice(db, event.event_id)
    assert set(owner) == set(event.seat_ids)
    assert sum(len(b.seat_ids) for b in sold) == 100
    # No fan was sent to PostgreSQL for seats another fan held: the allocator never hands out a held seat.
    assert _counter("tix_booking_bookings_total", {"outcome": "refused_by_database"}) == refused_before


async def test_the_best_block_is_front_and_centre_and_strands_no_single_seat(world, db):
    event = await create_event(db, **HALL)
    first = await world.service.reserve_seats(best("fan-a", event.event_id, 2))
    # Row A, around its best seat (5): 4-5 or 5-6.
    assert sorted(first.seat_ids) in (["S1-A-4", "S1-A-5"], ["S1-A-5", "S1-A-6"])
    # Leave row A with a run of 3 on the side that has fewer free seats.
    taken = {_parts(s)[2] for s in first.seat_ids}
    left_free = min(taken) - 1  # seats 1..left_free are free
    right_free = 10 - max(taken)
    # A fan for 2 would strand a single seat in the run of 3; in the other run (4 or 5 seats) a 2-block that strands
    # nothing exists, so the fan gets it.
    second = await world.service.reserve_seats(best("fan-b", event.event_id, 2))
    numbers = sorted(_parts(s)[2] for s in second.seat_ids)
    assert all(_parts(s)[1] == "A" for s in second.seat_ids)
    run = (1, left_free) if left_free >= right_free else (max(taken) + 1, 10)
    assert run[0] <= numbers[0]
    assert numbers[-1] <= run[1]
    left, right = numbers[0] - run[0], run[1] - numbers[-1]
    assert left != 1, (numbers, run)
    assert right != 1, (numbers, run)


async def test_a_price_tier_or_section_wish_is_honoured(world, db):
    event = await create_event(db, sections=2, rows=4, seats_per_row=6, layout_id="alloc-two-sections")
    cheap = await world.service.reserve_seats(best("fan-t", event.event_id, 3, price_tier=2))
    # Tier 2 is the back half (rows C and D).
    assert {_parts(s)[1] for s in cheap.seat_ids} <= {"C", "D"}
    section = await world.service.reserve_seats(best("fan-s", event.event_id, 2, section_id="S2"))
    assert {_parts(s)[0] for s in section.seat_ids} == {"S2"}
    both = await world.service.reserve_seats(best("fan-x", event.event_id, 4, section_id="S2", price_tier=2))
    assert {_parts(s)[0] for s in both.seat_ids} == {"S2"}
    assert {_parts(s)[1] for s in both.seat_ids} <= {"C", "D"}


async def test_named_holds_and_allocated_blocks_never_overlap(world, db):
    event = await create_event(db, **HALL)
    await world.service.reserve_seats(best("warm-up", event.event_id, 1))  # the allocator is loaded now
    # A fan takes the middle of row A by name after the allocator loaded: it learns of the hold when it meets it.
    named_booking = await world.service.reserve_seats(named("by-name", event.event_id, "S1-A-4", "S1-A-6", "S1-A-7"))
    blocks = await asyncio.gather(*(world.service.reserve_seats(best(f"fan-{i}", event.event_id, 2)) for i in range(20)))
    for booking in blocks:
        assert not set(booking.seat_ids) & set(named_booking.seat_ids)
        assert_adjacent_in_one_row(booking.seat_ids)
    await assert_never_sold_twice(db, event.event_id)
    # A cancelled booking's seats go back to the allocator: the next fan gets row A again.
    await world.service.cancel_booking("by-name", named_booking.booking_id)
    again = await world.service.reserve_seats(best("after-cancel", event.event_id, 2))
    assert {_parts(s)[1] for s in again.seat_ids} == {"A"}


async def test_with_redis_down_best_available_is_served_by_the_database(db, localstripe_url):
    dead = f"redis://127.0.0.1:{free_port()}/0"
    settings = booking_settings(localstripe_url, redis_url=dead, lock_node_timeout_seconds=0.2)
    down = await build_world(db, settings, dead)
    try:
        event = await create_event(db, **HALL)
        results = await asyncio.gather(
            *(down.service.reserve_seats(best(f"fan-{i}", event.event_id, 3)) for i in range(30)),
            return_exceptions=True,
        )
        won = [r for r in results if not isinstance(r, BaseException)]
        assert all(isinstance(r, Aborted) for r in results if isinstance(r, BaseException)), results
        # 10 rows of 10: at most three 3-blocks per row without breaking a row into unsellable bits.
        assert len(won) >= 25
        for booking in won:
            assert_adjacent_in_one_row(booking.seat_ids)
        await assert_never_sold_twice(db, event.event_id)
        front = min(won, key=lambda b: min(_parts(s)[1] for s in b.seat_ids))
        assert {_parts(s)[1] for s in front.seat_ids} == {"A"}
    finally:
        await down.aclose()


async def test_a_fan_who_stops_waiting_leaves_no_hold_and_no_reservation(world, db, redis):
    event = await create_event(db, **HALL)
    await world.service.reserve_seats(best("warm-up", event.event_id, 1))
    tasks = [asyncio.ensure_future(world.service.reserve_seats(best(f"quitter-{i}", event.event_id, 2)))
             for i in range(40)]
    await asyncio.sleep(0.02)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    # Work already under way finishes, then is given back: only the warm-up's seat stays held, in Redis and in
    # PostgreSQL.
    for _ in range(100):
        await asyncio.sleep(0.1)
        keys = [k async for k in redis.scan_iter(match=hold_key(event.event_id, "*"))]
        if len(keys) == 1 and await active_seat_count(db, event.event_id) == 1:
            break
    owner = await assert_never_sold_twice(db, event.event_id)
    assert len(owner) == 1, owner
    assert len(keys) == 1, keys
    # And the seats are sold again, best first.
    again = await world.service.reserve_seats(best("stayer", event.event_id, 2))
    assert {_parts(s)[1] for s in again.seat_ids} == {"A"}


async def test_load_is_shed_with_a_retry_delay_when_too_many_reservations_are_in_flight(db, redis, redis_url,
                                                                                        localstripe_url):
    settings = booking_settings(localstripe_url, redis_url=redis_url, reserve_max_in_flight=2,
                                reserve_queue_seconds=0.01)
    crowded = await build_world(db, settings, redis_url)
    try:
        event = await create_event(db, **HALL)
        results = await asyncio.gather(
            *(crowded.service.reserve_seats(best(f"fan-{i}", event.event_id, 1)) for i in range(30)),
            return_exceptions=True,
        )
        shed = [r for r in results if isinstance(r, ResourceExhausted)]
        assert shed
        assert all(r.reason == "BOOKING_BUSY" and r.retry_delay_seconds for r in shed)
        assert len(shed) < 30
        # A call whose deadline leaves no time for the work is shed at once, before touching any store.
        started = time.monotonic()
        with pytest.raises(ResourceExhausted):
            await crowded.service.reserve_seats(best("late", event.event_id, 1), deadline=time.monotonic() + 0.01)
        assert time.monotonic() - started < 0.05
    finally:
        await crowded.aclose()


async def test_the_reaper_deletes_holds_no_booking_stands_behind_and_the_seats_sell_again(world, db, redis):
    event = await create_event(db, **HALL)
    kept = await world.service.reserve_seats(best("keeper", event.event_id, 2))
    # A hold written by a process that died before its reservation: the best seats left in row A.
    ghost = str(uuid.uuid4())
    leaked = await world.allocator.allocate(event.event_id, 2, ghost, 600_000)
    young = await world.allocator.allocate(event.event_id, 1, str(uuid.uuid4()), 600_000)
    # Age the leaked hold past the grace period (its TTL says it was taken 5 minutes ago).
    for seat in leaked.seat_ids:
        await redis.pexpire(hold_key(event.event_id, seat), 300_000)

    report = await reap_holds(world.holds, world.repository, hold_ms=600_000, grace_seconds=60)

    assert report.leaked == 2
    assert report.reaped == 2
    assert await redis.mget([hold_key(event.event_id, s) for s in leaked.seat_ids]) == [None, None]
    # The young hold (within the grace period) and the live booking's holds stay.
    assert await redis.get(hold_key(event.event_id, young.seat_ids[0])) is not None
    assert all(await redis.mget([hold_key(event.event_id, s) for s in kept.seat_ids]))
    # The allocator has the reaped seats back.
    again = await world.service.reserve_seats(best("next", event.event_id, 2))
    assert set(again.seat_ids) == set(leaked.seat_ids)


async def test_a_cold_event_loads_once_for_a_crowd_and_off_the_event_loop(world, db, redis):
    event = await create_event(db, sections=4, rows=50, seats_per_row=100, layout_id="alloc-cold-20000")
    lags: list[float] = []
    stop = asyncio.Event()

    async def probe() -> None:
        while not stop.is_set():
            started = time.perf_counter()
            await asyncio.sleep(0.005)
            lags.append(time.perf_counter() - started - 0.005)

    prober = asyncio.create_task(probe())
    loads_before = _counter("tix_booking_allocator_load_seconds_count", {})
    bookings = await asyncio.gather(*(world.service.reserve_seats(best(f"fan-{i}", event.event_id, 4)) for i in range(50)))
    stop.set()
    await prober
    assert len({s for b in bookings for s in b.seat_ids}) == 200
    assert _counter("tix_booking_allocator_load_seconds_count", {}) == loads_before + 1
    assert await redis.hget(f"{alloc_prefix(event.event_id)}meta", "seats") == "20000"
    # The loop stayed responsive while 20,000 seats were read and indexed: no stall near the load's length (the
    # fifty reservations and a loaded machine add their own jitter).
    assert max(lags) < 1.0, max(lags)


rows_of_seats = st.lists(st.booleans(), min_size=1, max_size=30)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(free=rows_of_seats, quantity=st.integers(1, 8), data=st.data())
def test_the_lua_allocator_picks_the_block_the_python_rules_pick(redis_url, free, quantity, data):
    """The allocator's Lua and booking_svc.blocks agree on any row: same kind of block (stranding or not), same
    distance from the row's best seat; and it holds exactly that block."""
    centre = data.draw(st.integers(0, len(free) - 1))
    client = sync_redis.Redis.from_url(redis_url, decode_responses=True)
    event_id = 990_000 + data.draw(st.integers(0, 9999))
    prefix = alloc_prefix(event_id)
    try:
        client.delete(*(f"{prefix}{k}" for k in ("meta", "free", "ids", "info", "pos")),
                      *(f"{prefix}fit:a:{k}" for k in range(1, 9)))
        for key in client.scan_iter(match=hold_key(event_id, "*")):
            client.delete(key)
        ids = [f"R-{n}" for n in range(1, len(free) + 1)]
        state = "".join("1" if f else "0" for f in free)
        client.hset(f"{prefix}free", "1", state)
        client.hset(f"{prefix}ids", "1", " ".join(ids))
        client.hset(f"{prefix}info", "1", f"5 {centre + 1} a")
        longest = max((len(run) for run in state.split("0")), default=0)
        for k in range(1, min(longest, 8) + 1):
            client.zadd(f"{prefix}fit:a:{k}", {"1": 5})
        client.hset(f"{prefix}meta", "ready", "1")
        allocate = client.register_script(_ALLOCATE)
        reply = allocate(
            keys=[f"{prefix}meta", f"{prefix}free", f"{prefix}ids", f"{prefix}info"],
            args=[prefix, hold_key(event_id, ""), quantity, "b-1", 60_000, "a", ROWS_LOOKED_AT],
        )
        expected = best_block_in_row(free, quantity, centre)
        if expected is None:
            assert reply == ["none"]
            return
        assert reply[0] == "ok"
        start = ids.index(reply[1])
        assert reply[1:] == ids[start : start + quantity]
        assert all(free[start : start + quantity])
        run_start = start
        while run_start > 0 and free[run_start - 1]:
            run_start -= 1
        end = start + quantity - 1
        run_end = end
        while run_end + 1 < len(free) and free[run_end + 1]:
            run_end += 1
        assert (start - run_start == 1 or run_end - end == 1) == expected.strands_single
        assert abs(2 * start + quantity - 1 - 2 * centre) == expected.distance
        assert client.mget([hold_key(event_id, s) for s in reply[1:]]) == ["b-1"] * quantity
        assert client.hget(f"{prefix}free", "1")[start : start + quantity] == "0" * quantity
    finally:
        client.close()
