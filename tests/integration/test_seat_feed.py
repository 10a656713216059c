"""The seat-map clock and the seat feed as booking writes them: versions stored with the rows, publications that
chain, counters that follow, and the availability band recorded (with an outbox row) only when it changes."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import text

from booking_svc.sweeper import sweep_once
from tests.factories import create_event
from tests.integration.booking_harness import age_booking, booking_world, named
from tix import seatfeed
from tix.availability import AvailabilityBand

pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=<...>':DeprecationWarning")


@pytest.fixture
async def world(db, redis, redis_url, localstripe_url):
    async with booking_world(db, redis_url, localstripe_url) as built:
        yield built


async def map_version(db, event_id: int) -> int:
    async with db.connect() as conn:
        return int(await conn.scalar(text("SELECT max(version) FROM tickets WHERE event_id = :e"), {"e": event_id}))


async def log_entries(redis, event_id: int) -> list[dict]:
    return [fields for _, fields in await redis.xrange(seatfeed.log_key(event_id))]


async def test_each_booking_change_carries_the_version_stored_on_its_rows_and_names_the_one_before(world, db, redis):
    event = await create_event(db)
    first = await world.service.reserve_seats(named("fan-1", event.event_id, *event.seat_ids[:2]))
    after_first = await map_version(db, event.event_id)
    second = await world.service.reserve_seats(named("fan-2", event.event_id, event.seat_ids[5]))
    after_second = await map_version(db, event.event_id)
    await world.service.cancel_booking("fan-1", first.booking_id)
    after_cancel = await map_version(db, event.event_id)

    assert 0 < after_first < after_second < after_cancel
    entries = await log_entries(redis, event.event_id)
    assert [int(e["v"]) for e in entries] == [after_first, after_second, after_cancel]
    assert [int(e["p"]) for e in entries] == [0, after_first, after_second]
    assert entries[2]["c"] == f'[["{event.seat_ids[0]}", "available"], ["{event.seat_ids[1]}", "available"]]'
    assert await seatfeed.published_version(redis, event.event_id) == after_cancel
    assert second.status == "reserved"


async def test_a_later_change_of_one_seat_always_has_the_higher_version(world, db):
    event = await create_event(db)
    seat = event.seat_ids[0]
    versions = []
    for fan in range(5):
        booking = await world.service.reserve_seats(named(f"fan-{fan}", event.event_id, seat))
        async with db.connect() as conn:
            versions.append(
                await conn.scalar(
                    text("SELECT version FROM tickets WHERE event_id = :e AND seat_id = :s"),
                    {"e": event.event_id, "s": seat},
                )
            )
        await world.service.cancel_booking(f"fan-{fan}", booking.booking_id)
    assert versions == sorted(set(versions))


async def test_counters_follow_reservations_confirmations_and_releases(world, db, redis):
    event = await create_event(db)
    await world.service.reserve_seats(named("fan-1", event.event_id, *event.seat_ids[:4]))
    counts = await seatfeed.read_counters(redis, event.event_id)
    assert counts is not None
    assert (counts.total, counts.taken) == (100, 4)
    held = await world.service.reserve_seats(named("fan-2", event.event_id, *event.seat_ids[10:13]))
    await world.service.cancel_booking("fan-2", held.booking_id)
    counts = await seatfeed.read_counters(redis, event.event_id)
    assert counts is not None
    assert counts.available == 96


async def availability_outbox(db, event_id: int) -> tuple[str, list[str]]:
    async with db.connect() as conn:
        band = await conn.scalar(text("SELECT availability_band FROM events WHERE event_id = :e"), {"e": event_id})
        payloads = await conn.scalars(
            text("SELECT payload FROM outbox WHERE topic = 'availability' AND aggregate_id = :e ORDER BY outbox_id"),
            {"e": str(event_id)},
        )
        return band, [p["band"] for p in payloads]


async def test_the_band_is_recorded_with_an_outbox_row_only_when_it_changes(world, db, redis):
    event = await create_event(db)  # 100 seats: "few left" from 10 down, "sold out" at 0
    seats = event.seat_ids
    for fan, start in enumerate(range(0, 88, 8)):
        await world.service.reserve_seats(named(f"fan-{fan}", event.event_id, *seats[start:start + 8]))
    assert await availability_outbox(db, event.event_id) == ("available", [])

    await world.service.reserve_seats(named("fan-a", event.event_id, *seats[88:92]))
    assert await availability_outbox(db, event.event_id) == ("few_left", ["few_left"])
    await world.service.reserve_seats(named("fan-b", event.event_id, *seats[92:96]))
    assert await availability_outbox(db, event.event_id) == ("few_left", ["few_left"])  # same band: no write
    last = await world.service.reserve_seats(named("fan-c", event.event_id, *seats[96:100]))
    assert await availability_outbox(db, event.event_id) == ("sold_out", ["few_left", "sold_out"])

    # Expiry gives seats back: the band goes back too, once.
    await age_booking(db, last.booking_id)
    await sweep_once(world.service)
    counts = await seatfeed.read_counters(redis, event.event_id)
    assert counts is not None
    assert counts.band is AvailabilityBand.FEW_LEFT
    assert await availability_outbox(db, event.event_id) == ("few_left", ["few_left", "sold_out", "few_left"])


async def test_an_older_band_never_overwrites_a_newer_one(db):
    event = await create_event(db)
    async with db.begin() as conn:
        assert await seatfeed.record_band(conn, event.event_id, AvailabilityBand.SOLD_OUT, version=20)
        assert not await seatfeed.record_band(conn, event.event_id, AvailabilityBand.FEW_LEFT, version=10)
        assert not await seatfeed.record_band(conn, event.event_id, AvailabilityBand.SOLD_OUT, version=30)
        band = await conn.scalar(text("SELECT availability_band FROM events WHERE event_id = :e"), {"e": event.event_id})
    assert band == "sold_out"


async def test_a_stampede_of_reservations_keeps_the_counters_equal_to_the_rows(world, db, redis):
    event = await create_event(db, max_seats_per_user=8)
    async with db.connect() as conn:  # as when fans opened the event page before the on-sale
        await seatfeed.ensure_counters(redis, conn, event.event_id)
    await asyncio.gather(
        *(world.service.reserve_seats(named(f"fan-{i}", event.event_id, event.seat_ids[i])) for i in range(60))
    )
    counts = await seatfeed.read_counters(redis, event.event_id)
    async with db.connect() as conn:
        taken = await conn.scalar(
            text("SELECT count(*) FROM tickets WHERE event_id = :e AND status <> 'available'"), {"e": event.event_id}
        )
    assert counts is not None
    assert counts.taken == taken == 60
