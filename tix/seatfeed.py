"""The live seat feed: booking publishes seat status changes, the event service fans them out to WatchSeats.

Redis holds the per-event version counter (so no hot database row is updated per reservation) and carries the
changes over pub/sub. A seat map read records the version first, so a watcher that starts from a snapshot at
version V applies every published change with a version above V.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass

from redis.asyncio import Redis


def channel(event_id: int) -> str:
    return f"tix:seats:{event_id}"


def version_key(event_id: int) -> str:
    return f"tix:seats:{event_id}:version"


@dataclass(frozen=True)
class SeatFeedMessage:
    event_id: int
    version: int
    # (seat_id, status) with status one of "available", "reserved", "booked".
    changes: tuple[tuple[str, str], ...]

    def to_json(self) -> str:
        return json.dumps({"event_id": self.event_id, "version": self.version, "changes": self.changes})

    @classmethod
    def from_json(cls, raw: str | bytes) -> SeatFeedMessage:
        data = json.loads(raw)
        return cls(int(data["event_id"]), int(data["version"]), tuple((s, st) for s, st in data["changes"]))


_PUBLISH = """
local version = redis.call('INCR', KEYS[1])
local message = string.format('{"event_id": %s, "version": %d, "changes": %s}', ARGV[1], version, ARGV[2])
redis.call('PUBLISH', KEYS[2], message)
return version
"""


async def publish_seat_changes(redis: Redis, event_id: int, changes: Iterable[tuple[str, str]]) -> int:
    """Bump the event's seat version and publish the changes under it, atomically; returns the new version."""
    payload = json.dumps([list(change) for change in changes])
    return int(await redis.eval(_PUBLISH, 2, version_key(event_id), channel(event_id), str(event_id), payload))


async def current_version(redis: Redis, event_id: int) -> int:
    value = await redis.get(version_key(event_id))
    return int(value) if value else 0
