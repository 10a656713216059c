"""Waiting-room state in Redis (per event, all keys share the ``{event}`` hash tag) and event settings from
PostgreSQL. Every multi-key change of one event is one Lua script, so concurrent queue processes never see half a
change; the scripts read Redis' clock, so the processes' clocks never matter.

Per event: ``seq`` (last sequence handed out), ``serving`` (sequences passed), ``order`` (ticket ids still in line,
head first), ``pre`` (the pre-queue, a set until the draw), ``opened``, ``active`` (admitted shoppers: ticket →
end of their admission), ``present`` (ticket → until when the fan counts as present: a join, a poll or an open
stream keeps it fresh), ``clock`` (admission budget and the measured pace), ``lease`` (the process stepping the
event), ``t:<ticket>`` and ``user:<fan>``. One global sorted set lists the events whose line may need stepping.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from queue_svc.domain import LineState, StoredTicket, WaitingRoomSettings
from tix.redis_pool import as_optional_text, as_text
from tix.singleflight import CachedLoads

# Events whose waiting-room settings one process remembers (on-sales come and go).
_SETTINGS_CACHE_SIZE = 1024
# Events with a line to step: event id -> a counter every join bumps (so an idle event is only dropped when no
# join came in since it was seen idle).
EVENTS_KEY = "tix:q:events"
# Presence updates per command (Lua's unpack takes a few thousand values).
_PRESENCE_CHUNK = 2000

_NOW_MS = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
"""

# The line as every caller reads it: {serving, last sequence, measured pace, pre-queue size, opened, active,
# sequences passed per admission}.
_STATE = """
local function line_state(keys, serving, last_sequence)
  return {serving, last_sequence, redis.call('HGET', keys.clock, 'rate') or '-1', redis.call('SCARD', keys.pre),
          redis.call('EXISTS', keys.opened), redis.call('ZCARD', keys.active),
          redis.call('HGET', keys.clock, 'skip') or '1'}
end
"""

_JOIN = _NOW_MS + _STATE + """
local keys = {user = KEYS[1], seq = KEYS[2], order = KEYS[3], pre = KEYS[4], opened = KEYS[5], present = KEYS[6],
              serving = KEYS[7], clock = KEYS[8], active = KEYS[9]}
local prefix, ttl, grace = ARGV[5], tonumber(ARGV[6]), tonumber(ARGV[7])
local ticket_id = redis.call('GET', keys.user)
if not ticket_id or redis.call('HEXISTS', prefix .. ticket_id, 'left') == 1 then
  -- A new fan, or one who left the line (and was passed over): a fresh ticket at the back.
  ticket_id = ARGV[1]
  local sequence = 0
  if ARGV[4] == '1' and redis.call('EXISTS', keys.opened) == 0 then
    redis.call('SADD', keys.pre, ticket_id)
    redis.call('EXPIRE', keys.pre, ttl)
  else
    sequence = redis.call('INCR', keys.seq)
    redis.call('RPUSH', keys.order, ticket_id)
    redis.call('EXPIRE', keys.seq, ttl)
    redis.call('EXPIRE', keys.order, ttl)
  end
  redis.call('HSET', prefix .. ticket_id, 'user', ARGV[2], 'seq', sequence, 'joined', ARGV[3])
  redis.call('EXPIRE', prefix .. ticket_id, ttl)
  redis.call('SET', keys.user, ticket_id, 'EX', ttl)
end
-- Joining (or joining again, as a fan polling without a stream does) counts as being present.
redis.call('ZADD', keys.present, now + grace, ticket_id)
redis.call('EXPIRE', keys.present, ttl)
local fields = redis.call('HMGET', prefix .. ticket_id, 'user', 'seq', 'joined', 'admitted', 'token', 'left')
local serving = tonumber(redis.call('GET', keys.serving) or '0')
local last_sequence = tonumber(redis.call('GET', keys.seq) or '0')
return {ticket_id, fields, line_state(keys, serving, last_sequence)}
"""

# Places the shuffled pre-queue at the head of the line, once: the first caller wins, later ones change nothing.
# Fans who joined the pre-queue while the caller was shuffling (not in its list) follow the shuffled ones.
_OPEN = """
if redis.call('SET', KEYS[4], '1', 'NX', 'EX', ARGV[2]) == false then return 0 end
local placed = 0
local function place(ticket_id)
  if redis.call('SREM', KEYS[3], ticket_id) == 1 then
    local sequence = redis.call('INCR', KEYS[1])
    redis.call('RPUSH', KEYS[2], ticket_id)
    redis.call('HSET', ARGV[1] .. ticket_id, 'seq', sequence)
    placed = placed + 1
  end
end
for i = 3, #ARGV do place(ARGV[i]) end
for _, ticket_id in ipairs(redis.call('SMEMBERS', KEYS[3])) do place(ticket_id) end
redis.call('EXPIRE', KEYS[1], ARGV[2])
redis.call('EXPIRE', KEYS[2], ARGV[2])
return placed
"""

# One step of admission, by the process holding the event's lease (others only read the line): admit by elapsed
# time x rate on Redis' clock, never beyond the cap on active shoppers, passing over fans who are not present (they
# use no admission). The pace (sequences passed per second, leavers included) is measured over windows of at least
# a second while fans wait, for the estimates.
_STEP = _NOW_MS + _STATE + """
local keys = {seq = KEYS[1], serving = KEYS[2], order = KEYS[3], active = KEYS[4], clock = KEYS[5],
              present = KEYS[6], pre = KEYS[7], opened = KEYS[8], lease = KEYS[9]}
local rate, max_active, ttl_ms = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local prefix, key_ttl, owner, lease_ms, scan_limit = ARGV[4], ARGV[5], ARGV[6], ARGV[7], tonumber(ARGV[8])
local serving = tonumber(redis.call('GET', keys.serving) or '0')
local last_sequence = tonumber(redis.call('GET', keys.seq) or '0')
local holder = redis.call('GET', keys.lease)
if redis.call('EXISTS', keys.opened) == 0 or (holder and holder ~= owner) then
  local state = line_state(keys, serving, last_sequence)
  state[8], state[9] = 0, 0
  return state
end
redis.call('SET', keys.lease, owner, 'PX', lease_ms)
local last = tonumber(redis.call('HGET', keys.clock, 'last') or now)
local carry = tonumber(redis.call('HGET', keys.clock, 'carry') or '0')
local measured = tonumber(redis.call('HGET', keys.clock, 'rate') or '-1')
local window_start = tonumber(redis.call('HGET', keys.clock, 'wstart') or now)
local window_passed = tonumber(redis.call('HGET', keys.clock, 'wcount') or '0')
local window_admitted = tonumber(redis.call('HGET', keys.clock, 'wadmitted') or '0')
local skip = tonumber(redis.call('HGET', keys.clock, 'skip') or '1')
local elapsed = math.min(math.max(now - last, 0), 5000)
redis.call('ZREMRANGEBYSCORE', keys.active, '-inf', now)
redis.call('ZREMRANGEBYSCORE', keys.present, '-inf', now - 60000)
local active = redis.call('ZCARD', keys.active)
local waiting = last_sequence - serving
local budget = carry + elapsed * rate / 1000
local allowed = math.min(math.floor(budget), max_active - active)
local admitted, passed = 0, 0
while admitted < allowed and passed < scan_limit do
  local ticket_id = redis.call('LPOP', keys.order)
  if not ticket_id then break end
  passed = passed + 1
  local ticket = prefix .. ticket_id
  if tonumber(redis.call('ZSCORE', keys.present, ticket_id) or '0') >= now then
    redis.call('HSET', ticket, 'admitted', now)
    redis.call('ZADD', keys.active, now + ttl_ms, ticket_id)
    admitted = admitted + 1
  else
    redis.call('HSET', ticket, 'left', now)
  end
  redis.call('ZREM', keys.present, ticket_id)
end
if passed > 0 then
  serving = redis.call('INCRBY', keys.serving, passed)
  redis.call('EXPIRE', keys.serving, key_ttl)
end
-- Budget not spent because the cap binds carries over (up to a second of it), so a freed slot is taken at once.
if waiting - passed > 0 then
  carry = math.min(budget - admitted, math.max(rate, 1))
else
  carry = 0
end
window_passed, window_admitted = window_passed + passed, window_admitted + admitted
if now - window_start >= 1000 then
  if waiting > 0 or window_passed > 0 then
    local observed = window_passed * 1000 / (now - window_start)
    if measured < 0 then measured = observed else measured = 0.7 * measured + 0.3 * observed end
  end
  if window_admitted > 0 then
    skip = 0.7 * skip + 0.3 * (window_passed / window_admitted)
  end
  window_start, window_passed, window_admitted = now, 0, 0
end
redis.call('HSET', keys.clock, 'last', now, 'carry', tostring(carry), 'rate', tostring(measured),
           'wstart', window_start, 'wcount', window_passed, 'wadmitted', window_admitted, 'skip', tostring(skip))
redis.call('EXPIRE', keys.clock, key_ttl)
local state = line_state(keys, serving, last_sequence)
state[8], state[9] = 1, admitted
return state
"""

_READ_STATE = _STATE + """
local keys = {serving = KEYS[1], seq = KEYS[2], clock = KEYS[3], pre = KEYS[4], opened = KEYS[5], active = KEYS[6]}
return line_state(keys, tonumber(redis.call('GET', keys.serving) or '0'), tonumber(redis.call('GET', keys.seq) or '0'))
"""

_PRESENT = _NOW_MS + """
local expires = now + tonumber(ARGV[1])
local args = {}
for i = 3, #ARGV do
  args[#args + 1] = expires
  args[#args + 1] = ARGV[i]
end
if #args > 0 then
  redis.call('ZADD', KEYS[1], unpack(args))
  redis.call('EXPIRE', KEYS[1], ARGV[2])
end
return #args / 2
"""

_FORGET_IDLE = """
if redis.call('ZSCORE', KEYS[1], ARGV[1]) == ARGV[2] then return redis.call('ZREM', KEYS[1], ARGV[1]) end
return 0
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
        self.present = f"{base}:present"
        self.lease = f"{base}:lease"
        self.ticket_prefix = f"{base}:t:"

    def user(self, user_id: str) -> str:
        return f"{self.base}:user:{user_id}"

    def ticket(self, ticket_id: str) -> str:
        return self.ticket_prefix + ticket_id


def _line(reply: Sequence) -> LineState:
    serving, last_sequence, rate, pre_count, opened, active, skip = reply[:7]
    return LineState(
        serving=int(serving),
        last_sequence=int(last_sequence),
        admission_rate=float(rate),
        pre_queue=int(pre_count),
        opened=bool(int(opened)),
        active=int(active),
        passed_per_admission=float(skip),
        stepped=bool(int(reply[7])) if len(reply) > 7 else False,
        admitted=int(reply[8]) if len(reply) > 8 else 0,
    )


def _ticket(event_id: int, ticket_id: str, fields: Sequence) -> StoredTicket | None:
    user, seq, joined, admitted, token, left = (as_optional_text(f) for f in fields)
    if user is None or seq is None or joined is None:
        return None
    return StoredTicket(
        ticket_id=ticket_id,
        event_id=event_id,
        user_id=user,
        sequence=int(seq),
        joined_at=float(joined),
        admitted_at=int(admitted) / 1000 if admitted else None,
        admission_token=token,
        left=left is not None,
    )


_TICKET_FIELDS = ("user", "seq", "joined", "admitted", "token", "left")


class RedisQueueRepository:
    def __init__(
        self,
        redis: Redis,
        engine: AsyncEngine,
        *,
        event_cache_seconds: float,
        ttl_seconds: int,
        presence_grace_seconds: float = 30.0,
    ) -> None:
        self._redis = redis
        self._engine = engine
        self._ttl = ttl_seconds
        self._grace_ms = int(presence_grace_seconds * 1000)
        # Single flight: a burst of joins for one event costs one query, not one per fan.
        self._settings: CachedLoads[int, WaitingRoomSettings | None] = CachedLoads(
            maxsize=_SETTINGS_CACHE_SIZE, ttl=event_cache_seconds
        )
        self._opened: set[int] = set()
        self._join = redis.register_script(_JOIN)
        self._open = redis.register_script(_OPEN)
        self._step = redis.register_script(_STEP)
        self._read_state = redis.register_script(_READ_STATE)
        self._present = redis.register_script(_PRESENT)
        self._forget_idle = redis.register_script(_FORGET_IDLE)

    async def waiting_room_settings(self, event_id: int) -> WaitingRoomSettings | None:
        """Catalog settings change rarely and every step needs them: cached for a few seconds."""
        return await self._settings.get(event_id, lambda: self._load_settings(event_id))

    async def _load_settings(self, event_id: int) -> WaitingRoomSettings | None:
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(
                    text(
                        "SELECT event_id, queue_enabled, sale_starts_at, queue_rate_per_second, queue_max_active,"
                        " queue_paused, (cancelled OR starts_at < now() OR sale_ends_at <= now()) IS TRUE AS ended"
                        " FROM events WHERE event_id = :e"
                    ),
                    {"e": event_id},
                )
            ).first()
        if row is None:
            return None
        return WaitingRoomSettings(
            row.event_id, row.queue_enabled, row.sale_starts_at, row.queue_rate_per_second, row.queue_max_active,
            row.ended, paused=row.queue_paused,
        )

    async def join(
        self, event_id: int, user_id: str, *, pre_queue: bool, now: float
    ) -> tuple[StoredTicket, LineState]:
        """One round trip: the ticket (new, or the fan's own), the fan marked present, the line as it stands; the
        event is listed for stepping."""
        keys = _Keys(event_id)
        async with self._redis.pipeline(transaction=False) as pipe:
            await self._join(
                keys=[keys.user(user_id), keys.sequence, keys.order, keys.pre_queue, keys.opened, keys.present,
                      keys.serving, keys.clock, keys.active],
                args=[str(uuid.uuid4()), user_id, repr(now), "1" if pre_queue else "0", keys.ticket_prefix,
                      self._ttl, self._grace_ms],
                client=pipe,
            )
            pipe.zincrby(EVENTS_KEY, 1, str(event_id))
            (ticket_id, fields, state), _ = await pipe.execute()
        ticket = _ticket(event_id, as_text(ticket_id), fields)
        assert ticket is not None  # written by the script just now
        return ticket, _line(state)

    async def ticket(self, event_id: int, ticket_id: str) -> StoredTicket | None:
        fields = await self._redis.hmget(_Keys(event_id).ticket(ticket_id), _TICKET_FIELDS)
        return _ticket(event_id, ticket_id, fields)

    async def tickets(self, event_id: int, ticket_ids: Sequence[str]) -> dict[str, StoredTicket]:
        """Several tickets of one event in one round trip (those that still exist)."""
        if not ticket_ids:
            return {}
        keys = _Keys(event_id)
        async with self._redis.pipeline(transaction=False) as pipe:
            for ticket_id in ticket_ids:
                pipe.hmget(keys.ticket(ticket_id), _TICKET_FIELDS)
            replies = await pipe.execute()
        found = {}
        for ticket_id, fields in zip(ticket_ids, replies, strict=True):
            ticket = _ticket(event_id, ticket_id, fields)
            if ticket is not None:
                found[ticket_id] = ticket
        return found

    async def open_sale(self, event_id: int) -> int:
        """Shuffle the pre-queue with a cryptographic RNG (Lua's is seeded the same every call) and place it."""
        if event_id in self._opened:
            return 0
        keys = _Keys(event_id)
        if await self._redis.exists(keys.opened):
            self._opened.add(event_id)
            return 0
        members = list(await self._redis.smembers(keys.pre_queue))
        secrets.SystemRandom().shuffle(members)
        placed = int(
            await self._open(
                keys=[keys.sequence, keys.order, keys.pre_queue, keys.opened],
                args=[keys.ticket_prefix, self._ttl, *members],
            )
        )
        self._opened.add(event_id)
        return placed

    async def step(
        self, event_id: int, *, rate_per_second: int, max_active: int, admission_ttl: int, owner: str,
        lease_seconds: float, scan_limit: int,
    ) -> LineState:
        keys = _Keys(event_id)
        reply = await self._step(
            keys=[keys.sequence, keys.serving, keys.order, keys.active, keys.clock, keys.present, keys.pre_queue,
                  keys.opened, keys.lease],
            args=[rate_per_second, max_active, admission_ttl * 1000, keys.ticket_prefix, self._ttl, owner,
                  int(lease_seconds * 1000), scan_limit],
        )
        return _line(reply)

    async def line_state(self, event_id: int) -> LineState:
        keys = _Keys(event_id)
        reply = await self._read_state(
            keys=[keys.serving, keys.sequence, keys.clock, keys.pre_queue, keys.opened, keys.active]
        )
        return _line(reply)

    async def mark_present(self, event_id: int, ticket_ids: Sequence[str]) -> None:
        """Fans with an open stream count as present for the grace period from now."""
        present = _Keys(event_id).present
        for start in range(0, len(ticket_ids), _PRESENCE_CHUNK):
            await self._present(keys=[present], args=[self._grace_ms, self._ttl,
                                                      *ticket_ids[start:start + _PRESENCE_CHUNK]])

    async def events_to_step(self) -> dict[int, float]:
        """Events listed for stepping, each with its join counter."""
        listed: Any = await self._redis.zrange(EVENTS_KEY, 0, -1, withscores=True)
        return {int(as_text(event)): float(score) for event, score in listed}

    async def forget_idle_event(self, event_id: int, seen: float) -> bool:
        """Unlist an event whose line is empty, unless a fan joined since ``seen`` was read."""
        score = repr(seen) if seen != int(seen) else str(int(seen))
        return bool(await self._forget_idle(keys=[EVENTS_KEY], args=[str(event_id), score]))

    async def free_slots(self, event_id: int, ticket_ids: list[str]) -> int:
        """Admitted fans who are done shopping leave the active set: their slots go to the next fans at once."""
        if not ticket_ids:
            return 0
        return int(await self._redis.zrem(_Keys(event_id).active, *ticket_ids))

    async def store_admission_token(self, event_id: int, ticket_id: str, token: str) -> str:
        """Keep the first token issued for a ticket, so every watcher of it is handed the same one."""
        key = _Keys(event_id).ticket(ticket_id)
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.hsetnx(key, "token", token)
            pipe.hget(key, "token")
            _, stored = await pipe.execute()
        return as_optional_text(stored) or token


def utc(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, UTC)
