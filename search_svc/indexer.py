"""The outbox indexer: keeps a search backend's index in step with the catalog.

Producers: every change to ``events``, ``venues`` and ``performers`` adds outbox rows in its own transaction (the
tables' statement triggers, migration 0008_searchcdc_outbox_capture), booking adds an ``availability`` row when an event's band changes
(tix.seatfeed), a seed adds one ``catalog`` row (everything changed). Every outbox insert NOTIFYs ``tix_outbox`` at
commit.

The consumer, one per backend (an :class:`IndexSink`):
- **Wake-up.** It LISTENs on ``tix_outbox`` and indexes as soon as a change commits; it also polls every
  ``poll_seconds`` in case a notification was lost with a connection.
- **Durable cursor.** ``outbox_cursors`` holds the last outbox id the sink has applied. For the PostgreSQL documents
  the rebuild and the cursor's move commit in one transaction; an external index (Elasticsearch) is written before
  the cursor moves. Either way a crash at any moment replays at most the last batch, and applying a change twice is
  harmless (a document is rebuilt from the catalog's current rows, not from the change), so no change is lost.
- **Gaps.** Outbox ids are handed out when rows are inserted, not when they commit, so a later id can become visible
  before an earlier one. The cursor stops below a gap until the gap fills or is old enough to be a rolled-back insert
  (``gap_seconds``); rows beyond the gap are applied meanwhile.
- **One active indexer per backend.** Every search process runs an indexer, but only the one holding the
  session-level advisory lock of its sink's name (on its LISTEN connection) indexes; the others stand by and try
  again every ``standby_seconds``. When the leader dies its connection closes, PostgreSQL frees the lock, and a
  standby takes over from the durable cursor.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import psycopg
from prometheus_client import Counter, Gauge, Histogram
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from search_svc.repository import rebuild_search_documents
from tix.db import libpq_url
from tix.logs import get_logger

log = get_logger("search_svc.indexer")

NOTIFY_CHANNEL = "tix_outbox"
# The advisory lock's first key (the second is the sink's name): "one indexer per backend".
_LOCK_NAMESPACE = "tix-outbox-indexer"

LAG = Histogram(
    "tix_search_index_lag_seconds",
    "From an outbox row's transaction to its change being in the search index.",
    ["sink"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
)
APPLIED = Counter("tix_search_index_changes_total", "Outbox rows applied to a search index.", ["sink"])
LEADER = Gauge("tix_search_indexer_leader", "1 while this process is its backend's active indexer.", ["sink"])


@dataclass
class CatalogChanges:
    """What a batch of outbox rows says changed (ids by kind)."""

    events: set[int] = field(default_factory=set)
    venues: set[int] = field(default_factory=set)
    performers: set[int] = field(default_factory=set)
    # Events whose availability band changed (booking).
    availability: set[int] = field(default_factory=set)
    # The whole catalog was loaded anew (a seed).
    everything: bool = False

    def add(self, topic: str, aggregate_id: str) -> None:
        if topic == "catalog":
            self.everything = True
            return
        target = {
            "event": self.events, "venue": self.venues, "performer": self.performers,
            "availability": self.availability,
        }.get(topic)
        if target is not None and aggregate_id.isascii() and aggregate_id.isdigit():
            target.add(int(aggregate_id))

    def __bool__(self) -> bool:
        return bool(self.searchable or self.availability)

    @property
    def searchable(self) -> bool:
        """Whether what searches match changed (not only an availability band)."""
        return bool(self.everything or self.events or self.venues or self.performers)


class IndexSink(Protocol):
    """A backend's index, as the indexer feeds it."""

    # Names the sink's cursor (outbox_cursors.consumer) and its leadership lock.
    name: str

    async def prepare(self) -> None:
        """Called when this process becomes the sink's indexer (e.g. create the index if it does not exist)."""
        ...

    async def apply(self, conn: AsyncConnection, changes: CatalogChanges) -> None:
        """Bring the index up to date with ``changes``, reading the catalog through ``conn``: the indexer's
        transaction, which moves the cursor after this returns and commits."""
        ...


class PostgresDocumentSink:
    """The ``search_documents`` table of the PostgreSQL backend, rebuilt in the indexer's transaction."""

    name = "search"

    async def prepare(self) -> None:
        return None

    async def apply(self, conn: AsyncConnection, changes: CatalogChanges) -> None:
        # The band is read from ``events`` when a page is rendered, and a seed builds the documents itself, so only
        # catalog rows matter here.
        if changes.events or changes.venues or changes.performers:
            await rebuild_search_documents(
                conn,
                event_ids=sorted(changes.events),
                venue_ids=sorted(changes.venues),
                performer_ids=sorted(changes.performers),
            )


_CLAIM_CURSOR = text(
    "INSERT INTO outbox_cursors (consumer, last_outbox_id) VALUES (:consumer, 0) ON CONFLICT (consumer) DO NOTHING"
)
# SKIP LOCKED: a leader that lost its lock but is still finishing a batch makes its successor skip a round, not wait.
_LOCK_CURSOR = text("SELECT last_outbox_id FROM outbox_cursors WHERE consumer = :consumer FOR UPDATE SKIP LOCKED")
_NEXT_ROWS = text(
    """
    SELECT outbox_id, topic, aggregate_id, extract(epoch FROM clock_timestamp() - created_at) AS age_seconds
    FROM outbox WHERE outbox_id > :cursor ORDER BY outbox_id LIMIT :batch
    """
)
# A consumer that no longer runs keeps its cursor, and so the rows after it: delete its outbox_cursors row when a
# backend is retired (a new Elasticsearch index is built from the catalog, not from old outbox rows).
_PRUNE = text(
    """
    DELETE FROM outbox WHERE outbox_id <= (SELECT min(last_outbox_id) FROM outbox_cursors)
        AND created_at < now() - make_interval(secs => :seconds)
    """
)
_PRUNE_EVERY_SECONDS = 600.0
_MOVE_CURSOR = text("UPDATE outbox_cursors SET last_outbox_id = :cursor, updated_at = now() WHERE consumer = :consumer")


class OutboxIndexer:
    """Tails the outbox from a stored cursor and applies what changed to one sink (see the module docstring)."""

    def __init__(
        self,
        engine: AsyncEngine,
        database_url: str,
        sink: IndexSink,
        *,
        poll_seconds: float = 1.0,
        batch_size: int = 500,
        gap_seconds: float = 10.0,
        standby_seconds: float = 2.0,
        listen: bool = True,
        on_applied: Callable[[], Awaitable[None]] | None = None,
        retention_seconds: float | None = None,
    ) -> None:
        self._engine = engine
        self._database_url = database_url
        self._sink = sink
        self._poll_seconds = poll_seconds
        self._batch_size = batch_size
        self._gap_seconds = gap_seconds
        self._standby_seconds = standby_seconds
        self._listen_enabled = listen
        # Called after a batch that changed what searches find has committed (the search cache's generation).
        self._on_applied = on_applied
        # Outbox rows older than this that every consumer has passed are deleted by this indexer (one of them).
        self._retention_seconds = retention_seconds
        self._pruned_at = 0.0
        self._wakeup = asyncio.Event()
        # Rows past the cursor already applied (the cursor can wait below a gap while rows beyond it are done).
        self._indexed_ahead: set[int] = set()
        self._gap_seen: dict[int, float] = {}
        self._leading = False
        self._last_cursor = 0

    @property
    def sink(self) -> IndexSink:
        return self._sink

    @property
    def leading(self) -> bool:
        """True while this indexer holds its backend's lock and indexes."""
        return self._leading

    async def run(self) -> None:
        """Stand by, lead, index; reconnect after a lost connection. Runs until cancelled."""
        while True:
            try:
                await self._lead()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - a lost connection ends the leadership; try again
                log.warning("search_indexer_connection_lost", sink=self._sink.name, error=repr(exc))
                await asyncio.sleep(self._standby_seconds)

    async def _lead(self) -> None:
        async with await psycopg.AsyncConnection.connect(libpq_url(self._database_url), autocommit=True) as conn:
            while not await self._try_lock(conn):  # noqa: ASYNC110 - polling another server's lock, no local event
                await asyncio.sleep(self._standby_seconds)
            log.info("search_indexer_leading", sink=self._sink.name)
            LEADER.labels(self._sink.name).set(1)
            self._leading = True
            self._indexed_ahead.clear()
            self._gap_seen.clear()
            try:
                await self._sink.prepare()
                if self._listen_enabled:
                    await conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
                watch = asyncio.create_task(self._watch(conn), name=f"indexer-watch-{self._sink.name}")
                index = asyncio.create_task(self._index_forever(), name=f"indexer-{self._sink.name}")
                try:
                    done, _ = await asyncio.wait({watch, index}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    for task in (watch, index):
                        task.cancel()
                    await asyncio.gather(watch, index, return_exceptions=True)
                for task in done:
                    task.result()  # the watch ends only by an error: the connection (and the lock) is gone
            finally:
                self._leading = False
                LEADER.labels(self._sink.name).set(0)

    async def _try_lock(self, conn: psycopg.AsyncConnection) -> bool:
        cur = await conn.execute(
            "SELECT pg_try_advisory_lock(hashtext(%s), hashtext(%s))", (_LOCK_NAMESPACE, self._sink.name)
        )
        row = await cur.fetchone()
        return bool(row and row[0])

    async def _watch(self, conn: psycopg.AsyncConnection) -> None:
        """Wake the indexer on every notification; end (by an error) when the connection holding the lock is lost."""
        if self._listen_enabled:
            async for _ in conn.notifies():
                self._wakeup.set()
            raise ConnectionError("the outbox notification stream ended")
        while True:  # polling only: still notice a lost connection (the lock went with it)
            await asyncio.sleep(self._standby_seconds)
            await conn.execute("SELECT 1")

    async def _index_forever(self) -> None:
        while True:
            # Cleared before reading, so a change committed while a batch is applied wakes the next round.
            self._wakeup.clear()
            try:
                handled = await self.catch_up()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - retried; the outbox keeps the work
                log.warning("search_indexing_failed", sink=self._sink.name, error=repr(exc))
                handled = 0
            if handled >= self._batch_size:
                continue  # more is waiting
            if self._retention_seconds is not None and time.monotonic() - self._pruned_at > _PRUNE_EVERY_SECONDS:
                self._pruned_at = time.monotonic()
                try:
                    await self.prune()
                except Exception as exc:  # noqa: BLE001 - tried again later
                    log.warning("outbox_prune_failed", error=repr(exc))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), self._poll_seconds)

    async def catch_up(self) -> int:
        """Apply one batch after the cursor; returns how many outbox rows were read (0 when another process holds
        the cursor)."""
        started = time.monotonic()
        async with self._engine.begin() as conn:
            await conn.execute(_CLAIM_CURSOR, {"consumer": self._sink.name})
            cursor = await conn.scalar(_LOCK_CURSOR, {"consumer": self._sink.name})
            if cursor is None:
                return 0
            if cursor < self._last_cursor:
                # The outbox was emptied and its ids restarted (a test's TRUNCATE): what was seen ahead is void.
                self._indexed_ahead.clear()
                self._gap_seen.clear()
            self._last_cursor = cursor
            rows = (await conn.execute(_NEXT_ROWS, {"cursor": cursor, "batch": self._batch_size})).all()
            if not rows:
                return 0
            new_cursor = self._advance(cursor, [row.outbox_id for row in rows])
            fresh = [row for row in rows if row.outbox_id not in self._indexed_ahead]
            changes = CatalogChanges()
            for row in fresh:
                changes.add(row.topic, row.aggregate_id)
            if changes:
                await self._sink.apply(conn, changes)
            if new_cursor != cursor:
                await conn.execute(_MOVE_CURSOR, {"cursor": new_cursor, "consumer": self._sink.name})
        elapsed = time.monotonic() - started
        self._indexed_ahead = {row.outbox_id for row in rows if row.outbox_id > new_cursor} | {
            outbox_id for outbox_id in self._indexed_ahead if outbox_id > new_cursor
        }
        lag = LAG.labels(self._sink.name)
        for row in fresh:
            lag.observe(max(0.0, float(row.age_seconds)) + elapsed)
        APPLIED.labels(self._sink.name).inc(len(fresh))
        if self._on_applied is not None and changes:
            await self._on_applied()
        if changes:
            log.info(
                "search_index_updated", sink=self._sink.name, rows=len(fresh), events=len(changes.events),
                venues=len(changes.venues), performers=len(changes.performers),
                availability=len(changes.availability), everything=changes.everything,
            )
        return len(rows)

    async def prune(self) -> int:
        """Delete outbox rows every consumer has passed and that are older than the retention; how many."""
        assert self._retention_seconds is not None
        async with self._engine.begin() as conn:
            result = await conn.execute(_PRUNE, {"seconds": self._retention_seconds})
        if result.rowcount:
            log.info("outbox_pruned", rows=result.rowcount)
        return int(result.rowcount)

    def _advance(self, cursor: int, outbox_ids: Sequence[int]) -> int:
        now = time.monotonic()
        for outbox_id in outbox_ids:
            if outbox_id != cursor + 1:
                first_seen = self._gap_seen.setdefault(cursor + 1, now)
                if now - first_seen < self._gap_seconds:
                    break  # maybe a transaction still in flight: keep the cursor below it
                self._gap_seen.pop(cursor + 1, None)
            cursor = outbox_id
        return cursor
