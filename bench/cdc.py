"""Change-data-capture lag (``python -m bench cdc``): catalog changes committed at a steady rate (100/s), each its own
transaction as an operator's edit is, against a real ``tix search index`` process; the lag of a change is the time
from its commit to the indexer's cursor passing its outbox row (the document is rebuilt in the same transaction
that moves the cursor, so that is the moment it is searchable). Beside it, measured in the same run: the same load
against an indexer that only polls (no LISTEN/NOTIFY), and the writes' own commit latency."""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from bench.load import percentile
from bench.report import Report, _fmt_rate, _ms, _ratio
from bench.stack import BenchStack
from tix_dev.processes import stop_process

EVENTS = 500


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cdc-rate", type=float, default=100.0, help="catalog changes per second (cdc scenario)")
    parser.add_argument("--cdc-seconds", type=float, default=30.0, help="seconds of changes per indexer mode")


@dataclass
class LagRun:
    lags: list[float] = field(default_factory=list)
    commits: list[float] = field(default_factory=list)
    changes: int = 0
    elapsed: float = 0.0
    unseen: int = 0


async def _catalog(dsn: str) -> list[int]:
    import psycopg

    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        layout = await (await conn.execute("SELECT layout_id FROM layouts ORDER BY capacity LIMIT 1")).fetchone()
        if layout is None:
            await conn.execute(
                "INSERT INTO layouts (layout_id, name, kind, capacity, tier_count) "
                "VALUES ('bench-cdc', 'bench-cdc', 'hall', 1, 1)"
            )
            layout = ("bench-cdc",)
        venue = await (await conn.execute(
            "INSERT INTO venues (name, city, country_code, latitude, longitude, time_zone, layout_id, capacity) "
            "VALUES ('CDC Hall', 'Lagos', 'NG', 6.45, 3.39, 'Africa/Lagos', %s, 1) RETURNING venue_id", layout,
        )).fetchone()
        performer = await (await conn.execute(
            "INSERT INTO performers (name, category, genre) VALUES ('The Lag Probes', 1, 'rock') RETURNING performer_id"
        )).fetchone()
        assert venue is not None
        assert performer is not None
        rows = await (await conn.execute(
            "INSERT INTO events (name, category, venue_id, performer_id, starts_at, ends_at, sale_starts_at, "
            "tier_prices) SELECT 'Lag probe ' || i, 1, %s, %s, now() + interval '30 days', "
            "now() + interval '30 days 3 hours', now(), ARRAY[1000] FROM generate_series(1, %s) AS i "
            "RETURNING event_id",
            (venue[0], performer[0], EVENTS),
        )).fetchall()
        return [row[0] for row in rows]


async def _cursor(conn: Any) -> int:
    row = await (await conn.execute("SELECT last_outbox_id FROM outbox_cursors WHERE consumer = 'search'")).fetchone()
    return int(row[0]) if row else 0


async def _measure(dsn: str, event_ids: list[int], rate: float, seconds: float, label: str) -> LagRun:
    """Commit changes at ``rate`` for ``seconds``; watch the cursor every 2 ms; lag per change."""
    import psycopg

    run = LagRun()
    pending: dict[int, float] = {}  # outbox id -> commit time
    done_writing = asyncio.Event()

    async def watch(conn: Any) -> None:
        while True:
            cursor = await _cursor(conn)
            now = time.perf_counter()
            for outbox_id in [o for o in pending if o <= cursor]:
                run.lags.append(now - pending.pop(outbox_id))
            if done_writing.is_set() and not pending:
                return
            await asyncio.sleep(0.002)

    async def write(conn: Any) -> None:
        started = time.perf_counter()
        n = 0
        while (now := time.perf_counter()) - started < seconds:
            due = started + n / rate
            if due > now:
                await asyncio.sleep(due - now)
            began = time.perf_counter()
            async with conn.transaction():
                # The label makes every name new, so every UPDATE is a change the trigger captures.
                await conn.execute(
                    "UPDATE events SET name = 'Lag probe ' || event_id || ' ' || %s WHERE event_id = %s",
                    (f"{label} #{n}", event_ids[n % len(event_ids)]),
                )
                row = await (await conn.execute("SELECT currval(pg_get_serial_sequence('outbox', 'outbox_id'))")
                             ).fetchone()
            committed = time.perf_counter()
            assert row is not None
            pending[int(row[0])] = committed
            run.commits.append(committed - began)
            n += 1
        run.changes = n
        run.elapsed = time.perf_counter() - started

    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as watcher, \
            await psycopg.AsyncConnection.connect(dsn) as writer:
        watching = asyncio.create_task(watch(watcher))
        try:
            await write(writer)
        finally:
            done_writing.set()
        try:
            await asyncio.wait_for(watching, 15)
        except TimeoutError:
            run.unseen = len(pending)
    return run


def _start_indexer(stack: BenchStack, listen: bool) -> subprocess.Popen[bytes]:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("TIX_")},
        "TIX_DATABASE_URL": stack.database_url,
        "TIX_REDIS_URL": stack.redis_url,
        "TIX_LOG_LEVEL": "WARNING",
        "TIX_INDEXER_LISTEN": "true" if listen else "false",
        "TIX_INDEXER_POLL_SECONDS": "1.0",
    }
    return subprocess.Popen([sys.executable, "-m", "tix.cli", "search", "index"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


async def _caught_up(dsn: str, timeout: float = 30) -> None:
    import psycopg

    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        deadline = time.monotonic() + timeout
        while True:
            last = await (await conn.execute("SELECT coalesce(max(outbox_id), 0) FROM outbox")).fetchone()
            if last is not None and await _cursor(conn) >= last[0]:
                return
            if time.monotonic() > deadline:
                raise TimeoutError("the indexer did not catch up with the outbox")
            await asyncio.sleep(0.05)


def _run_mode(stack: BenchStack, event_ids: list[int], listen: bool, rate: float, seconds: float) -> LagRun:
    indexer = _start_indexer(stack, listen)
    try:
        asyncio.run(_caught_up(stack.libpq_url))
        label = "listen" if listen else "poll"
        return asyncio.run(_measure(stack.libpq_url, event_ids, rate, seconds, label))
    finally:
        stop_process(indexer, timeout=10)


def run_cdc(args: argparse.Namespace, stack: BenchStack, report: Report) -> None:
    rate = args.cdc_rate
    seconds = 2.0 if args.smoke else min(args.cdc_seconds, 15.0) if args.quick else args.cdc_seconds
    print(f"change-data-capture: {rate:g} changes/s for {seconds:g}s per indexer mode", flush=True)
    event_ids = asyncio.run(_catalog(stack.libpq_url))
    listening = _run_mode(stack, event_ids, True, rate, seconds)
    polling = _run_mode(stack, event_ids, False, rate, seconds)

    achieved = listening.changes / listening.elapsed
    report.add("cdc: changes committed/s (one per transaction)", _fmt_rate(achieved), f"target {_fmt_rate(rate)}",
               _ratio(achieved, rate))
    for q in (50, 99):
        mine, theirs = percentile(listening.lags, q), percentile(polling.lags, q)
        report.add(f"cdc: commit -> indexed lag p{q} (LISTEN/NOTIFY)", _ms(mine), f"poll-only indexer p{q} "
                   f"{_ms(theirs)}", _ratio(mine, theirs))
    report.add("cdc: commit -> indexed lag max", _ms(max(listening.lags, default=0.0)),
               f"poll-only max {_ms(max(polling.lags, default=0.0))}")
    report.add("cdc: write commit latency p50 / p99", f"{_ms(percentile(listening.commits, 50))} / "
               f"{_ms(percentile(listening.commits, 99))}")
    for name, run in (("LISTEN/NOTIFY", listening), ("poll-only", polling)):
        if run.unseen:
            report.notes.append(f"cdc ({name}): {run.unseen} changes never indexed within 15 s")
    report.notes.append(
        f"cdc: lag = commit of a change (UPDATE of one event's name, its own transaction) until the indexer's cursor "
        f"passes its outbox row, watched every 2 ms; {len(listening.lags):,} changes with LISTEN, "
        f"{len(polling.lags):,} poll-only (TIX_INDEXER_LISTEN=false, 1 s poll); indexer: a `tix search index` process"
    )
