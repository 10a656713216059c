"""Applying a catalog file (tix.catalog_files) to the database: ``tix catalog apply FILE``.

Checked first against the database (layouts exist, events' venues and performers exist in the file or already,
every price tier of a venue's layout has a price, seats that exist are not moved to another layout), then written
in chunks, each one transaction: an upsert by external id that touches only rows whose values differ, an audit row
(tix.audit), and, through the tables' triggers, the outbox rows the search indexers follow. After each chunk
commits, the event service's cached pages of the changed events are invalidated (tix.catalog).

A file applied twice changes nothing the second time; a file interrupted half-way is completed by applying it
again.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from tix import audit
from tix.catalog import invalidate_events
from tix.catalog_files import (
    CATEGORIES,
    CatalogFile,
    CatalogFileError,
    EventEntry,
    PerformerEntry,
    VenueEntry,
)
from tix.logs import get_logger

log = get_logger("tix.catalog_apply")

CHUNK = 500


@dataclass
class KindReport:
    created: int = 0
    updated: int = 0
    unchanged: int = 0

    def __str__(self) -> str:
        return f"{self.created} created, {self.updated} updated, {self.unchanged} unchanged"


@dataclass
class ApplyReport:
    venues: KindReport = field(default_factory=KindReport)
    performers: KindReport = field(default_factory=KindReport)
    events: KindReport = field(default_factory=KindReport)
    # Events whose cached pages could not be invalidated (Redis unreachable); they refresh when their entry expires.
    stale_caches: int = 0

    def summary(self) -> str:
        return f"venues: {self.venues}; performers: {self.performers}; events: {self.events}"


_VENUES = text(
    """
    WITH input AS (
        SELECT * FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS r(external_id text, name text, city text,
            region text, country_code text, latitude float8, longitude float8, time_zone text, layout text)
    )
    INSERT INTO venues AS t (external_id, name, city, region, country_code, latitude, longitude, time_zone,
                             layout_id, capacity)
    SELECT i.external_id, i.name, i.city, i.region, i.country_code, i.latitude, i.longitude, i.time_zone,
           i.layout, l.capacity
    FROM input i JOIN layouts l ON l.layout_id = i.layout
    ORDER BY i.external_id
    ON CONFLICT (external_id) DO UPDATE SET
        name = EXCLUDED.name, city = EXCLUDED.city, region = EXCLUDED.region, country_code = EXCLUDED.country_code,
        latitude = EXCLUDED.latitude, longitude = EXCLUDED.longitude, time_zone = EXCLUDED.time_zone,
        layout_id = EXCLUDED.layout_id, capacity = EXCLUDED.capacity
    WHERE (t.name, t.city, t.region, t.country_code, t.latitude, t.longitude, t.time_zone, t.layout_id, t.capacity)
        IS DISTINCT FROM (EXCLUDED.name, EXCLUDED.city, EXCLUDED.region, EXCLUDED.country_code, EXCLUDED.latitude,
                          EXCLUDED.longitude, EXCLUDED.time_zone, EXCLUDED.layout_id, EXCLUDED.capacity)
    RETURNING t.venue_id AS id, (xmax = 0) AS created
    """
)

_PERFORMERS = text(
    """
    WITH input AS (
        SELECT * FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS r(external_id text, name text, category int,
                                                                       genre text)
    )
    INSERT INTO performers AS t (external_id, name, category, genre)
    SELECT i.external_id, i.name, i.category, i.genre FROM input i
    ORDER BY i.external_id
    ON CONFLICT (external_id) DO UPDATE SET name = EXCLUDED.name, category = EXCLUDED.category, genre = EXCLUDED.genre
    WHERE (t.name, t.category, t.genre) IS DISTINCT FROM (EXCLUDED.name, EXCLUDED.category, EXCLUDED.genre)
    RETURNING t.performer_id AS id, (xmax = 0) AS created
    """
)

_EVENT_COLUMNS = (
    "name, description, category, venue_id, performer_id, starts_at, ends_at, sale_starts_at, sale_ends_at, "
    "cancelled, currency, tier_prices, max_seats_per_user, queue_enabled, queue_rate_per_second, queue_max_active"
)


def _columns(prefix: str) -> str:
    return ", ".join(f"{prefix}.{column.strip()}" for column in _EVENT_COLUMNS.split(","))


_EVENTS = text(
    f"""
    WITH input AS (
        SELECT * FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS r(external_id text, name text, description text,
            category int, venue text, performer text, starts_at timestamptz, ends_at timestamptz,
            sale_starts_at timestamptz, sale_ends_at timestamptz, cancelled boolean, currency text,
            tier_prices int[], max_seats_per_user int, queue_enabled boolean, queue_rate_per_second int,
            queue_max_active int)
    )
    INSERT INTO events AS t (external_id, {_EVENT_COLUMNS})
    SELECT i.external_id, i.name, i.description, coalesce(i.category, p.category), v.venue_id, p.performer_id,
           i.starts_at, i.ends_at, i.sale_starts_at, i.sale_ends_at, i.cancelled, i.currency, i.tier_prices,
           i.max_seats_per_user, i.queue_enabled, i.queue_rate_per_second, i.queue_max_active
    FROM input i
    JOIN venues v ON v.external_id = i.venue
    JOIN performers p ON p.external_id = i.performer
    ORDER BY i.external_id
    ON CONFLICT (external_id) DO UPDATE SET
        ({_EVENT_COLUMNS}, updated_at) = ({_columns("EXCLUDED")}, now())
    WHERE ({_columns("t")}) IS DISTINCT FROM ({_columns("EXCLUDED")})
    RETURNING t.event_id AS id, (xmax = 0) AS created
    """
)

_EVENTS_OF = text("SELECT event_id FROM events WHERE venue_id = ANY(:venues) OR performer_id = ANY(:performers)")


def _venue_row(entry: VenueEntry) -> dict[str, Any]:
    return entry.model_dump(mode="json")


def _performer_row(entry: PerformerEntry) -> dict[str, Any]:
    return {**entry.model_dump(mode="json"), "category": CATEGORIES[entry.category]}


def _event_row(entry: EventEntry) -> dict[str, Any]:
    row = entry.model_dump(mode="json", exclude={"queue"})
    row.update(
        category=CATEGORIES[entry.category] if entry.category else None,
        ends_at=entry.ends.isoformat(),
        queue_enabled=entry.queue.enabled,
        queue_rate_per_second=entry.queue.rate_per_second,
        queue_max_active=entry.queue.max_active,
    )
    return row


async def check_against_database(conn: AsyncConnection, catalog: CatalogFile, source: str) -> None:
    """What the file cannot say by itself: references and the seats that already exist. Raises CatalogFileError."""
    problems: list[str] = []
    layout_names = sorted({venue.layout for venue in catalog.venues})
    layouts = {
        row.layout_id: row.tier_count
        for row in await conn.execute(
            text("SELECT layout_id, tier_count FROM layouts WHERE layout_id = ANY(:ids)"), {"ids": layout_names}
        )
    }
    for index, venue in enumerate(catalog.venues):
        if venue.layout not in layouts:
            problems.append(f"venues[{index}].layout: no seat layout {venue.layout!r}")

    in_file_venues = {venue.external_id: venue for venue in catalog.venues}
    in_file_performers = {performer.external_id for performer in catalog.performers}
    wanted_venues = sorted({event.venue for event in catalog.events} | set(in_file_venues))
    wanted_performers = sorted({event.performer for event in catalog.events} - in_file_performers)
    stored_venues = {
        row.external_id: row
        for row in await conn.execute(
            text(
                "SELECT v.external_id, v.venue_id, v.layout_id, l.tier_count, "
                "EXISTS (SELECT 1 FROM events e WHERE e.venue_id = v.venue_id AND e.tickets_ready) AS seats_exist "
                "FROM venues v JOIN layouts l ON l.layout_id = v.layout_id WHERE v.external_id = ANY(:ids)"
            ),
            {"ids": wanted_venues},
        )
    }
    stored_performers = set(
        await conn.scalars(
            text("SELECT external_id FROM performers WHERE external_id = ANY(:ids)"), {"ids": wanted_performers}
        )
    )
    for index, venue in enumerate(catalog.venues):
        stored = stored_venues.get(venue.external_id)
        if stored is not None and stored.layout_id != venue.layout and stored.seats_exist:
            problems.append(
                f"venues[{index}].layout: events at this venue have seats already ({stored.layout_id!r}); "
                "a new layout needs a new venue"
            )

    stored_events = {
        row.external_id: row
        for row in await conn.execute(
            text(
                "SELECT e.external_id, v.external_id AS venue, e.tickets_ready FROM events e "
                "JOIN venues v ON v.venue_id = e.venue_id WHERE e.external_id = ANY(:ids)"
            ),
            {"ids": [event.external_id for event in catalog.events]},
        )
    }
    for index, event in enumerate(catalog.events):
        tiers: int | None = None
        if event.venue in in_file_venues:
            tiers = layouts.get(in_file_venues[event.venue].layout)
        elif event.venue in stored_venues:
            tiers = stored_venues[event.venue].tier_count
        else:
            problems.append(f"events[{index}].venue: no venue {event.venue!r} in the file or the catalog")
        if event.performer not in in_file_performers and event.performer not in stored_performers:
            problems.append(f"events[{index}].performer: no performer {event.performer!r} in the file or the catalog")
        if tiers is not None and len(event.tier_prices) < tiers:
            problems.append(
                f"events[{index}].tier_prices: the venue's layout has {tiers} price tiers, "
                f"{len(event.tier_prices)} price(s) given"
            )
        stored_event = stored_events.get(event.external_id)
        if stored_event is not None and stored_event.tickets_ready and stored_event.venue != event.venue:
            problems.append(
                f"events[{index}].venue: the event's seats exist at {stored_event.venue!r}; it cannot move"
            )
    if problems:
        raise CatalogFileError(source, problems)


def _chunks(rows: Sequence[Any], size: int) -> list[Sequence[Any]]:
    return [rows[i : i + size] for i in range(0, len(rows), size)]


async def apply_catalog(
    engine: AsyncEngine,
    redis: Redis | None,
    catalog: CatalogFile,
    *,
    source: str,
    actor: str,
    on_progress: Callable[[int], None] = lambda done: None,
    chunk: int = CHUNK,
) -> ApplyReport:
    """Check ``catalog`` against the database, then write it (see the module docstring)."""
    async with engine.connect() as conn:
        await check_against_database(conn, catalog, source)
    report = ApplyReport()
    plan: list[tuple[str, KindReport, Any, list[dict[str, Any]]]] = [
        ("venues", report.venues, _VENUES, [_venue_row(v) for v in catalog.venues]),
        ("performers", report.performers, _PERFORMERS, [_performer_row(p) for p in catalog.performers]),
        ("events", report.events, _EVENTS, [_event_row(e) for e in catalog.events]),
    ]
    for kind, kind_report, statement, rows in plan:
        for part in _chunks(rows, chunk):
            async with engine.begin() as conn:
                changed = (await conn.execute(statement, {"rows": json.dumps(list(part))})).all()
                created = sum(1 for row in changed if row.created)
                kind_report.created += created
                kind_report.updated += len(changed) - created
                kind_report.unchanged += len(part) - len(changed)
                event_ids: list[int] = []
                if changed:
                    ids = [row.id for row in changed]
                    if kind == "events":
                        event_ids = ids
                    else:
                        key = "venues" if kind == "venues" else "performers"
                        params = {"venues": [], "performers": [], key: ids}
                        event_ids = list(await conn.scalars(_EVENTS_OF, params))
                    await audit.record(
                        conn, actor=actor, action=f"catalog.apply.{kind}", target=f"catalog-file:{source}",
                        details={"created": created, "updated": len(changed) - created},
                    )
            report.stale_caches += await _invalidate(redis, event_ids)
            on_progress(len(part))
    log.info("catalog_applied", source=source, actor=actor, summary=report.summary())
    return report


async def _invalidate(redis: Redis | None, event_ids: list[int]) -> int:
    """Tell the event service's caches (after the commit); the number of events it could not tell."""
    if redis is None or not event_ids:
        return len(event_ids) if redis is None else 0
    try:
        await invalidate_events(redis, event_ids)
    except (RedisError, OSError) as error:
        log.warning("catalog_cache_invalidation_failed", events=len(event_ids), error=repr(error))
        return len(event_ids)
    return 0
