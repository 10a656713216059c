"""Single flight: concurrent requests for the same key share one load instead of each running it.

A stampede on one event (thousands of fans reserving, joining or watching at once) would otherwise send the same
query thousands of times at the instant its cache entry is missing. The load runs as its own task: a caller that
gives up (a cancelled RPC) does not cancel it for the others, and its outcome, result or exception, reaches every
caller waiting at the time. At most one load of a key runs at a time.

``run(key, load)`` shares any load in progress: right for data that may be a moment old. A caller that needs data
read after some moment takes a ``mark()`` then (for a seat watcher: once its subscription is live) and passes it
as ``not_before``: it shares only a load that starts reading after that mark, queued behind the one in progress.
A burst of 2,000 new watchers of one event thus costs a few queries, not 2,000, and no watcher misses a change
published between its subscription and its snapshot.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar, cast

from cachetools import TTLCache

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class _Flight(Generic[V]):
    __slots__ = ("began", "task")

    def __init__(self) -> None:
        self.task: asyncio.Task[V] | None = None
        # The mark taken when the load actually started reading; None while it waits for its turn.
        self.began: int | None = None


class SingleFlight(Generic[K, V]):
    def __init__(self) -> None:
        self._ticks = itertools.count(1)
        self._flights: dict[K, _Flight[V]] = {}

    def mark(self) -> int:
        """A point in time: a load that begins reading after it sees every change made before it."""
        return next(self._ticks)

    def in_flight(self, key: K) -> bool:
        return key in self._flights

    async def run(self, key: K, load: Callable[[], Awaitable[V]], *, not_before: int | None = None) -> V:
        flight = self._flights.get(key)
        stale = (
            flight is not None and not_before is not None and flight.began is not None and flight.began <= not_before
        )
        if flight is None or stale:
            running = flight.task if flight is not None else None
            flight = _Flight()
            flight.task = asyncio.ensure_future(self._fly(flight, load, running))
            self._flights[key] = flight
            flight.task.add_done_callback(functools.partial(self._land, key, flight))
        assert flight.task is not None
        # One caller giving up (a cancelled stream) must not cancel the load the others wait for.
        return await asyncio.shield(flight.task)

    async def _fly(self, flight: _Flight[V], load: Callable[[], Awaitable[V]], running: asyncio.Task[V] | None) -> V:
        if running is not None and not running.done():
            await asyncio.wait([running])  # one read of a key at a time; its outcome is not ours
        flight.began = self.mark()
        return await load()

    def _land(self, key: K, flight: _Flight[V], done: asyncio.Task[V]) -> None:
        if self._flights.get(key) is flight:
            del self._flights[key]
        if not done.cancelled():
            done.exception()  # retrieved: when every caller has gone, nobody else will look at it


_MISSING: object = object()


class CachedLoads(Generic[K, V]):
    """Values loaded on a miss, kept ``ttl`` seconds (at most ``maxsize`` keys), and loaded once for concurrent
    misses (a SingleFlight). A value may be None ("no such thing") and is cached like any other.

    Each read is one lookup: "key in cache" then "cache[key]" can see an entry expire between the two and raise
    KeyError (it answered INTERNAL to a burst of reservations, and of queue joins)."""

    def __init__(self, *, maxsize: int, ttl: float, timer: Callable[[], float] | None = None) -> None:
        self._cache: TTLCache[K, V] = TTLCache(maxsize=maxsize, ttl=ttl, timer=timer or time.monotonic)
        self._flights: SingleFlight[K, V] = SingleFlight()

    def peek(self, key: K) -> V | None:
        """The cached value, without loading (None when missing)."""
        return self._cache.get(key)

    async def get(self, key: K, load: Callable[[], Awaitable[V]]) -> V:
        cached = self._cache.get(key, _MISSING)
        if cached is not _MISSING:
            return cast(V, cached)
        value = await self._flights.run(key, load)
        self._cache[key] = value
        return value
