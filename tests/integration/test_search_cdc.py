"""Change-data-capture for search against real PostgreSQL: every catalog change writes its outbox row in its own
transaction (and only then), the indexer leads alone per backend and hands over when its leader dies, and a real
`tix search index` process killed mid-stream loses no change."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

from sqlalchemy import text

from search_svc.indexer import CatalogChanges, OutboxIndexer, PostgresDocumentSink
from tests.factories import TEST_LAYOUT_ID, ensure_layout
from tix.availability import AvailabilityBand
from tix.seatfeed import record_band

NOW = datetime.now(UTC).replace(microsecond=0)


async def outbox_rows(db, after: int = 0) -> list[tuple[str, str, str]]:
    async with db.connect() as conn:
        rows = await conn.execute(
            text("SELECT topic, aggregate_id, payload->>'op' FROM outbox WHERE outbox_id > :a ORDER BY outbox_id"),
            {"a": after},
        )
        return [tuple(row) for row in rows]


async def last_outbox_id(db) -> int:
    async with db.connect() as conn:
        return int(await conn.scalar(text("SELECT coalesce(max(outbox_id), 0) FROM outbox")))


async def add_catalog(db, events: int = 1, *, name: str = "Show") -> tuple[int, int, list[int]]:
    """A venue, a performer and ``events`` events, in one transaction; (venue, performer, event ids)."""
    await ensure_layout(db)
    async with db.begin() as conn:
        venue_id = await conn.scalar(
            text(
                "INSERT INTO venues (name, city, country_code, latitude, longitude, time_zone, layout_id, capacity) "
                "VALUES ('Hall', 'Oslo', 'NO', 59.9, 10.7, 'Europe/Oslo', :layout, 100) RETURNING venue_id"
            ),
            {"layout": TEST_LAYOUT_ID},
        )
        performer_id = await conn.scalar(
            text("INSERT INTO performers (name, category, genre) VALUES ('Band', 1, 'rock') RETURNING performer_id")
        )
        event_ids = list(
            await conn.scalars(
                text(
                    "INSERT INTO events (name, category, venue_id, performer_id, starts_at, ends_at, sale_starts_at, "
                    "tier_prices) SELECT :name || ' ' || i, 1, :v, :p, :s, :s + interval '3 hours', :now, "
                    "ARRAY[5000] FROM generate_series(1, :n) AS i RETURNING event_id"
                ),
                {"name": name, "v": venue_id, "p": performer_id, "s": NOW + timedelta(days=10), "now": NOW,
                 "n": events},
            )
        )
    return venue_id, performer_id, event_ids


# --- producers -------------------------------------------------------------------------------------------------


async def test_inserting_catalog_rows_writes_one_outbox_row_each_in_the_same_transaction(db):
    venue_id, performer_id, event_ids = await add_catalog(db, events=3)
    assert await outbox_rows(db) == [
        ("venue", str(venue_id), "insert"),
        ("performer", str(performer_id), "insert"),
        *[("event", str(event_id), "insert") for event_id in event_ids],
    ]


async def test_a_rolled_back_catalog_change_leaves_no_outbox_row(db):
    _, _, (event_id,) = await add_catalog(db)
    before = await last_outbox_id(db)
    async with db.connect() as conn:
        transaction = await conn.begin()
        await conn.execute(text("UPDATE events SET name = 'Gone' WHERE event_id = :e"), {"e": event_id})
        assert await conn.scalar(text("SELECT count(*) FROM outbox WHERE outbox_id > :b"), {"b": before}) == 1
        await transaction.rollback()
    assert await outbox_rows(db, before) == []


async def test_updates_and_deletes_of_events_venues_and_performers_are_captured(db):
    venue_id, performer_id, event_ids = await add_catalog(db, events=2)
    before = await last_outbox_id(db)
    async with db.begin() as conn:
        await conn.execute(text("UPDATE venues SET city = 'Bergen' WHERE venue_id = :v"), {"v": venue_id})
        await conn.execute(text("UPDATE performers SET genre = 'jazz' WHERE performer_id = :p"), {"p": performer_id})
        await conn.execute(text("UPDATE events SET name = name || '!'"))
        await conn.execute(text("DELETE FROM events WHERE event_id = :e"), {"e": event_ids[1]})
    assert await outbox_rows(db, before) == [
        ("venue", str(venue_id), "update"),
        ("performer", str(performer_id), "update"),
        ("event", str(event_ids[0]), "update"),
        ("event", str(event_ids[1]), "update"),
        ("event", str(event_ids[1]), "delete"),
    ]


async def test_an_update_that_changes_nothing_or_only_bookkeeping_writes_no_catalog_row(db):
    _, _, (event_id,) = await add_catalog(db)
    before = await last_outbox_id(db)
    async with db.begin() as conn:
        await conn.execute(text("UPDATE events SET name = name WHERE event_id = :e"), {"e": event_id})
        await conn.execute(
            text("UPDATE events SET tickets_ready = true, updated_at = now() WHERE event_id = :e"), {"e": event_id}
        )
        # The band has its own topic, written by booking only when the band changes.
        assert await record_band(conn, event_id, AvailabilityBand.FEW_LEFT, version=7)
        assert not await record_band(conn, event_id, AvailabilityBand.FEW_LEFT, version=8)
    rows = await outbox_rows(db, before)
    assert [(topic, aggregate) for topic, aggregate, _ in rows] == [("availability", str(event_id))]


async def test_outbox_inserts_notify_the_indexers_at_commit(db, database_url):
    import psycopg

    from tix.db import libpq_url

    async with await psycopg.AsyncConnection.connect(libpq_url(database_url), autocommit=True) as listener:
        await listener.execute("LISTEN tix_outbox")
        await add_catalog(db, events=5)

        async def first() -> str:
            async for note in listener.notifies():
                return note.channel
            return ""

        assert await asyncio.wait_for(first(), 2) == "tix_outbox"


def test_a_batch_of_outbox_rows_reads_as_changes_by_kind():
    changes = CatalogChanges()
    for topic, aggregate in [("event", "3"), ("venue", "4"), ("event", "3"), ("availability", "9"),
                             ("performer", "x"), ("unknown", "1")]:
        changes.add(topic, aggregate)
    assert (changes.events, changes.venues, changes.performers, changes.availability) == ({3}, {4}, set(), {9})
    assert not changes.everything
    changes.add("catalog", "*")
    assert changes.everything
    assert not CatalogChanges()


# --- leadership ------------------------------------------------------------------------------------------------


async def _document_names(db) -> dict[int, str]:
    async with db.connect() as conn:
        return dict((await conn.execute(text("SELECT event_id, name FROM search_documents"))).all())


async def _event_names(db) -> dict[int, str]:
    async with db.connect() as conn:
        return dict((await conn.execute(text("SELECT event_id, name FROM events"))).all())


async def _wait_for(predicate, timeout: float, what: str) -> float:
    started = time.monotonic()
    while not await predicate():
        assert time.monotonic() - started < timeout, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)
    return time.monotonic() - started


async def test_one_indexer_leads_per_backend_and_a_standby_takes_over_when_the_leader_dies(db, database_url):
    indexers = [
        OutboxIndexer(db, database_url, PostgresDocumentSink(), poll_seconds=5, standby_seconds=0.1)
        for _ in range(3)
    ]
    tasks = [asyncio.create_task(indexer.run()) for indexer in indexers]
    try:
        await _wait_for(lambda: _true(sum(i.leading for i in indexers) == 1), 5, "a leader")
        await asyncio.sleep(0.5)
        assert sum(indexer.leading for indexer in indexers) == 1
        leader = next(indexer for indexer in indexers if indexer.leading)
        _, _, (event_id,) = await add_catalog(db, name="First")
        await _wait_for(lambda: _has_document(db, event_id), 2, "the leader to index")

        # The leader's process dies: its connection, and the lock with it, goes away.
        tasks[indexers.index(leader)].cancel()
        await asyncio.gather(tasks[indexers.index(leader)], return_exceptions=True)
        _, _, (second,) = await add_catalog(db, name="Second")
        await _wait_for(lambda: _has_document(db, second), 3, "a standby to take over")
        assert sum(indexer.leading for indexer in indexers) == 1
        assert not leader.leading
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def test_a_leader_whose_connection_is_cut_steps_down_and_leadership_moves(db, database_url):
    indexers = [
        OutboxIndexer(db, database_url, PostgresDocumentSink(), poll_seconds=5, standby_seconds=0.1)
        for _ in range(2)
    ]
    tasks = [asyncio.create_task(indexer.run()) for indexer in indexers]
    try:
        await _wait_for(lambda: _true(any(i.leading for i in indexers)), 5, "a leader")
        async with db.connect() as conn:
            # The session holding the advisory lock is the leader's LISTEN connection. Only this test's database:
            # other runs on the server (a seed, a benchmark) hold advisory locks of their own.
            await conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND granted"
                    " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
                )
            )
        _, _, (event_id,) = await add_catalog(db, name="After the cut")
        await _wait_for(lambda: _has_document(db, event_id), 5, "indexing to resume")
        assert sum(indexer.leading for indexer in indexers) == 1
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _true(value: bool) -> bool:
    return value


async def _has_document(db, event_id: int) -> bool:
    async with db.connect() as conn:
        return bool(await conn.scalar(text("SELECT count(*) FROM search_documents WHERE event_id = :e"), {"e": event_id}))


# --- crash safety ----------------------------------------------------------------------------------------------


def _start_indexer(env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "tix.cli", "search", "index"],
        env={**os.environ, **env, "TIX_INDEXER_BATCH_SIZE": "7", "TIX_INDEXER_STANDBY_SECONDS": "0.2"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


async def _cursor(db) -> int:
    async with db.connect() as conn:
        value = await conn.scalar(text("SELECT last_outbox_id FROM outbox_cursors WHERE consumer = 'search'"))
        return int(value or 0)


async def test_killing_the_indexer_process_mid_stream_loses_no_change(settings_env, db):
    _, _, event_ids = await add_catalog(db, events=40, name="Take")
    process = _start_indexer(settings_env)
    restarted: subprocess.Popen | None = None
    writing = True
    writes = 0

    async def write() -> None:
        nonlocal writes
        while writing:
            writes += 1
            async with db.begin() as conn:
                # Each write renames a few events; their final names are what the documents must show.
                await conn.execute(
                    text("UPDATE events SET name = 'Take ' || event_id || ' v' || :w WHERE event_id = ANY(:ids)"),
                    {"w": writes, "ids": event_ids[writes % 38: writes % 38 + 3]},
                )

    try:
        await _wait_for(lambda: _caught_up(db), 20, "the first indexer to catch up")
        writer = asyncio.create_task(write())
        await asyncio.sleep(1.0)
        # SIGKILL: no drain, no cleanup; whatever batch it had open is rolled back by PostgreSQL.
        process.send_signal(signal.SIGKILL)
        await asyncio.to_thread(process.wait, 10)
        killed_behind = await last_outbox_id(db) - await _cursor(db)
        await asyncio.sleep(0.5)  # changes keep coming while no indexer runs
        restarted = _start_indexer(settings_env)
        await asyncio.sleep(1.0)
        writing = False
        await writer
        await _wait_for(lambda: _caught_up(db), 30, "the restarted indexer to catch up")
        assert killed_behind > 0, "the kill did not land mid-stream"
        assert writes > 20
        assert await _document_names(db) == await _event_names(db)
    finally:
        writing = False
        for proc in (process, restarted):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.wait(15)


async def _caught_up(db) -> bool:
    return await _cursor(db) == await last_outbox_id(db)


# --- the search cache ------------------------------------------------------------------------------------------


async def test_a_cached_answer_is_not_served_once_the_indexer_applied_a_change(settings_env, db, redis):
    from search_svc.domain import SearchPage
    from search_svc.repository import RedisSearchCache, bump_search_generation

    cache = RedisSearchCache(redis, seconds=30, generation_seconds=0)
    missed = await cache.get("q")
    assert missed.page is None
    await cache.put("q", SearchPage(hits=(), total_size=0), missed.generation)
    assert (await cache.get("q")).page == SearchPage(hits=(), total_size=0)
    await bump_search_generation(redis)
    missed = await cache.get("q")
    assert missed.page is None
    # An answer computed from before the bump is not stored as current after it.
    await bump_search_generation(redis)
    await cache.put("q", SearchPage(hits=(), total_size=0), missed.generation)
    assert (await cache.get("q")).page is None


async def test_when_redis_goes_away_the_process_s_copies_are_not_served_and_nothing_fails(settings_env):
    """Redis stops: once the generation read last is older than ``generation_seconds`` the process cannot tell
    whether its copies are current, so every lookup is a miss (the backend answers) and storing raises nothing."""
    import redis.asyncio as aioredis
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    from search_svc.domain import SearchPage
    from search_svc.repository import RedisSearchCache
    from tix_dev.processes import RedisServer

    node = RedisServer().start()
    client = aioredis.from_url(node.url, socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0))
    cache = RedisSearchCache(client, seconds=30, generation_seconds=0.1)
    answer = SearchPage(hits=(), total_size=3)
    try:
        await cache.put("q", answer, (await cache.get("q")).generation)
        assert (await cache.get("q")).page == answer
        node.stop()
        await asyncio.sleep(0.15)
        missed = await cache.get("q")
        assert missed.page is None
        await cache.put("q", answer, missed.generation)  # no error, and nothing kept under an unknown generation
        assert (await cache.get("q")).page is None
    finally:
        await client.aclose()
        node.stop()


async def _mget_calls(redis) -> int:
    return int((await redis.info("commandstats")).get("cmdstat_mget", {}).get("calls", 0))


async def test_popular_answers_are_served_from_the_process_until_the_generation_it_read_is_old(
    settings_env, db, redis
):
    from search_svc.domain import SearchPage
    from search_svc.repository import RedisSearchCache, bump_search_generation

    answer = SearchPage(hits=(), total_size=7)
    cache = RedisSearchCache(redis, seconds=30, generation_seconds=0.3)
    writer = RedisSearchCache(redis, seconds=30, generation_seconds=0.3)  # another process
    await writer.put("q", answer, (await writer.get("q")).generation)
    assert (await cache.get("q")).page == answer  # read from Redis, kept here
    before = await _mget_calls(redis)
    for _ in range(50):
        assert (await cache.get("q")).page == answer
    assert await _mget_calls(redis) == before  # 50 answers, no page read from Redis
    await bump_search_generation(redis)
    await asyncio.sleep(0.35)
    # The indexer applied a change: within generation_seconds no process serves what it kept from before it.
    assert (await cache.get("q")).page is None
    assert (await writer.get("q")).page is None


async def test_outbox_rows_every_consumer_passed_are_pruned_after_the_retention(db, database_url):
    await add_catalog(db, events=3)
    last = await last_outbox_id(db)
    async with db.begin() as conn:
        await conn.execute(text("UPDATE outbox SET created_at = now() - interval '2 days' WHERE outbox_id <= 3"))
        await conn.execute(text("INSERT INTO outbox_cursors (consumer, last_outbox_id) VALUES ('search', :l), "
                                "('search-es:tix-events', 2)"), {"l": last})
    pruner = OutboxIndexer(db, database_url, PostgresDocumentSink(), retention_seconds=86400)
    # Rows 1-2 are old and passed by both consumers; row 3 is old but the slower consumer has not applied it.
    assert await pruner.prune() == 2
    async with db.connect() as conn:
        remaining = list(await conn.scalars(text("SELECT outbox_id FROM outbox ORDER BY outbox_id")))
    assert remaining == list(range(3, last + 1))
