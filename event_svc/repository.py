"""Storage for the event service: catalog and ticket reads in PostgreSQL, and the Redis caches in front of them.

Ticket rows exist only for events someone has booked from (see tix.inventory); an event without them has every
seat available, so reads count the seats that are *taken* and never materialise rows for a viewer or a crawler.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from event_svc.domain import (
    EventCatalogEntry,
    LayoutSeat,
    SeatState,
    SeatStatus,
    SectionPrice,
    WaitingRoom,
    natural_key,
)
from tix import seatfeed
from tix.availability import AvailabilityCounts
from tix.catalog import CATALOG_GENERATION_KEY, Performer, Venue, catalog_version_key, venue_and_performer
from tix.logs import get_logger
from tix.redis_pool import as_text

log = get_logger("event_svc.repository")

_EVENT = text(
    """
    SELECT e.event_id, e.name, e.description, e.category, e.starts_at, e.ends_at, e.sale_starts_at, e.sale_ends_at,
           e.cancelled,
           e.currency, e.tier_prices, e.max_seats_per_user, e.queue_enabled, e.queue_rate_per_second,
           e.queue_max_active,
           v.venue_id, v.name AS venue_name, v.city, v.region, v.country_code, v.latitude, v.longitude,
           v.time_zone, v.capacity, v.layout_id, l.name AS layout_name,
           p.performer_id, p.name AS performer_name, p.category AS performer_category, p.genre
    FROM events e
    JOIN venues v ON v.venue_id = e.venue_id
    JOIN layouts l ON l.layout_id = v.layout_id
    JOIN performers p ON p.performer_id = e.performer_id
    WHERE e.event_id = :event_id
    """
)

_SECTION_TIERS = text(
    """
    SELECT section_id, min(section_name) AS section_name, price_tier, count(*) AS seats
    FROM layout_seats WHERE layout_id = :layout_id
    GROUP BY section_id, price_tier
    """
)

_LAYOUT = text(
    """
    SELECT seat_id, section_id, section_name, row_label, number, price_tier, x, y, rank
    FROM layout_seats WHERE layout_id = :layout_id
    ORDER BY section_id, row_label, number
    """
)

_LAYOUT_NAME = text("SELECT name FROM layouts WHERE layout_id = :layout_id")

_LAYOUTS_IN_USE = text("SELECT layout_id FROM venues GROUP BY layout_id ORDER BY count(*) DESC")

# The map shows the rows' statuses as of their version: a reservation past its deadline shows as reserved until
# booking's sweeper frees it (seconds later, with a new version), so one version always means one map.
_SEAT_STATE = text(
    """
    SELECT coalesce((SELECT max(version) FROM tickets WHERE event_id = :event_id), 0) AS version,
           coalesce(array_agg(seat_id), '{}') AS seat_ids, coalesce(array_agg(status), '{}') AS statuses
    FROM tickets WHERE event_id = :event_id AND status <> 'available'
    """
)


class CatalogRepository:
    """The catalog and ticket rows an event page and a seat map are made of.

    With a read replica (``reader``), the catalog, layouts and fallback counts are read there; the seat state is
    always read on the primary (``engine``), because a map is cached under the feed head observed before it was
    read and must contain every change published up to it, which a lagging replica might not have yet."""

    def __init__(self, engine: AsyncEngine, reader: AsyncEngine | None = None) -> None:
        self._engine = engine
        self._reader = reader or engine

    async def load_event(self, event_id: int) -> EventCatalogEntry | None:
        async with self._reader.connect() as conn:
            row = (await conn.execute(_EVENT, {"event_id": event_id})).mappings().first()
            if row is None:
                return None
            tiers = (await conn.execute(_SECTION_TIERS, {"layout_id": row["layout_id"]})).all()
        tier_prices = tuple(row["tier_prices"]) or (0,)
        venue, performer = venue_and_performer(row)
        return EventCatalogEntry(
            event_id=row["event_id"],
            name=row["name"],
            description=row["description"],
            category=row["category"],
            starts_at=row["starts_at"],
            ends_at=row["ends_at"],
            sale_starts_at=row["sale_starts_at"],
            sale_ends_at=row["sale_ends_at"],
            cancelled=row["cancelled"],
            currency=row["currency"],
            tier_prices=tier_prices,
            max_seats_per_user=row["max_seats_per_user"],
            waiting_room=WaitingRoom(row["queue_enabled"], row["queue_rate_per_second"], row["queue_max_active"]),
            venue=venue,
            performer=performer,
            sections=_section_prices(tiers, tier_prices),
        )

    async def load_layout(self, layout_id: str) -> list[LayoutSeat]:
        async with self._reader.connect() as conn:
            rows = (await conn.execute(_LAYOUT, {"layout_id": layout_id})).all()
        return [LayoutSeat(*row) for row in rows]

    async def layout_name(self, layout_id: str) -> str | None:
        async with self._reader.connect() as conn:
            name: str | None = await conn.scalar(_LAYOUT_NAME, {"layout_id": layout_id})
            return name

    async def layout_ids(self) -> list[str]:
        """Layouts in use, the most used first."""
        async with self._reader.connect() as conn:
            return list(await conn.scalars(_LAYOUTS_IN_USE))

    async def seat_state(self, event_id: int) -> SeatState:
        """The taken seats and the map version they are at, read in one statement (one snapshot)."""
        async with self._engine.connect() as conn:
            row = (await conn.execute(_SEAT_STATE, {"event_id": event_id})).one()
        statuses = {status.value: status for status in SeatStatus}
        taken = {seat_id: statuses[status] for seat_id, status in zip(row.seat_ids, row.statuses, strict=True)}
        return SeatState(event_id, int(row.version), taken)

    async def availability(self, event_id: int) -> AvailabilityCounts | None:
        """Counted in PostgreSQL: the fallback when the counters in Redis are unreachable."""
        async with self._reader.connect() as conn:
            counted = await seatfeed.count_availability(conn, event_id)
        return counted[1] if counted else None


def _section_prices(tiers: Sequence[Any], tier_prices: tuple[int, ...]) -> tuple[SectionPrice, ...]:
    """One entry per section: its size, and its cheapest tier's price as the "from" price."""

    def price(tier: int) -> int:
        return tier_prices[max(1, min(tier, len(tier_prices))) - 1]

    by_section: dict[str, list] = {}
    for section_id, section_name, tier, seats in tiers:
        by_section.setdefault(section_id, []).append((price(tier), tier, section_name, seats))
    sections = []
    for section_id in sorted(by_section, key=natural_key):
        priced = sorted(by_section[section_id])
        cheapest, tier, name, _ = priced[0]
        sections.append(
            SectionPrice(section_id, name, tier, cheapest, priced[-1][0], sum(p[3] for p in priced))
        )
    return tuple(sections)


# --- Redis caches ----------------------------------------------------------------------------------------------


def _catalog_key(event_id: int, generation: str, version: str) -> str:
    return f"tix:event:{event_id}:catalog:{generation}.{version}"


_MISSING = "-"


class RedisCatalogCache:
    """Event details, cached for long (versioned, see tix.catalog.invalidate_event).

    Redis being down slows pages down but does not break them: every miss or error falls through to PostgreSQL."""

    def __init__(self, redis: Redis, *, catalog_seconds: int, missing_seconds: float) -> None:
        self._redis = redis
        self._catalog_seconds = catalog_seconds
        self._missing_ms = max(1, int(missing_seconds * 1000))

    async def get_event(
        self, event_id: int, load: Callable[[], Awaitable[EventCatalogEntry | None]]
    ) -> EventCatalogEntry | None:
        try:
            generation, version = await self._redis.mget(CATALOG_GENERATION_KEY, catalog_version_key(event_id))
            key = _catalog_key(event_id, as_text(generation or "0"), as_text(version or "0"))
            raw = await self._redis.get(key)
        except RedisError as exc:
            log.warning("catalog_cache_unavailable", event_id=event_id, error=repr(exc))
            return await load()
        if raw is not None:
            return None if raw == _MISSING else decode_entry(as_text(raw))
        entry = await load()
        try:
            if entry is None:
                await self._redis.set(key, _MISSING, px=self._missing_ms)
            else:
                await self._redis.set(key, encode_entry(entry), ex=self._catalog_seconds)
        except RedisError as exc:
            log.warning("catalog_cache_unavailable", event_id=event_id, error=repr(exc))
        return entry

class RedisAvailability:
    """Availability counts from the counters booking keeps in Redis (built from PostgreSQL when missing, see
    tix.seatfeed); counted in PostgreSQL when Redis is unreachable."""

    def __init__(self, redis: Redis, engine: AsyncEngine, fallback: CatalogRepository) -> None:
        self._redis = redis
        self._engine = engine
        self._fallback = fallback

    async def counts(self, event_id: int) -> AvailabilityCounts | None:
        try:
            counts = await seatfeed.read_counters(self._redis, event_id)
            if counts is not None:
                return counts
            async with self._engine.connect() as conn:
                return await seatfeed.ensure_counters(self._redis, conn, event_id)
        except RedisError as exc:
            log.warning("availability_counters_unavailable", event_id=event_id, error=repr(exc))
            return await self._fallback.availability(event_id)


def encode_entry(entry: EventCatalogEntry) -> str:
    return json.dumps(
        {
            "event_id": entry.event_id,
            "name": entry.name,
            "description": entry.description,
            "category": entry.category,
            "starts_at": entry.starts_at.isoformat(),
            "ends_at": entry.ends_at.isoformat(),
            "sale_starts_at": entry.sale_starts_at.isoformat(),
            "sale_ends_at": entry.sale_ends_at.isoformat() if entry.sale_ends_at else None,
            "cancelled": entry.cancelled,
            "currency": entry.currency,
            "tier_prices": list(entry.tier_prices),
            "max_seats_per_user": entry.max_seats_per_user,
            "waiting_room": list(vars_of(entry.waiting_room)),
            "venue": list(vars_of(entry.venue)),
            "performer": list(vars_of(entry.performer)),
            "sections": [list(vars_of(section)) for section in entry.sections],
        },
        separators=(",", ":"),
    )


def vars_of(record: object) -> tuple:
    return tuple(getattr(record, name) for name in record.__dataclass_fields__)  # type: ignore[attr-defined]


def decode_entry(raw: str) -> EventCatalogEntry:
    data = json.loads(raw)
    return EventCatalogEntry(
        event_id=data["event_id"],
        name=data["name"],
        description=data["description"],
        category=data["category"],
        starts_at=datetime.fromisoformat(data["starts_at"]),
        ends_at=datetime.fromisoformat(data["ends_at"]),
        sale_starts_at=datetime.fromisoformat(data["sale_starts_at"]),
        sale_ends_at=datetime.fromisoformat(data["sale_ends_at"]) if data.get("sale_ends_at") else None,
        cancelled=data["cancelled"],
        currency=data["currency"],
        tier_prices=tuple(data["tier_prices"]),
        max_seats_per_user=data["max_seats_per_user"],
        waiting_room=WaitingRoom(*data["waiting_room"]),
        venue=Venue(*data["venue"]),
        performer=Performer(*data["performer"]),
        sections=tuple(SectionPrice(*section) for section in data["sections"]),
    )
