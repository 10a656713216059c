"""Seat holds in Redis: the efficiency layer in front of PostgreSQL (Redlock over one or several nodes).

One Lua script takes every requested seat key (``tix:hold:{<event_id>}:<seat_id>``, the braces are a Redis Cluster
hash tag so an event's keys share a slot) with ``SET PX``, all or nothing, valued with the booking id; a key that
already carries the same booking id counts as ours, so a retried request (same booking id) is not its own rival.
With N independent nodes this is Redlock: the hold is won when a majority of nodes grant it within the validity
time (TTL - elapsed - drift); otherwise the partial grants are released at once. Release is a compare-and-delete,
so a holder whose keys expired can never delete a newer holder's keys.

The lock is for efficiency, not correctness (Kleppmann): it turns a stampede of a thousand fans for one seat into
one PostgreSQL write. PostgreSQL's conditional UPDATE has the last word: it moves a seat only while the seat is
available or its reservation has expired, so lost, restarted or clock-jumped Redis nodes can cost efficiency but
never sell a seat twice. The hold itself carries no fencing token (its value is the booking id); the database
stamps each reservation with one and conditions the booking's later writes on it (see ``repository``).

When too few nodes answer to decide (all down, or fewer than a majority reachable), the hold is DEGRADED: booking
goes on against the database alone, which is slower under a stampede but still correct. We chose availability here
because the database guard makes it safe, and a Redis outage should not stop an on-sale.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import redis.asyncio as aioredis
from prometheus_client import Counter
from redis.exceptions import RedisError

from booking_svc.model import HoldOutcome, SeatHold
from tix.logs import get_logger
from tix.redis_pool import CONNECTION_OPTIONS, as_optional_text

log = get_logger("booking_svc.holds")

HOLDS = Counter("tix_booking_holds_total", "Seat hold attempts in Redis, by outcome.", ["outcome"])

# KEYS: seat keys; ARGV[1]: booking id, ARGV[2]: TTL in ms. Returns the 1-based indexes of keys held by another
# booking (nothing is written then), or an empty list when every key is now ours. A seat this booking already
# bought ("sold:<booking id>") counts as ours and keeps its marker, so a retry of that request still replays it.
_HOLD = """
local sold_by_us = 'sold:' .. ARGV[1]
local taken = {}
for i, key in ipairs(KEYS) do
  local holder = redis.call('GET', key)
  if holder and holder ~= ARGV[1] and holder ~= sold_by_us then taken[#taken + 1] = i end
end
if #taken > 0 then return taken end
for _, key in ipairs(KEYS) do
  if redis.call('GET', key) ~= sold_by_us then redis.call('SET', key, ARGV[1], 'PX', ARGV[2]) end
end
return taken
"""

# A bought seat's key becomes "sold:<booking id>" until the event is over: every later attempt on it loses here,
# in Redis, instead of running a reservation in PostgreSQL only to be refused there. The database decided the sale
# before this runs, so the marker overwrites whatever the key held.
_MARK_SOLD = """
for _, key in ipairs(KEYS) do
  redis.call('SET', key, 'sold:' .. ARGV[1], 'PX', ARGV[2])
end
return #KEYS
"""

# Compare-and-delete: only keys still valued with this booking id go.
_RELEASE = """
local released = 0
for _, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[1] then
    released = released + redis.call('DEL', key)
  end
end
return released
"""


# How long a hold may wait for a free connection to a node before that node counts as not answering.
_POOL_WAIT_SECONDS = 5.0


def hold_key(event_id: int, seat_id: str) -> str:
    return f"tix:hold:{{{event_id}}}:{seat_id}"


@dataclass(frozen=True)
class _Vote:
    granted: bool
    taken: tuple[int, ...] = ()
    answered: bool = True


class SeatHolds:
    """Redlock over ``clients`` (independent Redis nodes; one is fine)."""

    def __init__(
        self,
        clients: Sequence[aioredis.Redis],
        *,
        drift_factor: float = 0.01,
        owned: bool = False,
    ) -> None:
        if not clients:
            raise ValueError("SeatHolds needs at least one Redis node")
        self._clients = list(clients)
        # Registered scripts run by SHA (EVALSHA), so a hold does not send its script's text every time.
        self._scripts = {
            id(client): (client.register_script(_HOLD), client.register_script(_RELEASE),
                         client.register_script(_MARK_SOLD))
            for client in self._clients
        }
        self._drift_factor = drift_factor
        self._owned = owned
        self.quorum = len(self._clients) // 2 + 1
        # Called with (event id, seat ids) after every release, so best-available's allocator
        # (booking_svc.allocation) learns that the seats may be free again.
        self._release_listeners: list[Callable[[int, Sequence[str]], Awaitable[object]]] = []

    @property
    def first_node(self) -> aioredis.Redis:
        """The node best-available's allocator keeps its state on (booking_svc.allocation)."""
        return self._clients[0]

    @property
    def node_count(self) -> int:
        return len(self._clients)

    @property
    def nodes(self) -> list[aioredis.Redis]:
        """Every node, for the hold reaper's scan (booking_svc.reaper)."""
        return list(self._clients)

    def on_release(self, listener: Callable[[int, Sequence[str]], Awaitable[object]]) -> None:
        self._release_listeners.append(listener)

    @classmethod
    def from_urls(cls, urls: Sequence[str], *, drift_factor: float = 0.01, node_timeout: float = 2.0) -> SeatHolds:
        """Clients of their own with short socket timeouts, so a dead or hung node costs one timeout, not a stalled
        booking. Their pools block (briefly) when all connections are busy: a burst of fans must queue for a
        connection, not be mistaken for a node failure."""
        clients = [
            aioredis.Redis(
                connection_pool=aioredis.BlockingConnectionPool.from_url(
                    url,
                    decode_responses=True,
                    max_connections=100,
                    timeout=_POOL_WAIT_SECONDS,
                    socket_connect_timeout=node_timeout,
                    socket_timeout=node_timeout,
                    **CONNECTION_OPTIONS,
                )
            )
            for url in urls
        ]
        return cls(clients, drift_factor=drift_factor, owned=True)

    async def aclose(self) -> None:
        if self._owned:
            for client in self._clients:
                await client.aclose()

    async def hold(self, event_id: int, seat_ids: Sequence[str], booking_id: str, ttl_ms: int) -> SeatHold:
        keys = [hold_key(event_id, seat) for seat in seat_ids]
        started = time.monotonic()
        votes = await asyncio.gather(*(self._vote(client, keys, booking_id, ttl_ms) for client in self._clients))
        elapsed_ms = int((time.monotonic() - started) * 1000)
        granted = sum(vote.granted for vote in votes)
        answered = sum(vote.answered for vote in votes)
        drift_ms = int(ttl_ms * self._drift_factor) + 2
        validity_ms = ttl_ms - elapsed_ms - drift_ms
        if granted >= self.quorum and validity_ms > 0:
            HOLDS.labels("won").inc()
            return SeatHold(HoldOutcome.WON, validity_ms=validity_ms)

        # Redlock: a failed attempt gives back whatever it got, right away, on every node (a node that timed out
        # may still have run the script, so it is asked too).
        if granted or answered < len(self._clients):
            await self.release(event_id, seat_ids, booking_id)
        if answered < self.quorum:
            HOLDS.labels("degraded").inc()
            log.warning("hold_degraded", event_id=event_id, answered=answered, nodes=len(self._clients))
            return SeatHold(HoldOutcome.DEGRADED)
        taken = sorted({seat_ids[i - 1] for vote in votes for i in vote.taken})
        HOLDS.labels("lost").inc()
        return SeatHold(HoldOutcome.LOST, taken_seat_ids=tuple(taken or seat_ids))

    async def release(self, event_id: int, seat_ids: Sequence[str], booking_id: str) -> int:
        """Delete the keys still valued with ``booking_id`` on every reachable node; returns how many went."""
        keys = [hold_key(event_id, seat) for seat in seat_ids]
        if not keys:
            return 0
        results = await asyncio.gather(
            *(self._release_on(client, keys, booking_id) for client in self._clients)
        )
        for listener in self._release_listeners:
            await listener(event_id, seat_ids)
        return sum(results)

    async def mark_sold(self, event_id: int, seat_ids: Sequence[str], booking_id: str, ttl_ms: int) -> None:
        """After the database booked the seats: keep them refused in Redis (see ``_MARK_SOLD``) on every reachable
        node; a node that misses it only costs later losers a database round trip."""
        keys = [hold_key(event_id, seat) for seat in seat_ids]
        if keys:
            await asyncio.gather(*(self._mark_sold_on(client, keys, booking_id, ttl_ms) for client in self._clients))

    async def _mark_sold_on(self, client: aioredis.Redis, keys: list[str], booking_id: str, ttl_ms: int) -> None:
        try:
            await self._scripts[id(client)][2](keys=keys, args=[booking_id, ttl_ms])
        except (TimeoutError, RedisError, OSError) as error:
            log.warning("mark_sold_failed", keys=len(keys), error=repr(error))

    async def holders(self, event_id: int, seat_ids: Sequence[str]) -> list[dict[str, str | None]]:
        """Per node, who holds each seat (None when free or the node is down); for tests and operators."""
        keys = [hold_key(event_id, seat) for seat in seat_ids]
        out = []
        for client in self._clients:
            try:
                values = await client.mget(keys)
            except (TimeoutError, RedisError, OSError):
                values = [None] * len(keys)
            out.append(dict(zip(seat_ids, map(as_optional_text, values), strict=True)))
        return out

    async def _vote(self, client: aioredis.Redis, keys: list[str], booking_id: str, ttl_ms: int) -> _Vote:
        try:
            taken = await self._scripts[id(client)][0](keys=keys, args=[booking_id, ttl_ms])
        except (TimeoutError, RedisError, OSError):
            return _Vote(granted=False, answered=False)
        if taken:
            return _Vote(granted=False, taken=tuple(int(i) for i in taken))
        return _Vote(granted=True)

    async def _release_on(self, client: aioredis.Redis, keys: list[str], booking_id: str) -> int:
        try:
            return int(await self._scripts[id(client)][1](keys=keys, args=[booking_id]))
        except (TimeoutError, RedisError, OSError):
            # An unreachable node's keys expire with their TTL.
            return 0
