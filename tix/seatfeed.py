"""The seat-map clock, the live seat feed and the availability counters: booking writes them, the read path
serves them.

**The clock.** Every statement that changes the status of tickets draws values from the PostgreSQL sequence
``seat_version_seq`` and stores them on the rows it changes (``tickets.version``, see :data:`NEXT_VERSION`). An
event's map version is ``max(tickets.version)`` of its rows: durable, and monotonic whatever happens to Redis or to
the services. A seat map read in one statement together with that maximum is exactly "the map at its version".
Versions come from one sequence for all events, so one event's versions have gaps; per seat, a later change always
has a higher version (the second writer waits for the first one's row lock, then draws its value). A batch's
version is the highest of its rows'. A transaction that drew its versions but has not committed yet is not in a
snapshot read meanwhile, even one at a higher version: such a change is published right after its commit, and a
reader that keys caches by version must let them live only briefly (or also key them by the published head).

**The feed.** After its transaction commits, booking publishes each change batch with :func:`publish`, one Lua
script that atomically
- links the batch to the event's previous publication (``prev``): a watcher that sees a ``prev`` other than the
  last version it applied knows a message was lost (pub/sub delivers at most once) and starts again;
- appends it to a bounded per-event log (a Redis stream), from which a reconnecting watcher replays what it missed;
- publishes it on the event's pub/sub channel for live watchers;
- applies it to the event's availability counters, when they exist.
Two batches committed at the same moment (necessarily on different seats) may be published in the other order than
their versions; watchers apply changes in publication order, and per seat the newest version wins.

**Counters.** Per event, a Redis hash of taken (reserved or booked) seats per section, the event's total and its
last published availability band. :func:`ensure_counters` builds it from one grouped count in PostgreSQL when it is
missing, at the count's version: batches with a higher version are added (from the log when published before the
counters were stored, by :func:`publish` after), lower ones were counted already. A batch that drew its versions
before the count but committed after it is missed; the hash expires after a few minutes, so such drift heals, and is
built again on the next use.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from tix.availability import AvailabilityBand, AvailabilityCounts
from tix.logs import get_logger

log = get_logger("tix.seatfeed")

SEAT_STATUSES = ("available", "reserved", "booked")

# ``SET version = <NEXT_VERSION>`` in every statement that changes a ticket's status. Drawn per row, as the row is
# written (after its lock is held), so a seat's later change always gets the higher version; a batch's version is
# the highest of its rows'.
NEXT_VERSION = "nextval('seat_version_seq')"

# Log entries kept per event: at a stampede's 1,000 changes/s, about ten seconds of reconnect history.
LOG_LENGTH = 10_000
# Feed keys of an event nobody changes any more go away by themselves.
FEED_TTL_SECONDS = 2 * 24 * 3600
COUNTERS_TTL_SECONDS = 300


def channel(event_id: int) -> str:
    return f"tix:seats:{event_id}"


def _keys(event_id: int) -> tuple[str, str, str]:
    # One hash tag per event: in a Redis Cluster the script's keys share a slot.
    base = f"tix:seatmap:{{{event_id}}}"
    return f"{base}:head", f"{base}:log", f"{base}:counters"


def head_key(event_id: int) -> str:
    return _keys(event_id)[0]


def log_key(event_id: int) -> str:
    return _keys(event_id)[1]


def counters_key(event_id: int) -> str:
    return _keys(event_id)[2]


@dataclass(frozen=True)
class SeatChange:
    """One seat's new status, and the status and section it had (for the counters)."""

    seat_id: str
    section_id: str
    previous: str
    status: str


@dataclass(frozen=True)
class SeatFeedMessage:
    event_id: int
    version: int
    # The version of the event's previous publication (0: none since Redis last knew the event).
    prev: int
    # (seat_id, status) with status one of SEAT_STATUSES.
    changes: tuple[tuple[str, str], ...]

    def to_json(self) -> str:
        return json.dumps(
            {"event_id": self.event_id, "version": self.version, "prev": self.prev, "changes": self.changes}
        )

    @classmethod
    def from_json(cls, raw: str | bytes) -> SeatFeedMessage:
        data = json.loads(raw)
        return cls(
            int(data["event_id"]),
            int(data["version"]),
            int(data.get("prev", 0)),
            tuple((str(s), str(st)) for s, st in data["changes"]),
        )


@dataclass(frozen=True)
class Publication:
    prev: int
    # None when the event's counters are not in Redis (see ensure_counters).
    counts: AvailabilityCounts | None


def _deltas(changes: Sequence[SeatChange]) -> dict[str, int]:
    deltas: dict[str, int] = {}
    for change in changes:
        was_taken, is_taken = change.previous != "available", change.status != "available"
        if was_taken != is_taken:
            deltas[change.section_id] = deltas.get(change.section_id, 0) + (1 if is_taken else -1)
    return deltas


# Counter hash fields: one per section (taken seats), and these.
_TAKEN, _TOTAL, _BAND, _VERSION = "_taken", "_total", "_band", "_version"

_READ_COUNTERS = """
local function read_counters(key)
  local flat = redis.call('HGETALL', key)
  if #flat == 0 then return false end
  return flat
end
"""

_PUBLISH = (
    _READ_COUNTERS
    + """
local version = tonumber(ARGV[1])
local prev = tonumber(redis.call('HGET', KEYS[1], 'last') or '0')
local max = tonumber(redis.call('HGET', KEYS[1], 'max') or '0')
redis.call('HSET', KEYS[1], 'last', version)
if version > max then redis.call('HSET', KEYS[1], 'max', version) end
redis.call('EXPIRE', KEYS[1], ARGV[6])
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[5], '*', 'v', version, 'p', prev, 'c', ARGV[2], 'd', ARGV[3])
redis.call('EXPIRE', KEYS[2], ARGV[6])
redis.call('PUBLISH', ARGV[4], string.format(
  '{"event_id": %s, "version": %d, "prev": %d, "changes": %s}', ARGV[7], version, prev, ARGV[2]))
local counted = redis.call('HGET', KEYS[3], '_version')
if not counted then return {prev, false} end
-- Counted from PostgreSQL at a later version already (the batch committed before the count ran).
if version <= tonumber(counted) then return {prev, read_counters(KEYS[3])} end
local sum = 0
for section, delta in pairs(cjson.decode(ARGV[3])) do
  redis.call('HINCRBY', KEYS[3], section, delta)
  sum = sum + delta
end
if sum ~= 0 then redis.call('HINCRBY', KEYS[3], '_taken', sum) end
return {prev, read_counters(KEYS[3])}
"""
)

# Install counts read from PostgreSQL at ``version`` unless another process did first, then apply what the log holds
# beyond that version (published while the count ran, or before, while the hash was missing).
_INSTALL = (
    _READ_COUNTERS
    + """
if redis.call('EXISTS', KEYS[1]) == 1 then return read_counters(KEYS[1]) end
local counted = tonumber(ARGV[1])
redis.call('HSET', KEYS[1], unpack(cjson.decode(ARGV[2])))
for _, entry in ipairs(redis.call('XRANGE', KEYS[2], '-', '+')) do
  local fields = entry[2]
  local v, d = 0, '{}'
  for i = 1, #fields, 2 do
    if fields[i] == 'v' then v = tonumber(fields[i + 1]) elseif fields[i] == 'd' then d = fields[i + 1] end
  end
  if v > counted then
    local sum = 0
    for section, delta in pairs(cjson.decode(d)) do
      redis.call('HINCRBY', KEYS[1], section, delta)
      sum = sum + delta
    end
    redis.call('HINCRBY', KEYS[1], '_taken', sum)
  end
end
redis.call('EXPIRE', KEYS[1], ARGV[3])
return read_counters(KEYS[1])
"""
)


def _counts(flat: list) -> AvailabilityCounts:
    fields = {_text(flat[i]): _text(flat[i + 1]) for i in range(0, len(flat), 2)}
    band = fields.pop(_BAND, AvailabilityBand.AVAILABLE.value)
    total = int(fields.pop(_TOTAL, "0"))
    taken = int(fields.pop(_TAKEN, "0"))
    fields.pop(_VERSION, None)
    return AvailabilityCounts(
        total=total,
        taken=taken,
        taken_by_section={section: int(count) for section, count in fields.items()},
        band=AvailabilityBand(band),
    )


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


async def publish(redis: Redis, event_id: int, version: int, changes: Sequence[SeatChange]) -> Publication:
    """Publish a committed change batch under its version (see the module docstring)."""
    head, log, counters = _keys(event_id)
    payload = json.dumps([[c.seat_id, c.status] for c in changes])
    prev, flat = await redis.eval(
        _PUBLISH, 3, head, log, counters,
        str(version), payload, json.dumps(_deltas(changes)), channel(event_id), str(LOG_LENGTH),
        str(FEED_TTL_SECONDS), str(event_id),
    )
    return Publication(int(prev), _counts(flat) if flat else None)


async def published_version(redis: Redis, event_id: int) -> int:
    """The highest version published for the event since Redis last knew it (0 when none)."""
    value = await redis.hget(head_key(event_id), "max")
    return int(value) if value else 0


async def read_counters(redis: Redis, event_id: int) -> AvailabilityCounts | None:
    flat = await redis.hgetall(counters_key(event_id))
    return _counts([item for pair in flat.items() for item in pair]) if flat else None


_COUNT = text(
    """
    WITH taken AS (
        SELECT section_id, count(*) FILTER (WHERE status <> 'available') AS taken, max(version) AS version
        FROM tickets WHERE event_id = :event_id GROUP BY section_id
    )
    SELECT v.capacity AS total, e.availability_band AS band,
           coalesce((SELECT max(version) FROM taken), 0) AS version,
           coalesce((SELECT json_object_agg(section_id, taken) FROM taken), '{}'::json) AS by_section
    FROM events e JOIN venues v ON v.venue_id = e.venue_id
    WHERE e.event_id = :event_id
    """
)


async def count_availability(conn: AsyncConnection, event_id: int) -> tuple[int, AvailabilityCounts] | None:
    """The event's counts read from PostgreSQL, with the map version they were read at (None: no such event)."""
    row = (await conn.execute(_COUNT, {"event_id": event_id})).first()
    if row is None:
        return None
    by_section = {section: int(count) for section, count in row.by_section.items()}
    counts = AvailabilityCounts(
        total=int(row.total), taken=sum(by_section.values()), taken_by_section=by_section,
        band=AvailabilityBand(row.band),
    )
    return int(row.version), counts


async def ensure_counters(redis: Redis, conn: AsyncConnection, event_id: int) -> AvailabilityCounts | None:
    """The event's counters from Redis, built from PostgreSQL first when missing (None: no such event)."""
    current = await read_counters(redis, event_id)
    if current is not None:
        return current
    counted = await count_availability(conn, event_id)
    if counted is None:
        return None
    return await install_counters(redis, event_id, *counted)


async def install_counters(redis: Redis, event_id: int, version: int, counts: AvailabilityCounts) -> AvailabilityCounts:
    """Store counts read from PostgreSQL at ``version`` unless another process did first, adding what the log holds
    beyond that version; returns the counters as stored."""
    fields: list[str | int] = [_TOTAL, counts.total, _TAKEN, counts.taken, _BAND, counts.band.value,
                               _VERSION, version]
    for section, taken in counts.taken_by_section.items():
        fields += [section, taken]
    counters, log = counters_key(event_id), log_key(event_id)
    flat = await redis.eval(_INSTALL, 2, counters, log, str(version), json.dumps(fields), str(COUNTERS_TTL_SECONDS))
    return _counts(flat)


async def remember_band(redis: Redis, event_id: int, band: AvailabilityBand) -> None:
    await redis.hset(counters_key(event_id), _BAND, band.value)


# The band changes rarely (on sale → few left → sold out, and back): the events row and an outbox row for the search
# index are written only then, and only if no later version has written a band already.
_RECORD_BAND = text(
    """
    WITH changed AS (
        UPDATE events SET availability_band = :band, availability_version = :version, updated_at = now()
        WHERE event_id = :event_id AND availability_version < :version AND availability_band <> :band
        RETURNING event_id
    )
    INSERT INTO outbox (topic, aggregate_id, payload)
    SELECT 'availability', CAST(event_id AS text), jsonb_build_object('band', CAST(:band AS text), 'version', :version)
    FROM changed
    RETURNING outbox_id
    """
)


async def record_band(conn: AsyncConnection, event_id: int, band: AvailabilityBand, version: int) -> bool:
    """Store the event's new availability band with an outbox row, in the caller's transaction; False when a
    later version got there first or the band was already this one."""
    written = await conn.scalar(_RECORD_BAND, {"event_id": event_id, "band": band.value, "version": version})
    return written is not None


class SeatFeedPublisher:
    """Booking's side of the feed: publish each committed batch, keep the counters, and record the event's
    availability band when it changes. The feed is a convenience for viewers: a Redis or database outage here is
    logged, never turned into a failed booking (the change itself is committed already)."""

    def __init__(self, redis: Redis, engine: AsyncEngine) -> None:
        self._redis = redis
        self._engine = engine

    async def publish(self, event_id: int, version: int, changes: Sequence[SeatChange]) -> None:
        if not changes:
            return
        try:
            counts = (await publish(self._redis, event_id, version, changes)).counts
            if counts is None:
                async with self._engine.connect() as conn:
                    counts = await ensure_counters(self._redis, conn, event_id)
            if counts is None or counts.current_band is counts.band:
                return
            band = counts.current_band
            await remember_band(self._redis, event_id, band)
            async with self._engine.begin() as conn:
                recorded = await record_band(conn, event_id, band, version)
            log.info("availability_band_changed", event_id=event_id, band=band.value, version=version,
                     recorded=recorded)
        except (RedisError, OSError, SQLAlchemyError) as error:
            log.warning("seat_feed_unavailable", event_id=event_id, error=repr(error))


# --- the read side: resuming from the log ----------------------------------------------------------------------


@dataclass(frozen=True)
class FeedTail:
    """The newest publications of an event's log, oldest first, and the head (``last``) when they were read."""

    entries: tuple[SeatFeedMessage, ...]
    last: int
    # True when the log holds nothing older than ``entries``.
    complete: bool


async def read_tail(redis: Redis, event_id: int, count: int) -> FeedTail:
    """At most ``count`` of the newest log entries and the head, read together (one MULTI)."""
    async with redis.pipeline(transaction=True) as pipe:
        pipe.xrevrange(log_key(event_id), "+", "-", count=count)
        pipe.hget(head_key(event_id), "last")
        newest_first, last = await pipe.execute()
    entries = []
    for _entry_id, fields in reversed(newest_first):
        fields = {_text(k): _text(v) for k, v in fields.items()}
        changes = tuple((str(seat), str(status)) for seat, status in json.loads(fields.get("c", "[]")))
        entries.append(SeatFeedMessage(event_id, int(fields["v"]), int(fields.get("p", 0)), changes))
    return FeedTail(tuple(entries), int(last) if last else 0, len(newest_first) < count)


def replay_after(entries: Sequence[SeatFeedMessage], last: int, position: int) -> list[SeatFeedMessage] | None:
    """The publications after ``position`` (a version the client applied, or the head a snapshot was read
    under), in publication order: [] when ``position`` is the head, None when ``entries`` do not reach back to it
    (the client must start again from a snapshot). ``entries`` are a contiguous run of the log ending at ``last``;
    each names its predecessor, so the replay starts at the entry whose ``prev`` is ``position``."""
    if position == last:
        return []
    for index, entry in enumerate(entries):
        if entry.prev == position:
            return list(entries[index:])
    return None
