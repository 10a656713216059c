"""Single flight: concurrent requests for the same key share one load instead of each running it.

A stampede on one event (thousands of fans reserving, joining or watching at once) would otherwise send the same
query thousands of times at the instant its cache entry is missing. The load runs as its own task: a caller that
gives up (a cancelled RPC) does not cancel it for the others, and its outcome, result or exception, reaches every
caller waiting at the time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class SingleFlight(Generic[K, V]):
    def __init__(self) -> None:
        self._running: dict[K, asyncio.Task[V]] = {}

    def in_flight(self, key: K) -> bool:
        return key in self._running

    async def run(self, key: K, load: Callable[[], Awaitable[V]]) -> V:
        task = self._running.get(key)
        if task is None:
            task = asyncio.ensure_future(load())
            self._running[key] = task
            task.add_done_callback(lambda done, key=key: self._land(key, done))
        return await asyncio.shield(task)

    def _land(self, key: K, task: asyncio.Task[V]) -> None:
        if self._running.get(key) is task:
            del self._running[key]
        if not task.cancelled():
            task.exception()  # retrieved: when every caller has gone, nobody else will look at it
