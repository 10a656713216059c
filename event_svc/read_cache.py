"""The read path's caches: each event's clock (feed head and catalog version) and the rendered answers keyed by it,
in process memory and in Redis.

**Keyed by the clock observed before the read.** Booking publishes a change after its transaction commits, so a map
read after observing the head ``H`` contains every publication up to ``H``. A cached answer is served while the
event's clock is still the one it was read under: a change moves the head (even one that drew a lower version and
committed late: the head is the *last* publication, not the highest version), a catalog change moves the catalog
version. A process asks Redis for the clock at most every ``read_freshness_seconds`` per event (single-flighted), and
learns of publications at once for the events it watches; so an answer may be that much older than the newest
change, never older, and a burst of fans costs no store round trip at all. While an event changes faster than a map
renders (a sale), the last rendering keeps being served for up to ``refresh_seconds`` and then while one refresh
runs: a map is then at most about a second behind, and costs one render a second per process, not a wait per fan.

**Redis down.** The clock cannot be read: answers are read from PostgreSQL (slower, correct) and kept only
``degraded_cache_seconds``.

**Shared across processes.** A rendered answer is also kept in Redis under its clock, so the other processes and
replicas of the service take it instead of rendering it again (compressed bytes, a few tens of KB for a stadium).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from cachetools import LRUCache
from prometheus_client import Counter
from redis.asyncio import Redis
from redis.exceptions import RedisError

from event_svc.domain import EventClock
from event_svc.repository import CATALOG_GENERATION_KEY, catalog_version_key
from event_svc.representations import Representation, from_blob, to_blob
from tix import seatfeed
from tix.logs import get_logger
from tix.singleflight import SingleFlight

log = get_logger("event_svc.read_cache")

RENDERS = Counter(
    "tix_read_renders_total", "Answers of the HTTP read path rendered, by kind and where they came from.",
    ["kind", "source"],
)


@dataclass
class _Observed:
    clock: EventClock | None
    at: float


class RedisFeedClock:
    """Events' clocks as Redis knows them (the feed head, the catalog version), observed at most every
    ``freshness`` seconds per event; the seat hub reports publications it sees as they arrive."""

    def __init__(self, redis: Redis, *, freshness: float, size: int = 100_000) -> None:
        self._redis = redis
        self._freshness = freshness
        self._observed: LRUCache[int, _Observed] = LRUCache(maxsize=size)
        self._flights: SingleFlight[int, EventClock | None] = SingleFlight()

    async def observe(self, event_id: int) -> EventClock | None:
        """Asked now (concurrent callers share the question in progress only if it was asked after they came)."""
        return await self._flights.run(event_id, lambda: self._read(event_id), not_before=self._flights.mark())

    async def current(self, event_id: int) -> EventClock | None:
        observed = self._observed.get(event_id)
        if observed is not None and time.monotonic() - observed.at < self._freshness:
            return observed.clock
        return await self._flights.run(event_id, lambda: self._read(event_id))

    def note_publication(self, event_id: int, version: int) -> None:
        """A publication seen on the feed: the head is known without asking (the catalog's age is unchanged)."""
        observed = self._observed.get(event_id)
        if observed is not None and observed.clock is not None:
            observed.clock = EventClock(version, observed.clock.catalog)

    async def _read(self, event_id: int) -> EventClock | None:
        started = time.monotonic()
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.hget(seatfeed.head_key(event_id), "last")
                pipe.mget(CATALOG_GENERATION_KEY, catalog_version_key(event_id))
                last, (generation, version) = await pipe.execute()
        except (RedisError, OSError) as error:
            log.warning("event_clock_unavailable", event_id=event_id, error=repr(error))
            clock = None
        else:
            clock = EventClock(int(last or 0), f"{_text(generation or '0')}.{_text(version or '0')}")
        self._observed[event_id] = _Observed(clock, started)
        return clock


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


Builder = Callable[[EventClock | None], Awaitable[Representation]]


class RepresentationCache:
    """Rendered answers per (event, variant), in process memory and in Redis, valid while the event's clock is
    the one they were read under (see the module docstring)."""

    def __init__(
        self,
        blobs: Redis,
        clocks: RedisFeedClock,
        *,
        size: int,
        redis_seconds: int,
        degraded_seconds: float,
        max_life_seconds: float = 30.0,
        refresh_seconds: float = 1.0,
        stale_seconds: float = 5.0,
    ) -> None:
        self._blobs = blobs  # a client that returns bytes
        self._clocks = clocks
        self._redis_seconds = redis_seconds
        self._degraded_seconds = degraded_seconds
        self._max_life_seconds = max_life_seconds
        self._refresh_seconds = refresh_seconds
        self._stale_seconds = stale_seconds
        self._refreshing: set[asyncio.Task] = set()
        self._entries: LRUCache[tuple[int, str], Representation] = LRUCache(maxsize=size)
        self._flights: SingleFlight[tuple[int, str], Representation] = SingleFlight()

    async def get(self, event_id: int, variant: str, build: Builder) -> Representation:
        """The answer for ``variant`` of the event: cached while current, else taken from Redis or built by
        ``build(clock)``, which must read its data after the clock it is given was observed."""
        key = (event_id, variant)
        cached = self._entries.get(key)
        if cached is None:
            return await self._flights.run(key, lambda: self._load(event_id, variant, build))
        clock = await self._clocks.current(event_id)
        if self._current(cached, clock):
            return cached
        age = time.monotonic() - cached.loaded_at
        expired = self._expired(cached)
        # Only its maximum life is over (nothing says it changed): serve it while it is rendered again.
        unchanged = clock is not None and clock == cached.clock and not expired
        # Seats changed (the catalog did not), but it was rendered recently.
        seats_moved = (
            clock is not None and cached.clock is not None and clock.catalog == cached.clock.catalog
            and age < self._stale_seconds and not expired
        )
        if unchanged or seats_moved:
            # Serve it while one refresh runs (at most one per refresh_seconds), so a sale changing seats every few
            # milliseconds costs a render a second, not a wait per request; a catalog change always waits.
            if (unchanged or age >= self._refresh_seconds) and not self._flights.in_flight(key):
                self._refresh(key, lambda: self._load(event_id, variant, build))
            return cached
        return await self._flights.run(key, lambda: self._load(event_id, variant, build))

    def _refresh(self, key: tuple[int, str], load: Callable[[], Awaitable[Representation]]) -> None:
        task = asyncio.ensure_future(self._flights.run(key, load))
        self._refreshing.add(task)
        task.add_done_callback(self._refreshed)

    def _refreshed(self, task: asyncio.Task) -> None:
        self._refreshing.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("representation_refresh_failed", error=repr(task.exception()))

    @staticmethod
    def _expired(cached: Representation) -> bool:
        return cached.expires_at is not None and time.time() >= cached.expires_at

    def cached(self, event_id: int, variant: str) -> Representation | None:
        return self._entries.get((event_id, variant))

    def _current(self, cached: Representation, clock: EventClock | None) -> bool:
        if self._expired(cached):
            return False
        if time.monotonic() - cached.loaded_at >= self._max_life_seconds:
            return False
        if clock is None or cached.clock is None:
            return time.monotonic() - cached.loaded_at < self._degraded_seconds
        return clock == cached.clock

    async def _load(self, event_id: int, variant: str, build: Builder) -> Representation:
        clock = await self._clocks.observe(event_id)
        kind = variant.split(":", 1)[0]
        representation = await self._from_redis(event_id, variant, clock) if clock is not None else None
        if representation is not None and time.time() - representation.rendered_at < self._max_life_seconds:
            RENDERS.labels(kind, "redis").inc()
        else:
            representation = await build(clock)
            representation.rendered_at = time.time()
            representation.loaded_at = time.monotonic()
            RENDERS.labels(kind, "rendered").inc()
            if clock is not None:
                await self._to_redis(event_id, variant, clock, representation)
        self._entries[(event_id, variant)] = representation
        return representation

    async def _from_redis(self, event_id: int, variant: str, clock: EventClock) -> Representation | None:
        try:
            blob = await self._blobs.get(_blob_key(event_id, variant, clock))
        except (RedisError, OSError) as error:
            log.warning("representation_cache_unavailable", event_id=event_id, error=repr(error))
            return None
        if not isinstance(blob, bytes):
            return None
        try:
            return from_blob(blob, loaded_at=time.monotonic())
        except ValueError as error:
            log.warning("representation_cache_corrupt", event_id=event_id, variant=variant, error=repr(error))
            return None

    async def _to_redis(self, event_id: int, variant: str, clock: EventClock, representation: Representation) -> None:
        try:
            await self._blobs.set(_blob_key(event_id, variant, clock), to_blob(representation), ex=self._redis_seconds)
        except (RedisError, OSError) as error:
            log.warning("representation_cache_unavailable", event_id=event_id, error=repr(error))


def _blob_key(event_id: int, variant: str, clock: EventClock) -> str:
    return f"tix:read:{{{event_id}}}:{variant}:{clock.head}:{clock.catalog}"
