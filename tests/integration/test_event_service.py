"""The event service against real PostgreSQL and Redis: event pages, seat maps and the live seat feed."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from sqlalchemy import text

from event_svc.domain import EventViewing, LayoutCache, MapSnapshot
from event_svc.read_cache import RedisFeedClock
from event_svc.repository import CatalogRepository, RedisAvailability, RedisCatalogCache
from event_svc.seat_hub import SeatHub
from event_svc.server import SERVICE as EVENT
from event_svc.settings import EventSettings
from tests.factories import create_event
from tix import seatfeed
from tix.catalog import invalidate_catalog, invalidate_event
from tix.inventory import ensure_tickets
from tixpb.v1 import common_pb2, event_pb2, event_pb2_grpc


@pytest.fixture
async def event_server(settings_env, db, redis):
    # Events nobody watches are unsubscribed at once (see the linger test for the default).
    running = await start_event_server(watch_linger_seconds=0)
    yield running
    await running.stop(grace=0)


async def start_event_server(**overrides):
    from tix.server import start_server

    settings = EventSettings(port=0, db_pool_size=4, db_max_overflow=2, **overrides)
    return await start_server(EVENT, settings)


@pytest.fixture
async def events(event_server):
    async with grpc.aio.insecure_channel(f"127.0.0.1:{event_server.port}") as channel:
        yield event_pb2_grpc.EventServiceStub(channel)


async def set_seats(
    engine, event_id: int, seat_ids: list[str], status: str, *, expires_in: timedelta | None = None, redis=None
) -> int:
    """Put seats in a state the way booking does (materialising the event's tickets first, drawing seat-map
    versions); with ``redis``, publish the change on the seat feed as booking does after its commit. Returns the
    change's version."""
    async with engine.begin() as conn:
        await ensure_tickets(conn, event_id)
        until = datetime.now(UTC) + (expires_in or timedelta(minutes=10))
        rows = (
            await conn.execute(
                text(
                    "UPDATE tickets t SET status = :status, booking_id = :booking, reserved_until = :until,"
                    f" version = {seatfeed.NEXT_VERSION}"
                    " FROM (SELECT seat_id, status FROM tickets WHERE event_id = :event_id AND seat_id = ANY(:seats)"
                    "       FOR UPDATE) old"
                    " WHERE t.event_id = :event_id AND t.seat_id = old.seat_id"
                    " RETURNING t.seat_id, t.section_id, old.status AS previous, t.version"
                ),
                {
                    "status": status,
                    "booking": None if status == "available" else uuid.uuid4(),
                    "until": until if status == "reserved" else None,
                    "event_id": event_id,
                    "seats": seat_ids,
                },
            )
        ).all()
    version = max(row.version for row in rows)
    if redis is not None:
        changes = [seatfeed.SeatChange(r.seat_id, r.section_id, r.previous, status) for r in rows]
        await seatfeed.publish(redis, event_id, version, changes)
    return version


def error_reason(error: grpc.aio.AioRpcError) -> str:
    info = error_details_pb2.ErrorInfo()
    status = rpc_status.from_call(error)
    assert status is not None
    assert status.details[0].Unpack(info)
    return info.reason


# --- GetEvent --------------------------------------------------------------------------------------------------


async def test_event_page_shows_details_prices_and_live_availability(db, events):
    event = await create_event(db, queue_enabled=True, max_seats_per_user=4)
    await set_seats(db, event.event_id, ["S1-A-1", "S1-A-2", "S1-A-3"], "reserved")
    await set_seats(db, event.event_id, ["S2-E-9", "S2-E-10"], "booked")

    page = await events.GetEvent(event_pb2.GetEventRequest(event_id=str(event.event_id)))

    assert page.event_id == str(event.event_id)
    assert page.name == "The Test Band Live"
    assert page.category == common_pb2.EVENT_CATEGORY_CONCERT
    assert page.venue.venue_id == str(event.venue_id)
    assert page.venue.city == "Chicago"
    assert page.venue.capacity == 100
    assert page.venue.layout_name == "test-hall"
    assert page.performer.performer_id == str(event.performer_id)
    assert page.performer.name == "The Test Band"
    assert page.sale_status == event_pb2.SALE_STATUS_ON_SALE
    assert page.waiting_room.enabled
    assert page.waiting_room.admission_rate_per_second == 50
    assert page.max_seats_per_user == 4
    assert (page.min_price.amount_minor, page.max_price.amount_minor) == (7500, 12500)
    assert page.min_price.currency_code == "USD"
    assert (page.total_count, page.available_count) == (100, 95)
    by_section = {s.section_id: s for s in page.sections}
    assert list(by_section) == ["S1", "S2"]
    assert page.availability_band == common_pb2.AVAILABILITY_BAND_AVAILABLE
    assert (by_section["S1"].available_count, by_section["S1"].total_count) == (47, 50)
    assert (by_section["S2"].available_count, by_section["S2"].total_count) == (48, 50)
    assert by_section["S1"].price.amount_minor == 7500
    assert by_section["S1"].name == "Section 1"
    assert page.start_time.ToDatetime(UTC) > datetime.now(UTC)


async def test_viewing_an_event_never_materialises_its_tickets(db, events):
    event = await create_event(db)
    page = await events.GetEvent(event_pb2.GetEventRequest(event_id=str(event.event_id)))
    seat_map = await events.ListSeats(event_pb2.ListSeatsRequest(event_id=str(event.event_id)))
    assert page.available_count == 100
    assert all(set(row.status_codes) == {"A"} for s in seat_map.sections for row in s.rows)
    async with db.connect() as conn:
        assert await conn.scalar(text("SELECT count(*) FROM tickets")) == 0


async def test_sale_status_follows_schedule_stock_and_cancellation(db, events):
    scheduled = await create_event(db, on_sale=False)
    page = await events.GetEvent(event_pb2.GetEventRequest(event_id=str(scheduled.event_id)))
    assert page.sale_status == event_pb2.SALE_STATUS_SCHEDULED

    sold_out = await create_event(db)
    await set_seats(db, sold_out.event_id, sold_out.seat_ids, "booked")
    page = await events.GetEvent(event_pb2.GetEventRequest(event_id=str(sold_out.event_id)))
    assert (page.sale_status, page.available_count) == (event_pb2.SALE_STATUS_SOLD_OUT, 0)
    assert page.availability_band == common_pb2.AVAILABILITY_BAND_SOLD_OUT

    past = await create_event(db, starts_in=timedelta(hours=-1))
    page = await events.GetEvent(event_pb2.GetEventRequest(event_id=str(past.event_id)))
    assert page.sale_status == event_pb2.SALE_STATUS_ENDED


async def test_unknown_event_is_not_found_and_malformed_id_is_invalid(db, events):
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await events.GetEvent(event_pb2.GetEventRequest(event_id="424242"))
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    assert error_reason(caught.value) == "EVENT_NOT_FOUND"

    for bad in ("", "abc", "-1", "0", "1" * 30):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await events.GetEvent(event_pb2.GetEventRequest(event_id=bad))
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, bad

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await events.ListSeats(event_pb2.ListSeatsRequest(event_id="424242"))
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


async def test_catalog_changes_show_once_the_event_is_invalidated(db, redis, events):
    event = await create_event(db)
    request = event_pb2.GetEventRequest(event_id=str(event.event_id))
    assert (await events.GetEvent(request)).name == "The Test Band Live"

    async with db.begin() as conn:
        await conn.execute(
            text("UPDATE events SET name = 'Moved Show', cancelled = true WHERE event_id = :e"), {"e": event.event_id}
        )
    cached = await events.GetEvent(request)
    assert cached.name == "The Test Band Live"  # details are served from the cache until invalidated

    await invalidate_event(redis, event.event_id)
    fresh = await events.GetEvent(request)
    assert (fresh.name, fresh.sale_status) == ("Moved Show", event_pb2.SALE_STATUS_CANCELLED)


async def test_reloading_the_catalog_invalidates_every_cached_event(db, redis, events):
    event = await create_event(db)
    request = event_pb2.GetEventRequest(event_id=str(event.event_id))
    assert (await events.GetEvent(request)).name == "The Test Band Live"
    async with db.begin() as conn:
        await conn.execute(text("UPDATE events SET name = 'Reseeded Show'"))
    await invalidate_catalog(redis)
    assert (await events.GetEvent(request)).name == "Reseeded Show"


async def test_an_event_created_after_a_miss_is_found_once_invalidated(db, redis, events):
    with pytest.raises(grpc.aio.AioRpcError):
        await events.GetEvent(event_pb2.GetEventRequest(event_id="1"))
    event = await create_event(db)  # identities restart per test, so this is event 1
    assert event.event_id == 1
    await invalidate_event(redis, event.event_id)
    page = await events.GetEvent(event_pb2.GetEventRequest(event_id="1"))
    assert page.name == "The Test Band Live"


async def test_availability_follows_the_changes_booking_publishes_at_once(db, redis, events):
    event = await create_event(db)
    request = event_pb2.GetEventRequest(event_id=str(event.event_id))
    assert (await events.GetEvent(request)).available_count == 100  # counters built from PostgreSQL
    await set_seats(db, event.event_id, event.seat_ids[:91], "booked", redis=redis)
    page = await events.GetEvent(request)
    assert (page.available_count, page.availability_band) == (9, common_pb2.AVAILABILITY_BAND_FEW_LEFT)
    await set_seats(db, event.event_id, event.seat_ids[:1], "available", redis=redis)
    assert (await events.GetEvent(request)).available_count == 10


async def test_lost_counters_are_rebuilt_from_postgresql_with_what_the_log_holds_beyond_the_count(db, redis):
    event = await create_event(db)
    await set_seats(db, event.event_id, event.seat_ids[:3], "booked", redis=redis)
    async with db.connect() as conn:
        built = await seatfeed.ensure_counters(redis, conn, event.event_id)
        assert built is not None
        assert (built.available, built.total) == (97, 100)
        await redis.delete(seatfeed.counters_key(event.event_id))
        version, counted = await seatfeed.count_availability(conn, event.event_id)
    # Published after the count and before its counters were stored: the log has it, so it is not lost.
    await set_seats(db, event.event_id, event.seat_ids[3:5], "reserved", redis=redis)
    assert await seatfeed.read_counters(redis, event.event_id) is None
    rebuilt = await seatfeed.install_counters(redis, event.event_id, version, counted)
    assert (rebuilt.available, sum(rebuilt.taken_by_section.values())) == (95, 5)
    # Whoever stores counters first wins; a slower rebuild from an older count changes nothing.
    again = await seatfeed.install_counters(redis, event.event_id, version, counted)
    assert again.available == 95


# --- ListSeats -------------------------------------------------------------------------------------------------


async def test_compact_seat_map_has_one_status_string_per_row(db, redis, events):
    event = await create_event(db)
    await set_seats(db, event.event_id, ["S1-A-2", "S1-A-3"], "reserved")
    version = await set_seats(db, event.event_id, ["S1-A-10", "S2-E-1"], "booked")

    seat_map = await events.ListSeats(event_pb2.ListSeatsRequest(event_id=str(event.event_id)))

    assert seat_map.event_id == str(event.event_id)
    assert seat_map.version == version
    assert [s.section_id for s in seat_map.sections] == ["S1", "S2"]
    s1, s2 = seat_map.sections
    assert [row.row_label for row in s1.rows] == ["A", "B", "C", "D", "E"]
    assert s1.rows[0].first_seat_number == 1
    assert s1.rows[0].status_codes == "ARRAAAAAAB"
    assert s1.rows[1].status_codes == "A" * 10
    assert s2.rows[4].status_codes == "BAAAAAAAAA"
    assert (s1.available_count, s1.total_count, s2.available_count) == (47, 50, 49)
    assert s1.price.amount_minor == 7500
    assert not s1.rows[0].seats


async def test_full_seat_map_lists_every_seat_with_position_and_price(db, events):
    event = await create_event(db)
    await set_seats(db, event.event_id, ["S2-A-5"], "booked")
    seat_map = await events.ListSeats(
        event_pb2.ListSeatsRequest(event_id=str(event.event_id), view=event_pb2.SEAT_MAP_VIEW_FULL)
    )
    seats = {seat.seat_id: seat for s in seat_map.sections for row in s.rows for seat in row.seats}
    assert len(seats) == 100
    front, back = seats["S2-A-5"], seats["S1-E-3"]
    assert (front.section_id, front.row_label, front.number) == ("S2", "A", 5)
    assert front.status == common_pb2.SEAT_STATUS_BOOKED
    assert front.price.amount_minor == 12500
    assert back.price.amount_minor == 7500
    assert (front.x, front.y) == (17.0, 1.0)
    assert back.status == common_pb2.SEAT_STATUS_AVAILABLE


async def test_section_filter_returns_only_that_section_and_unknown_sections_are_not_found(db, events):
    event = await create_event(db)
    seat_map = await events.ListSeats(event_pb2.ListSeatsRequest(event_id=str(event.event_id), section_id="S2"))
    assert [s.section_id for s in seat_map.sections] == ["S2"]
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await events.ListSeats(event_pb2.ListSeatsRequest(event_id=str(event.event_id), section_id="S9"))
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    assert error_reason(caught.value) == "SECTION_NOT_FOUND"


async def test_the_seat_map_at_a_version_is_the_rows_at_that_version(db, events):
    """A reservation past its deadline stays 'R' until booking's sweeper frees it under a new version: one
    version, one map, whatever the clock says (so maps can be cached by version)."""
    event = await create_event(db)
    await set_seats(db, event.event_id, ["S1-C-4"], "reserved", expires_in=timedelta(seconds=-1))
    version = await set_seats(db, event.event_id, ["S1-C-5"], "reserved")
    request = event_pb2.ListSeatsRequest(event_id=str(event.event_id), section_id="S1")
    seat_map = await events.ListSeats(request)
    assert (seat_map.version, seat_map.sections[0].rows[2].status_codes) == (version, "AAARRAAAAA")
    freed = await set_seats(db, event.event_id, ["S1-C-4"], "available")
    seat_map = await events.ListSeats(request)
    assert freed > version
    assert (seat_map.version, seat_map.sections[0].rows[2].status_codes) == (freed, "AAAARAAAAA")


async def test_a_20000_seat_compact_map_is_fast(db, events):
    event = await create_event(db, layout_id="test-arena-20k", sections=20, rows=40, seats_per_row=25)
    assert len(event.seat_ids) == 20_000
    await set_seats(db, event.event_id, event.seat_ids[::4], "booked")
    request = event_pb2.ListSeatsRequest(event_id=str(event.event_id))
    await events.ListSeats(request)  # loads the layout into the process once
    timings = []
    for _ in range(10):
        started = time.perf_counter()
        seat_map = await events.ListSeats(request)
        timings.append((time.perf_counter() - started) * 1000)
        await asyncio.sleep(0)
    timings.sort()
    print(f"\n20,000-seat compact ListSeats: median {timings[5]:.1f} ms, max {timings[-1]:.1f} ms, "
          f"{seat_map.ByteSize()} bytes")
    assert sum(s.available_count for s in seat_map.sections) == 15_000
    assert timings[5] < 250

    # The full view comes in pages of whole sections (5,000 seats at most by default): four here.
    started = time.perf_counter()
    pages, token = [], ""
    while True:
        page = await events.ListSeats(event_pb2.ListSeatsRequest(
            event_id=str(event.event_id), view=event_pb2.SEAT_MAP_VIEW_FULL, page_token=token))
        pages.append(page)
        token = page.next_page_token
        if not token:
            break
    print(f"20,000-seat full ListSeats: {(time.perf_counter() - started) * 1000:.0f} ms in {len(pages)} pages, "
          f"{max(p.ByteSize() for p in pages)} bytes at most")
    assert len(pages) == 4
    assert sum(len(row.seats) for p in pages for s in p.sections for row in s.rows) == 20_000
    assert [s.section_id for p in pages for s in p.sections] == [f"S{i}" for i in range(1, 21)]


async def test_pages_and_seat_maps_are_served_from_postgresql_when_redis_is_down(settings_env, db):
    from tix_dev.readiness import free_port

    event = await create_event(db)
    await set_seats(db, event.event_id, ["S1-A-1"], "booked")
    running = await start_event_server(redis_url=f"redis://127.0.0.1:{free_port()}/0")
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            stub = event_pb2_grpc.EventServiceStub(channel)
            page = await stub.GetEvent(event_pb2.GetEventRequest(event_id=str(event.event_id)))
            assert page.available_count == 99
            seat_map = await stub.ListSeats(event_pb2.ListSeatsRequest(event_id=str(event.event_id)))
            assert seat_map.sections[0].rows[0].status_codes.startswith("B")
            call = stub.WatchSeats(event_pb2.WatchSeatsRequest(event_id=str(event.event_id)))
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await call.read()
            assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        await running.stop(grace=0)


# --- WatchSeats ------------------------------------------------------------------------------------------------


async def numsub(redis, event_id: int) -> int:
    return dict(await redis.pubsub_numsub(seatfeed.channel(event_id)))[seatfeed.channel(event_id)]


async def wait_for(predicate, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not await predicate():
        assert time.monotonic() < deadline, "condition never became true"
        await asyncio.sleep(0.02)


async def test_watch_sends_a_snapshot_then_the_changes_published_after_it(db, redis, events):
    event = await create_event(db)
    booked = await set_seats(db, event.event_id, ["S1-A-1"], "booked", redis=redis)

    call = events.WatchSeats(event_pb2.WatchSeatsRequest(event_id=str(event.event_id)))
    first = await call.read()
    assert first.WhichOneof("update") == "snapshot"
    assert first.version == first.snapshot.version == booked
    assert first.snapshot.sections[0].rows[0].status_codes.startswith("B")

    reserved = await set_seats(db, event.event_id, ["S1-A-2", "S1-A-3"], "reserved", redis=redis)
    freed = await set_seats(db, event.event_id, ["S1-A-2"], "available", redis=redis)
    second, third = await call.read(), await call.read()
    assert second.version == reserved
    assert second.WhichOneof("update") == "changes"
    assert [(c.seat_id, c.status) for c in second.changes.changes] == [
        ("S1-A-2", common_pb2.SEAT_STATUS_RESERVED), ("S1-A-3", common_pb2.SEAT_STATUS_RESERVED)
    ]
    assert third.version == freed
    assert [(c.seat_id, c.status) for c in third.changes.changes] == [("S1-A-2", common_pb2.SEAT_STATUS_AVAILABLE)]
    call.cancel()


async def test_watching_an_unknown_event_is_not_found(db, events):
    call = events.WatchSeats(event_pb2.WatchSeatsRequest(event_id="999"))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call.read()
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


async def test_many_watchers_share_one_subscription_and_all_see_each_change(db, redis, events):
    event = await create_event(db)
    calls = [events.WatchSeats(event_pb2.WatchSeatsRequest(event_id=str(event.event_id))) for _ in range(200)]
    snapshots = await asyncio.gather(*(call.read() for call in calls))
    assert {s.WhichOneof("update") for s in snapshots} == {"snapshot"}
    assert await numsub(redis, event.event_id) == 1

    version = await set_seats(db, event.event_id, ["S2-C-7"], "booked", redis=redis)
    updates = await asyncio.wait_for(asyncio.gather(*(call.read() for call in calls)), 10)
    assert {(u.version, u.changes.changes[0].seat_id) for u in updates} == {(version, "S2-C-7")}

    for call in calls:
        call.cancel()
    await wait_for(lambda: _is(numsub(redis, event.event_id), 0))


async def test_a_burst_of_2000_new_streams_is_served_without_refusals(db, redis, event_server):
    event = await create_event(db)
    channels = [grpc.aio.insecure_channel(f"127.0.0.1:{event_server.port}") for _ in range(4)]
    try:
        stubs = [event_pb2_grpc.EventServiceStub(channel) for channel in channels]
        request = event_pb2.WatchSeatsRequest(event_id=str(event.event_id))
        started = time.perf_counter()
        calls = [stubs[i % 4].WatchSeats(request) for i in range(2000)]
        snapshots = await asyncio.wait_for(asyncio.gather(*(call.read() for call in calls)), 60)
        opened = time.perf_counter() - started
        assert {s.WhichOneof("update") for s in snapshots} == {"snapshot"}
        version = await set_seats(db, event.event_id, ["S1-A-1"], "booked", redis=redis)
        updates = await asyncio.wait_for(asyncio.gather(*(call.read() for call in calls)), 30)
        print(f"\n2,000 new streams: snapshots in {opened:.2f} s, one change to all in "
              f"{time.perf_counter() - started - opened:.2f} s")
        assert {u.version for u in updates} == {version}
        for call in calls:
            call.cancel()
    finally:
        for channel in channels:
            await channel.close()


async def test_a_cancelled_watcher_is_removed_and_the_last_one_unsubscribes_after_the_linger(db, redis):
    server = await start_event_server(watch_linger_seconds=1.0)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            await _cancelled_watchers_leave(db, redis, event_pb2_grpc.EventServiceStub(channel))
    finally:
        await server.stop(grace=0)


async def _cancelled_watchers_leave(db, redis, events) -> None:
    event = await create_event(db)
    first = events.WatchSeats(event_pb2.WatchSeatsRequest(event_id=str(event.event_id)))
    second = events.WatchSeats(event_pb2.WatchSeatsRequest(event_id=str(event.event_id)))
    await first.read()
    await second.read()
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first.read()
    await asyncio.sleep(0.1)
    assert await numsub(redis, event.event_id) == 1
    version = await set_seats(db, event.event_id, ["S1-A-1"], "reserved", redis=redis)
    assert (await second.read()).version == version

    second.cancel()
    # Still subscribed for the linger (a storm of reconnecting watchers finds the feed in memory), then not.
    await asyncio.sleep(0.3)
    assert await numsub(redis, event.event_id) == 1
    await wait_for(lambda: _is(numsub(redis, event.event_id), 0))
    # A new watcher after everyone left subscribes again.
    third = events.WatchSeats(event_pb2.WatchSeatsRequest(event_id=str(event.event_id)))
    assert (await third.read()).snapshot.version == version
    assert await numsub(redis, event.event_id) == 1
    third.cancel()


async def _is(awaitable, expected) -> bool:
    return await awaitable == expected


# --- the hub, driven directly (no transport buffering in the way) ----------------------------------------------


@pytest.fixture
async def hub_and_viewing(settings_env, db, redis):
    repository = CatalogRepository(db)
    viewing = EventViewing(
        store=repository,
        cache=RedisCatalogCache(redis, catalog_seconds=60, missing_seconds=1),
        availability=RedisAvailability(redis, db, repository),
        layouts=LayoutCache(repository, 4),
        clock=lambda: datetime.now(UTC),
        clocks=RedisFeedClock(redis, freshness=0.25),
    )
    hub = SeatHub(redis, viewing, watcher_queue_size=3)
    reader = asyncio.create_task(hub.run())
    yield hub, viewing
    reader.cancel()
    await asyncio.gather(reader, return_exceptions=True)
    await hub.close()


async def test_a_watcher_that_falls_behind_gets_a_fresh_snapshot_instead_of_a_backlog(db, redis, hub_and_viewing):
    hub, _ = hub_and_viewing
    event = await create_event(db)
    stream = hub.watch(event.event_id)
    snapshot = await anext(stream)
    assert isinstance(snapshot, MapSnapshot)
    assert snapshot.seat_map.version == 0

    for number in range(1, 7):  # more than the watcher's buffer of 3, while it is not reading
        last = await set_seats(db, event.event_id, [f"S1-A-{number}"], "booked", redis=redis)
    await asyncio.sleep(0.2)

    fresh = await anext(stream)
    assert isinstance(fresh, MapSnapshot)
    assert fresh.seat_map.version == last
    assert fresh.position == last
    assert fresh.seat_map.sections[0].rows[0].status_codes == "BBBBBBAAAA"
    version = await set_seats(db, event.event_id, ["S1-A-7"], "reserved", redis=redis)
    change = await asyncio.wait_for(anext(stream), 5)
    assert isinstance(change, seatfeed.SeatFeedMessage)
    assert change.version == version
    await stream.aclose()
    assert hub.watcher_count(event.event_id) == 0


async def test_a_lost_change_makes_the_watcher_start_again_from_a_snapshot(db, redis, hub_and_viewing):
    hub, _ = hub_and_viewing
    event = await create_event(db)
    stream = hub.watch(event.event_id)
    assert (await anext(stream)).seat_map.version == 0
    first = await set_seats(db, event.event_id, ["S1-A-1"], "reserved", redis=redis)
    assert (await asyncio.wait_for(anext(stream), 5)).version == first
    # A publication that never arrived and is not in the log either: the next one names it as its predecessor.
    await redis.hset(seatfeed.head_key(event.event_id), "last", first + 1)
    second = await set_seats(db, event.event_id, ["S1-A-2"], "reserved", redis=redis)
    recovered = await asyncio.wait_for(anext(stream), 5)
    assert isinstance(recovered, MapSnapshot)
    assert recovered.seat_map.version == second
    await stream.aclose()


async def test_a_change_lost_by_pub_sub_is_mended_from_the_log(db, redis, hub_and_viewing):
    hub, _ = hub_and_viewing
    event = await create_event(db)
    stream = hub.watch(event.event_id)
    assert isinstance(await anext(stream), MapSnapshot)
    first = await set_seats(db, event.event_id, ["S1-A-1"], "reserved", redis=redis)
    assert (await asyncio.wait_for(anext(stream), 5)).version == first
    # A publication that reached the log but not this process (pub/sub delivers at most once).
    lost = first + 1000
    await redis.xadd(seatfeed.log_key(event.event_id),
                     {"v": lost, "p": first, "c": '[["S1-A-5", "booked"]]', "d": "{}"})
    await redis.hset(seatfeed.head_key(event.event_id), "last", lost)
    second = await set_seats(db, event.event_id, ["S1-A-2"], "reserved", redis=redis)
    mended = await asyncio.wait_for(anext(stream), 5)
    assert isinstance(mended, seatfeed.SeatFeedMessage)
    assert (mended.version, mended.changes) == (lost, (("S1-A-5", "booked"),))
    after = await asyncio.wait_for(anext(stream), 5)
    assert (after.version, after.prev) == (second, lost)
    await stream.aclose()


async def test_a_watcher_resuming_after_a_gap_gets_only_what_it_missed(db, redis, hub_and_viewing):
    hub, _ = hub_and_viewing
    event = await create_event(db)
    first = await set_seats(db, event.event_id, ["S1-A-1"], "reserved", redis=redis)
    missed = [await set_seats(db, event.event_id, [f"S1-B-{n}"], "booked", redis=redis) for n in range(1, 4)]
    # Nobody watches: the replay comes from the log in Redis.
    stream = hub.watch(event.event_id, since=first)
    replayed = [await asyncio.wait_for(anext(stream), 5) for _ in missed]
    assert [m.version for m in replayed] == missed
    live = await set_seats(db, event.event_id, ["S1-C-1"], "reserved", redis=redis)
    assert (await asyncio.wait_for(anext(stream), 5)).version == live
    # A second watcher resumes from this process's memory; one too far back starts from a snapshot.
    second = hub.watch(event.event_id, since=missed[-1])
    assert (await asyncio.wait_for(anext(second), 5)).version == live
    too_old = hub.watch(event.event_id, since=first - 1)
    assert isinstance(await asyncio.wait_for(anext(too_old), 5), MapSnapshot)
    for watching in (stream, second, too_old):
        await watching.aclose()


async def test_watchers_that_all_left_resume_from_memory_while_the_event_lingers(db, redis, hub_and_viewing, monkeypatch):
    import event_svc.seat_hub as seat_hub

    _, viewing = hub_and_viewing
    hub = SeatHub(redis, viewing, watcher_queue_size=16, linger_seconds=30)
    reader = asyncio.create_task(hub.run())
    event = await create_event(db)
    try:
        stream = hub.watch(event.event_id)
        assert isinstance(await anext(stream), MapSnapshot)
        first = await set_seats(db, event.event_id, ["S1-A-1"], "reserved", redis=redis)
        assert (await asyncio.wait_for(anext(stream), 5)).version == first
        await stream.aclose()
        assert hub.watcher_count(event.event_id) == 0
        missed = [await set_seats(db, event.event_id, [f"S1-B-{n}"], "booked", redis=redis) for n in (1, 2, 3)]
        await wait_for(lambda: _is(_position(hub, event.event_id), missed[-1]))

        log_reads = 0
        original = seat_hub.seatfeed.read_tail

        async def counting(*args, **kwargs):
            nonlocal log_reads
            log_reads += 1
            return await original(*args, **kwargs)

        monkeypatch.setattr(seat_hub.seatfeed, "read_tail", counting)
        streams = [hub.watch(event.event_id, since=first) for _ in range(100)]
        for back in streams:
            assert [(await asyncio.wait_for(anext(back), 5)).version for _ in missed] == missed
        # Still subscribed while nobody watched, so the missed changes were in memory: not one read of the log.
        assert log_reads == 0
        for back in streams:
            await back.aclose()
    finally:
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)
        await hub.close()


async def test_after_one_resume_reads_the_log_the_rest_of_a_storm_resumes_from_memory(
    db, redis, hub_and_viewing, monkeypatch
):
    import event_svc.seat_hub as seat_hub

    hub, _ = hub_and_viewing
    event = await create_event(db)
    first = await set_seats(db, event.event_id, ["S1-A-1"], "reserved", redis=redis)
    missed = [await set_seats(db, event.event_id, [f"S1-B-{n}"], "booked", redis=redis) for n in (1, 2, 3)]
    # Nobody watches here: the first watcher back reads the log...
    leader = hub.watch(event.event_id, since=first)
    assert [(await asyncio.wait_for(anext(leader), 5)).version for _ in missed] == missed

    log_reads = 0
    original = seat_hub.seatfeed.read_tail

    async def counting(*args, **kwargs):
        nonlocal log_reads
        log_reads += 1
        return await original(*args, **kwargs)

    monkeypatch.setattr(seat_hub.seatfeed, "read_tail", counting)
    # ...and the others are served from what that read left in memory.
    storm = [hub.watch(event.event_id, since=first) for _ in range(100)]
    for stream in storm:
        assert [(await asyncio.wait_for(anext(stream), 5)).version for _ in missed] == missed
    assert log_reads == 0
    live = await set_seats(db, event.event_id, ["S1-C-1"], "reserved", redis=redis)
    for stream in [leader, *storm]:
        change = await asyncio.wait_for(anext(stream), 5)
        assert isinstance(change, seatfeed.SeatFeedMessage)
        assert (change.version, change.prev) == (live, missed[-1])
        await stream.aclose()


async def _position(hub: SeatHub, event_id: int) -> int | None:
    return hub.feed_position(event_id)


async def test_a_burst_of_new_watchers_shares_a_few_snapshot_reads(db, redis, hub_and_viewing):
    hub, viewing = hub_and_viewing
    event = await create_event(db)
    reads = 0
    original = viewing.store.seat_state

    async def counting(event_id: int):
        nonlocal reads
        reads += 1
        return await original(event_id)

    viewing.store.seat_state = counting  # type: ignore[method-assign]
    streams = [hub.watch(event.event_id) for _ in range(500)]
    snapshots = await asyncio.gather(*(anext(stream) for stream in streams))
    assert all(isinstance(s, MapSnapshot) for s in snapshots)
    print(f"\n500 simultaneous watchers: {reads} snapshot read(s)")
    assert reads <= 3, reads
    assert hub.subscribed_events() == {event.event_id}
    for stream in streams:
        await stream.aclose()
    await wait_for(lambda: _is(numsub(redis, event.event_id), 0))
    assert hub.subscribed_events() == set()


class _Connection:
    """An HTTP watcher's connection as the hub sees it: every write kept, the peer always reading."""

    def __init__(self) -> None:
        self.written: list[bytes] = []

    def is_closing(self) -> bool:
        return False

    def get_write_buffer_size(self) -> int:
        return 0

    def write(self, data: bytes) -> None:
        self.written.append(data)


async def test_thousands_of_watchers_each_get_a_burst_of_changes_as_one_shared_write(db, redis, hub_and_viewing):
    from event_svc.http_api import HttpWatcher
    from event_svc.watch_frames import StreamFormat

    _, viewing = hub_and_viewing
    hub = SeatHub(redis, viewing, watcher_queue_size=16, batch_seconds=1.0)
    reader = asyncio.create_task(hub.run())
    event = await create_event(db)
    connections = [_Connection() for _ in range(3_000)]
    watchers = [HttpWatcher(c, StreamFormat.SSE, max_buffer=1 << 20, queue_limit=16) for c in connections]
    try:
        for watcher in watchers:
            await hub.join(event.event_id, watcher)
            watcher.live = True
        change = [seatfeed.SeatChange("S1-A-1", "S1", "available", "reserved")]
        first = 1_000
        await seatfeed.publish(redis, event.event_id, first, change)
        await wait_for(lambda: _all(watcher.last == first for watcher in watchers))
        burst = list(range(first + 1, first + 6))
        for version in burst:  # well within one batching interval of each other
            await seatfeed.publish(redis, event.event_id, version, change)
        await wait_for(lambda: _all(watcher.last == burst[-1] for watcher in watchers), timeout=10)
        for connection in connections:
            after_first = connection.written[1:]
            ids = [int(line[4:]) for write in after_first for line in write.split(b"\n") if line.startswith(b"id: ")]
            assert ids == burst
            # The first change of the burst may go out at once (the interval since the last write was over); the
            # rest wait for the interval and go together, in bytes rendered once for every watcher.
            assert len(after_first) <= 2
            assert after_first[-1] is connections[0].written[-1]
    finally:
        for watcher in watchers:
            hub.leave(event.event_id, watcher)
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)
        await hub.close()


async def _all(values) -> bool:
    return all(values)


async def test_a_read_replica_url_gives_the_read_services_a_second_engine(settings_env, db, database_url):
    """TIX_DATABASE_READ_URL: catalog reads go to the replica's engine (here the same database under another URL
    spelling), while the seat state under a map stays on the primary."""
    event = await create_event(db)
    version = await set_seats(db, event.event_id, ["S1-A-1"], "booked")
    replica = database_url.replace("postgresql+psycopg://", "postgresql://")
    running = await start_event_server(database_read_url=replica)
    try:
        runtime = running.runtime
        assert runtime.reader is not runtime.engine
        assert runtime.reader.url.database == runtime.engine.url.database
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            stub = event_pb2_grpc.EventServiceStub(channel)
            page = await stub.GetEvent(event_pb2.GetEventRequest(event_id=str(event.event_id)))
            seat_map = await stub.ListSeats(event_pb2.ListSeatsRequest(event_id=str(event.event_id)))
        assert page.available_count == 99
        assert seat_map.version == version
    finally:
        await running.stop(grace=0)
