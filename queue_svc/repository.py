"""Waiting-room state in Redis (per event, all keys share the ``{event}`` hash tag) and event settings from
PostgreSQL. Every multi-key change is one Lua script, so concurrent queue processes never see half a change."""

from __future__ import annotations

import secrets
import uuid
from datetime import UTC, datetime

from cachetools import TTLCache
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from queue_svc.domain import LineState, StoredTicket, WaitingRoomSettings
from tix.redis_pool import as_optional_text, as_text
from tix.singleflight import SingleFlight

# Events whose waiting-room settings one process remembers (on-sales come and go).
_SETTINGS_CACHE_SIZE = 1024

_JOIN = """
local existing = redis.call('GET', KEYS[1])
if existing then return existing end
local ticket_id, ticket_key, ttl = ARGV[1], ARGV[5] .. ARGV[1], tonumber(ARGV[6])
local sequence = 0
if ARGV[4] == '1' and redis.call('EXISTS', KEYS[5]) == 0 then
  redis.call('SADD', KEYS[4], ticket_id)
  redis.call('EXPIRE', KEYS[4], ttl)
else
  sequence = redis.call('INCR', KEYS[2])
  redis.call('RPUSH', KEYS[3], ticket_id)
  redis.call('EXPIRE', KEYS[2], ttl)
  redis.call('EXPIRE', KEYS[3], ttl)
end
redis.call('HSET', ticket_key, 'user', ARGV[2], 'seq', sequence, 'joined', ARGV[3])
redis.call('EXPIRE', ticket_key, ttl)
redis.call('SET', KEYS[1], ticket_id, 'EX', ttl)
return ticket_id
"""

# Places the shuffled pre-queue at the head of the line, once: the first caller wins, later ones change nothing.
_OPEN = """
if redis.call('SET', KEYS[4], '1', 'NX', 'EX', ARGV[2]) == false then return 0 end
local placed = 0
for i = 3, #ARGV do
  local ticket_id = ARGV[i]
  if redis.call('SREM', KEYS[3], ticket_id) == 1 then
    local sequence = redis.call('INCR', KEYS[1])
    redis.call('RPUSH', KEYS[2], ticket_id)
    redis.call('HSET', ARGV[1] .. ticket_id, 'seq', sequence)
    placed = placed + 1
  end
end
return placed
"""

# Admits by elapsed time x rate on Redis' own clock, so any number of callers admit no faster than the rate.
_ADVANCE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local rate, max_active, ttl_ms = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local last = tonumber(redis.call('HGET', KEYS[5], 'last') or now)
local carry = tonumber(redis.call('HGET', KEYS[5], 'carry') or '0')
local measured = tonumber(redis.call('HGET', KEYS[5], 'rate') or ARGV[1])
local window_start = tonumber(redis.call('HGET', KEYS[5], 'wstart') or now)
local window_admitted = tonumber(redis.call('HGET', KEYS[5], 'wcount') or '0')
local elapsed = math.min(math.max(now - last, 0), 5000)
redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', now)
local active = redis.call('ZCARD', KEYS[4])
local serving = tonumber(redis.call('GET', KEYS[2]) or '0')
local last_sequence = tonumber(redis.call('GET', KEYS[1]) or '0')
local waiting = last_sequence - serving
local budget = carry + elapsed * rate / 1000
local admit = math.min(math.floor(budget), max_active - active, waiting)
if admit < 0 then admit = 0 end
if admit == math.floor(budget) then carry = budget - admit else carry = 0 end
if admit > 0 then
  local admitted = redis.call('LRANGE', KEYS[3], serving, serving + admit - 1)
  for _, ticket_id in ipairs(admitted) do
    redis.call('HSET', ARGV[4] .. ticket_id, 'admitted', now)
    redis.call('ZADD', KEYS[4], now + ttl_ms, ticket_id)
  end
  serving = redis.call('INCRBY', KEYS[2], admit)
  redis.call('EXPIRE', KEYS[2], ARGV[5])
end
-- The admission rate is measured over windows of at least a second (single calls admit in uneven steps), and
-- only while fans were waiting: an empty line says nothing about how fast it moves.
window_admitted = window_admitted + admit
if now - window_start >= 1000 then
  if waiting > 0 or window_admitted > 0 then
    measured = 0.5 * measured + 0.5 * (window_admitted * 1000 / (now - window_start))
  end
  window_start, window_admitted = now, 0
end
redis.call('HSET', KEYS[5], 'last', now, 'carry', tostring(carry), 'rate', tostring(measured),
           'wstart', window_start, 'wcount', window_admitted)
redis.call('EXPIRE', KEYS[5], ARGV[5])
return {serving, last_sequence, tostring(measured)}
"""


class _Keys:
    def __init__(self, event_id: int) -> None:
        base = self.base = f"tix:q:{{{event_id}}}"
        self.sequence = f"{base}:seq"
        self.serving = f"{base}:serving"
        self.order = f"{base}:order"
        self.pre_queue = f"{base}:pre"
        self.opened = f"{base}:opened"
        self.active = f"{base}:active"
        self.clock = f"{base}:clock"
        self.ticket_prefix = f"{base}:t:"

    def user(self, user_id: str) -> str:
        return f"{self.base}:user:{user_id}"

    def ticket(self, ticket_id: str) -> str:
        return self.ticket_prefix + ticket_id


class RedisQueueRepository:
    def __init__(self, redis: Redis, engine: AsyncEngine, *, event_cache_seconds: float, ttl_seconds: int) -> None:
        self._redis = redis
        self._engine = engine
        self._ttl = ttl_seconds
        self._settings_cache: TTLCache[int, WaitingRoomSettings | None] = TTLCache(
            maxsize=_SETTINGS_CACHE_SIZE, ttl=event_cache_seconds
        )
        self._settings_loads: SingleFlight[int, WaitingRoomSettings | None] = SingleFlight()
        self._join = redis.register_script(_JOIN)
        self._open = redis.register_script(_OPEN)
        self._advance = redis.register_script(_ADVANCE)

    async def waiting_room_settings(self, event_id: int) -> WaitingRoomSettings | None:
        """Catalog settings change rarely and every watcher tick needs them: cached for a few seconds."""
        if event_id in self._settings_cache:
            return self._settings_cache[event_id]
        # Single flight: a burst of joins for one event costs one query, not one per fan.
        settings = await self._settings_loads.run(event_id, lambda: self._load_settings(event_id))
        self._settings_cache[event_id] = settings
        return settings

    async def _load_settings(self, event_id: int) -> WaitingRoomSettings | None:
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(
                    text(
                        "SELECT event_id, queue_enabled, sale_starts_at, queue_rate_per_second, queue_max_active,"
                        " (cancelled OR starts_at < now()) AS ended FROM events WHERE event_id = :e"
                    ),
                    {"e": event_id},
                )
            ).first()
        if row is None:
            return None
        return WaitingRoomSettings(
            row.event_id, row.queue_enabled, row.sale_starts_at, row.queue_rate_per_second, row.queue_max_active,
            row.ended,
        )

    async def join(self, event_id: int, user_id: str, *, pre_queue: bool, now: float) -> StoredTicket:
        keys = _Keys(event_id)
        ticket_id = await self._join(
            keys=[keys.user(user_id), keys.sequence, keys.order, keys.pre_queue, keys.opened],
            args=[str(uuid.uuid4()), user_id, repr(now), "1" if pre_queue else "0", keys.ticket_prefix, self._ttl],
        )
        ticket = await self.ticket(event_id, ticket_id)
        assert ticket is not None  # written by the script just now
        return ticket

    async def ticket(self, event_id: int, ticket_id: str) -> StoredTicket | None:
        fields = await self._redis.hgetall(_Keys(event_id).ticket(ticket_id))
        if not fields:
            return None
        return StoredTicket(
            ticket_id=ticket_id,
            event_id=event_id,
            user_id=as_text(fields["user"]),
            sequence=int(fields["seq"]),
            joined_at=float(fields["joined"]),
            admitted_at=int(fields["admitted"]) / 1000 if "admitted" in fields else None,
            admission_token=as_optional_text(fields.get("token")),
        )

    async def open_sale(self, event_id: int) -> int:
        """Shuffle the pre-queue with a cryptographic RNG (Lua's is seeded the same every call) and place it."""
        keys = _Keys(event_id)
        if await self._redis.exists(keys.opened):
            return 0
        members = list(await self._redis.smembers(keys.pre_queue))
        secrets.SystemRandom().shuffle(members)
        return int(
            await self._open(
                keys=[keys.sequence, keys.order, keys.pre_queue, keys.opened],
                args=[keys.ticket_prefix, self._ttl, *members],
            )
        )

    async def advance(self, event_id: int, *, rate_per_second: int, max_active: int, admission_ttl: int) -> LineState:
        keys = _Keys(event_id)
        serving, last_sequence, rate = await self._advance(
            keys=[keys.sequence, keys.serving, keys.order, keys.active, keys.clock],
            args=[rate_per_second, max_active, admission_ttl * 1000, keys.ticket_prefix, self._ttl],
        )
        return LineState(int(serving), int(last_sequence), float(rate))

    async def line_state(self, event_id: int) -> LineState:
        keys = _Keys(event_id)
        serving, last_sequence, rate = await self._redis.eval(
            "return {redis.call('GET', KEYS[1]) or '0', redis.call('GET', KEYS[2]) or '0',"
            " redis.call('HGET', KEYS[3], 'rate') or '0'}",
            3,
            keys.serving,
            keys.sequence,
            keys.clock,
        )
        return LineState(int(serving), int(last_sequence), float(rate))

    async def free_slots(self, event_id: int, ticket_ids: list[str]) -> int:
        """Admitted fans who are done shopping leave the active set: their slots go to the next fans at once."""
        if not ticket_ids:
            return 0
        return int(await self._redis.zrem(_Keys(event_id).active, *ticket_ids))

    async def store_admission_token(self, event_id: int, ticket_id: str, token: str) -> str:
        """Keep the first token issued for a ticket, so every watcher of it is handed the same one."""
        key = _Keys(event_id).ticket(ticket_id)
        await self._redis.hsetnx(key, "token", token)
        return as_optional_text(await self._redis.hget(key, "token")) or token


def utc(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, UTC)
