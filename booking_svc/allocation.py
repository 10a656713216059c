"""Best-available as an allocator: one Redis Lua step per fan takes the best free block of N adjacent seats and
holds it, so concurrent fans get distinct blocks without retries and without reading the seats from PostgreSQL.

**State** (per event, one Redis Cluster hash tag ``{<event_id>}``, shared by every booking process and replica):

- ``tix:alloc:{E}:free``  hash: row segment -> a string of ``1`` (free) and ``0`` (taken), one character per seat
  in number order. A row is split into segments where its numbering has a gap, so neighbours in a string are
  always adjacent seats;
- ``tix:alloc:{E}:ids``   hash: segment -> its seat ids, space separated (the hold keys' names);
- ``tix:alloc:{E}:info``  hash: segment -> ``<score> <centre> <filters...>``: its quality score (the best seat's
  layout ``rank``: lower is better), the position of that best seat, and the filters it belongs to (``a`` every
  seat, ``t<tier>`` a price tier, ``s<section>`` a section, ``x<section>|<tier>`` both);
- ``tix:alloc:{E}:pos``   hash: seat id -> ``<segment> <position>``, to give seats back;
- ``tix:alloc:{E}:fit:<filter>:<k>`` sorted sets, k = 1..8: the segments whose longest free run is at least k,
  scored by quality. The best segment that can seat N fans is ``ZRANGE fit:<filter>:<N> 0 0``: no scan;
- ``tix:alloc:{E}:meta``  hash: ``ready`` once loaded.

**Allocating** (``_ALLOCATE``): look at the best ``ROWS_LOOKED_AT`` segments of ``fit:<filter>:<N>``, take the first
block that strands no single seat (else the best row's best stranding block), nearest the segment's best seat
(``booking_svc.blocks`` states the rules and implements the same ones in Python). Before writing, each seat's hold
key is checked: a seat someone holds by name, or bought (``sold:`` marker), is marked taken and the step looks
again. Then the block's hold keys are written exactly as Redlock writes them (``tix:hold:{E}:<seat>`` = booking
id, same TTL; ``booking_svc.holds``), so named-seat holds and allocated blocks exclude each other, and every later
step (PostgreSQL's conditional update, release, sold markers, the reaper) treats both alike.

**Giving seats back** (``_RETURN``): every release of hold keys (``SeatHolds.release``: cancel, expiry, withdraw,
a failed reservation, the reaper) marks the seats free again unless a hold key still exists; seats PostgreSQL
refused are marked taken. The allocator's state is a hint: a stale "free" costs one more look inside the same
step, a stale "taken" is healed by the next release of that seat. PostgreSQL's conditional update has the last word.

**Loading**: lazily, once per event (not per request), by the first booking process that needs it, under a Redis
lock (``SET NX``); the others wait for ``ready`` (bounded) and fall back to the database path meanwhile. The load
runs in a worker thread with its own PostgreSQL and Redis connections: reading and indexing a 70,000-seat stadium
never runs on the event loop, so other fans' calls are not held up. It reads the seats free in PostgreSQL at that
moment; holds present in Redis are found at allocation time (above).

**Redis down**: the domain takes the database path instead (``BookingRepository.reserve`` with a best-available
query: the best free seats by rank with ``FOR UPDATE SKIP LOCKED``, so concurrent fans lock different seats).
With several Redlock nodes the allocator runs on the first one; the domain then takes the block on the others with
the ordinary Redlock hold (keys already carrying this booking id count as its own).

Seat ids must not contain whitespace (they never do in Tix layouts); an event whose ids do is not loaded and takes
the database path.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import psycopg
import redis
import redis.asyncio as aioredis
from prometheus_client import Counter, Histogram
from redis.exceptions import RedisError

from booking_svc.blocks import ROWS_LOOKED_AT, Allocation, AllocationOutcome
from booking_svc.holds import hold_key
from tix.logs import get_logger

log = get_logger("booking_svc.allocation")

ALLOCATIONS = Counter(
    "tix_booking_allocations_total", "Best-available allocation steps in Redis, by outcome.", ["outcome"]
)
LOADS = Histogram(
    "tix_booking_allocator_load_seconds", "Time to load an event's free seats into the allocator.",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30),
)

# Fit levels kept per filter: quantities up to this are found with one ZRANGE; larger ones look at the segments
# that seat this many and take one whose longest run is long enough.
LEVELS = 8
# Allocator keys of an event nobody books any more go away by themselves (reloaded on the next use).
STATE_TTL_SECONDS = 2 * 24 * 3600
_LOAD_LOCK_MS = 120_000

_PRELUDE = """
local LEVELS = 8
local function longest(s)
  local m = 0
  for run in string.gmatch(s, '1+') do if #run > m then m = #run end end
  return m
end
local function row_info(info, r)
  local t = {}
  for w in string.gmatch(redis.call('HGET', info, r), '%S+') do t[#t + 1] = w end
  return t
end
local function set_char(s, p, c) return string.sub(s, 1, p - 1) .. c .. string.sub(s, p + 1) end
-- Store a segment's new free string and move it between the fit sets its longest run changed.
local function store(prefix, free, r, old, new, rinfo)
  redis.call('HSET', free, r, new)
  local a, b = longest(old), longest(new)
  if a == b then return end
  local lo, hi = math.min(a, b), math.max(a, b)
  if hi > LEVELS then hi = LEVELS end
  for i = 3, #rinfo do
    for k = lo + 1, hi do
      local key = prefix .. 'fit:' .. rinfo[i] .. ':' .. k
      if b >= k then redis.call('ZADD', key, rinfo[1], r) else redis.call('ZREM', key, r) end
    end
  end
end
"""

# KEYS: meta, free, ids, info. ARGV: alloc prefix, hold prefix, quantity, booking id, TTL ms, filter, rows looked at.
# Returns {'ok', seat ids...}, {'none'} (no segment seats N), {'cold'} (not loaded) or {'busy'} (too many stale
# seats met in one step; rare, the caller tries again).
_ALLOCATE = _PRELUDE + """
local meta, free, ids, info = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local prefix, holdp = ARGV[1], ARGV[2]
local q = tonumber(ARGV[3])
local booking, ttl, filter = ARGV[4], ARGV[5], ARGV[6]
local look = tonumber(ARGV[7])
if redis.call('HGET', meta, 'ready') ~= '1' then return {'cold'} end

local function best_in_row(s, centre)
  local best, bstrand, bdist = nil, true, 0
  local i = 1
  while true do
    local a, b = string.find(s, '1+', i)
    if not a then break end
    for st = a, b - q + 1 do
      local strands = (st - a == 1) or (b - (st + q - 1) == 1)
      local dist = math.abs(2 * st + q - 1 - 2 * centre)
      if best == nil or (bstrand and not strands) or (bstrand == strands and dist < bdist) then
        best, bstrand, bdist = st, strands, dist
      end
    end
    i = b + 1
  end
  return best, bstrand
end

local fit = prefix .. 'fit:' .. filter .. ':' .. math.min(q, LEVELS)
for attempt = 1, 32 do
  local pick, fallback = nil, nil
  for _, r in ipairs(redis.call('ZRANGE', fit, 0, look - 1)) do
    local rinfo = row_info(info, r)
    local s = redis.call('HGET', free, r)
    local st, strands = best_in_row(s, tonumber(rinfo[2]))
    if st then
      if not strands then pick = {r, s, st, rinfo}; break end
      if not fallback then fallback = {r, s, st, rinfo} end
    end
  end
  pick = pick or fallback
  if not pick then return {'none'} end
  local r, s, st, rinfo = pick[1], pick[2], pick[3], pick[4]
  local seat = {}
  for id in string.gmatch(redis.call('HGET', ids, r), '%S+') do seat[#seat + 1] = id end
  local new, stale = s, false
  for p = st, st + q - 1 do
    if redis.call('EXISTS', holdp .. seat[p]) == 1 then new = set_char(new, p, '0'); stale = true end
  end
  if not stale then
    local out = {'ok'}
    for p = st, st + q - 1 do
      redis.call('SET', holdp .. seat[p], booking, 'PX', ttl)
      new = set_char(new, p, '0')
      out[#out + 1] = seat[p]
    end
    store(prefix, free, r, s, new, rinfo)
    return out
  end
  store(prefix, free, r, s, new, rinfo)
end
return {'busy'}
"""

# KEYS: meta, free, info, pos. ARGV: alloc prefix, hold prefix, '1' (free again, unless a hold key exists) or '0'
# (taken), seat ids... Returns how many seats changed state.
_RETURN = _PRELUDE + """
local meta, free, info, pos = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local prefix, holdp, mark = ARGV[1], ARGV[2], ARGV[3]
if redis.call('HGET', meta, 'ready') ~= '1' then return 0 end
local rows, order, changed = {}, {}, 0
for i = 4, #ARGV do
  local where = redis.call('HGET', pos, ARGV[i])
  if where and (mark == '0' or redis.call('EXISTS', holdp .. ARGV[i]) == 0) then
    local r, p = string.match(where, '^(%S+) (%d+)$')
    p = tonumber(p)
    local row = rows[r]
    if not row then
      local old = redis.call('HGET', free, r)
      row = {old = old, new = old}
      rows[r] = row
      order[#order + 1] = r
    end
    if string.sub(row.new, p, p) ~= mark then row.new = set_char(row.new, p, mark); changed = changed + 1 end
  end
end
for _, r in ipairs(order) do
  local row = rows[r]
  if row.new ~= row.old then store(prefix, free, r, row.old, row.new, row_info(info, r)) end
end
return changed
"""

# Every seat of the event with its place and whether PostgreSQL has it free now, in row order.
_SEATS = """
SELECT t.seat_id, ls.section_id, ls.row_label, ls.number, ls.price_tier, ls.rank,
       (t.status = 'available' OR (t.status = 'reserved' AND t.reserved_until < now())) AS free
FROM tickets t
JOIN events e ON e.event_id = t.event_id
JOIN venues v ON v.venue_id = e.venue_id
JOIN layout_seats ls ON ls.layout_id = v.layout_id AND ls.seat_id = t.seat_id
WHERE t.event_id = %(event_id)s
ORDER BY ls.section_id, ls.row_label, ls.number
"""


def alloc_prefix(event_id: int) -> str:
    return f"tix:alloc:{{{event_id}}}:"


def _hold_prefix(event_id: int) -> str:
    return hold_key(event_id, "")


def filter_name(section_id: str | None, price_tier: int) -> str:
    if section_id and price_tier:
        return f"x{section_id}|{price_tier}"
    if section_id:
        return f"s{section_id}"
    if price_tier:
        return f"t{price_tier}"
    return "a"


@dataclass(frozen=True)
class _Segment:
    seat_ids: list[str]
    free: list[bool]
    score: int
    centre: int  # 1-based position of the best seat
    filters: tuple[str, ...]


def build_segments(rows: Sequence[tuple[str, str, str, int, int, int, bool]]) -> list[_Segment]:
    """Seat rows (seat id, section, row label, number, tier, rank, free), ordered by section, row and number, as
    row segments of adjacent seats. Pure; run in the loader's thread."""
    segments: list[_Segment] = []
    current: list[tuple[str, str, str, int, int, int, bool]] = []

    def close() -> None:
        if not current:
            return
        best = min(range(len(current)), key=lambda k: current[k][5])
        section, tier = current[0][1], current[0][4]
        tiers = {seat[4] for seat in current}
        filters = ("a", f"s{section}") + ((f"t{tier}", f"x{section}|{tier}") if len(tiers) == 1 else ())
        segments.append(
            _Segment([seat[0] for seat in current], [bool(seat[6]) for seat in current], current[best][5], best + 1,
                     filters)
        )
        current.clear()

    for seat in rows:
        if current and not (
            seat[1] == current[-1][1] and seat[2] == current[-1][2] and seat[3] == current[-1][3] + 1
            and seat[4] == current[-1][4]
        ):
            close()
        current.append(seat)
    close()
    return segments


class SeatAllocator:
    """The allocator on one Redis node (``client``, async, for the hot path); ``redis_url`` and ``dsn`` give the
    loader thread connections of its own."""

    def __init__(self, client: aioredis.Redis, *, redis_url: str, dsn: str, load_wait_seconds: float = 10.0) -> None:
        self._client = client
        self._redis_url = redis_url
        self._dsn = dsn
        self._load_wait_seconds = load_wait_seconds
        self._allocate = client.register_script(_ALLOCATE)
        self._return = client.register_script(_RETURN)
        self._loading: dict[int, asyncio.Task[None]] = {}
        self._ready: set[int] = set()

    async def allocate(
        self, event_id: int, quantity: int, booking_id: str, ttl_ms: int, *, section_id: str | None = None,
        price_tier: int = 0,
    ) -> Allocation:
        """Hold the best block of ``quantity`` adjacent seats for ``booking_id`` (see the module docstring)."""
        prefix = alloc_prefix(event_id)
        keys = [f"{prefix}meta", f"{prefix}free", f"{prefix}ids", f"{prefix}info"]
        args: list[str | int] = [prefix, _hold_prefix(event_id), quantity, booking_id, ttl_ms,
                                 filter_name(section_id, price_tier), ROWS_LOOKED_AT]
        for _ in range(4):
            try:
                reply = await self._allocate(keys=keys, args=args)
            except (TimeoutError, RedisError, OSError) as error:
                log.warning("allocate_failed", event_id=event_id, error=repr(error))
                ALLOCATIONS.labels("unavailable").inc()
                return Allocation(AllocationOutcome.UNAVAILABLE)
            status = _text(reply[0])
            if status == "ok":
                ALLOCATIONS.labels("allocated").inc()
                self._ready.add(event_id)
                return Allocation(AllocationOutcome.ALLOCATED, tuple(_text(s) for s in reply[1:]))
            if status == "none":
                ALLOCATIONS.labels("none").inc()
                return Allocation(AllocationOutcome.NONE)
            if status == "cold":
                self._ready.discard(event_id)
                if not await self._wait_loaded(event_id):
                    ALLOCATIONS.labels("cold").inc()
                    return Allocation(AllocationOutcome.COLD)
        ALLOCATIONS.labels("busy").inc()
        return Allocation(AllocationOutcome.COLD)

    async def returned(self, event_id: int, seat_ids: Sequence[str]) -> int:
        """Hold keys of these seats were deleted: mark the seats free again (those nobody holds now)."""
        return await self._mark(event_id, seat_ids, "1")

    async def refused(self, event_id: int, seat_ids: Sequence[str]) -> int:
        """PostgreSQL refused these seats (someone has them there): mark them taken."""
        return await self._mark(event_id, seat_ids, "0")

    async def _mark(self, event_id: int, seat_ids: Sequence[str], mark: str) -> int:
        if not seat_ids:
            return 0
        prefix = alloc_prefix(event_id)
        keys = [f"{prefix}meta", f"{prefix}free", f"{prefix}info", f"{prefix}pos"]
        try:
            return int(await self._return(keys=keys, args=[prefix, _hold_prefix(event_id), mark, *seat_ids]))
        except (TimeoutError, RedisError, OSError) as error:
            log.warning("allocator_mark_failed", event_id=event_id, error=repr(error))
            return 0

    # --- loading --------------------------------------------------------------------------------------------

    async def _wait_loaded(self, event_id: int) -> bool:
        """Start (or join) this process's load of the event and wait for it, or for another process's, up to
        ``load_wait_seconds``; True when the event is ready."""
        task = self._loading.get(event_id)
        if task is None or task.done():
            task = asyncio.create_task(self._load(event_id), name=f"allocator-load-{event_id}")
            self._loading[event_id] = task
        try:
            await asyncio.wait_for(asyncio.shield(task), self._load_wait_seconds)
        except TimeoutError:
            return False
        except Exception as error:  # noqa: BLE001 - the load failed: this request takes the database path
            log.warning("allocator_load_failed", event_id=event_id, error=repr(error))
            return False
        return event_id in self._ready

    async def _load(self, event_id: int) -> None:
        prefix = alloc_prefix(event_id)
        token = uuid.uuid4().hex
        deadline = time.monotonic() + self._load_wait_seconds
        while True:
            if await self._client.hget(f"{prefix}meta", "ready") in ("1", b"1"):
                self._ready.add(event_id)
                return
            if await self._client.set(f"{prefix}loading", token, nx=True, px=_LOAD_LOCK_MS):
                break
            if time.monotonic() > deadline:
                return  # another process is loading it; this request takes the database path
            await asyncio.sleep(0.05)
        try:
            started = time.perf_counter()
            loaded = await asyncio.to_thread(load_event, self._dsn, self._redis_url, event_id)
            LOADS.observe(time.perf_counter() - started)
            if loaded:
                self._ready.add(event_id)
            log.info("allocator_loaded", event_id=event_id, seats=loaded, seconds=time.perf_counter() - started)
        finally:
            if await self._client.get(f"{prefix}loading") in (token, token.encode()):
                await self._client.delete(f"{prefix}loading")


def load_event(dsn: str, redis_url: str, event_id: int) -> int:
    """Read the event's seats from PostgreSQL and write the allocator's state to Redis; runs in a worker thread
    with connections of its own. Returns the number of seats loaded (0: not loadable, the database path serves)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        rows = conn.execute(_SEATS, {"event_id": event_id}).fetchall()
    if not rows or any(any(c.isspace() for c in row[0]) for row in rows):
        return 0
    segments = build_segments(rows)
    prefix = alloc_prefix(event_id)
    filters = sorted({f for segment in segments for f in segment.filters})
    fit_keys = [f"{prefix}fit:{f}:{k}" for f in filters for k in range(1, LEVELS + 1)]
    state_keys = [f"{prefix}{name}" for name in ("meta", "free", "ids", "info", "pos")]
    client = redis.Redis.from_url(redis_url)
    try:
        pipe = client.pipeline(transaction=False)
        for start in range(0, len(fit_keys) + len(state_keys), 500):
            pipe.delete(*(state_keys + fit_keys)[start : start + 500])
        pending = 0
        for index, segment in enumerate(segments, start=1):
            r = str(index)
            free = "".join("1" if f else "0" for f in segment.free)
            pipe.hset(f"{prefix}free", r, free)
            pipe.hset(f"{prefix}ids", r, " ".join(segment.seat_ids))
            pipe.hset(f"{prefix}info", r, f"{segment.score} {segment.centre} {' '.join(segment.filters)}")
            pipe.hset(f"{prefix}pos", mapping={seat: f"{r} {p}" for p, seat in enumerate(segment.seat_ids, 1)})
            longest = max((len(run) for run in free.split("0")), default=0)
            for f in segment.filters:
                for k in range(1, min(longest, LEVELS) + 1):
                    pipe.zadd(f"{prefix}fit:{f}:{k}", {r: segment.score})
            pending += 1
            if pending >= 200:
                pipe.execute()
                pending = 0
        for key in state_keys + fit_keys:
            pipe.expire(key, STATE_TTL_SECONDS)
        pipe.hset(f"{prefix}meta", mapping={"ready": "1", "seats": len(rows), "segments": len(segments)})
        pipe.expire(f"{prefix}meta", STATE_TTL_SECONDS)
        pipe.execute()
    finally:
        client.close()
    return len(rows)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
