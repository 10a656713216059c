"""`tix seed` against the real PostgreSQL: reproducible catalogs, searchable documents, empty-catalog rules."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.factories import empty_catalog
from tix_dev.catalog_layouts import build_layouts
from tix_dev.seed import CatalogNotEmpty, seed_catalog

ANCHOR = datetime(2027, 3, 1, tzinfo=UTC)

# Every column the seed writes (updated_at is the load time, not catalog content).
CATALOG_HASH = text(
    """
    SELECT md5(string_agg(row_text, E'\\n' ORDER BY kind, id)) FROM (
        SELECT 1 AS kind, venue_id AS id,
               concat_ws('|', venue_id, name, city, region, country_code, latitude, longitude, time_zone,
                         layout_id, capacity) AS row_text FROM venues
        UNION ALL
        SELECT 2, performer_id, concat_ws('|', performer_id, name, category, genre) FROM performers
        UNION ALL
        SELECT 3, event_id, concat_ws('|', event_id, name, description, category, venue_id, performer_id,
                         starts_at, ends_at, sale_starts_at, cancelled, currency, tier_prices, max_seats_per_user,
                         queue_enabled, queue_rate_per_second, queue_max_active, tickets_ready) FROM events
    ) AS catalog
    """
)


async def test_the_same_seed_gives_the_same_catalog_row_for_row(db: AsyncEngine, database_url: str):
    first = await seed_catalog(database_url, events=200, seed=42, progress=False, anchor=ANCHOR)
    async with db.connect() as conn:
        first_hash = await conn.scalar(CATALOG_HASH)
    await empty_catalog(db)
    again = await seed_catalog(database_url, events=200, seed=42, progress=False, anchor=ANCHOR)
    async with db.connect() as conn:
        assert await conn.scalar(CATALOG_HASH) == first_hash
    await empty_catalog(db)
    await seed_catalog(database_url, events=200, seed=7, progress=False, anchor=ANCHOR)
    async with db.connect() as conn:
        assert await conn.scalar(CATALOG_HASH) != first_hash
    assert (
        (first.events, first.venues, first.performers)
        == (again.events, again.venues, again.performers)
        == (200, first.venues, first.performers)
    )
    assert (
        first.venues > 500
    )
    assert (
        first.performers >= 1_500
    )
    assert (
        set(first.seconds) >= {"events", "search documents"}
    )


async def test_layouts_are_stored_with_every_seat_and_survive_a_reseed(db: AsyncEngine, database_url: str):
    await seed_catalog(database_url, events=10, progress=False, anchor=ANCHOR)
    await empty_catalog(db)
    await seed_catalog(database_url, events=10, progress=False, anchor=ANCHOR)
    async with db.connect() as conn:
        stored = dict(
            (
                await conn.execute(
                    text(
                        "SELECT l.layout_id, count(s.seat_id) FROM layouts l JOIN layout_seats s USING (layout_id) "
                        "WHERE l.layout_id = ANY(:ids) AND l.capacity = (SELECT count(*) FROM layout_seats x "
                        "WHERE x.layout_id = l.layout_id) GROUP BY 1"
                    ),
                    {"ids": [layout.layout_id for layout in build_layouts()]},
                )
            ).all()
        )
        venues_without_layout = await conn.scalar(
            text(
                "SELECT count(*) FROM venues v JOIN layouts l USING (layout_id) WHERE v.capacity <> l.capacity"
            )
        )
    assert stored == {layout.layout_id: layout.capacity for layout in build_layouts()}
    assert venues_without_layout == 0


async def test_every_event_has_a_search_document_that_finds_its_performer(db: AsyncEngine, database_url: str):
    report = await seed_catalog(database_url, events=200, progress=False, anchor=ANCHOR)
    assert report.search_documents == 200
    async with db.connect() as conn:
        counts = (
            await conn.execute(
                text(
                    "SELECT (SELECT count(*) FROM events), (SELECT count(*) FROM search_documents), "
                    "(SELECT count(*) FROM events WHERE tickets_ready), (SELECT count(*) FROM tickets)"
                )
            )
        ).one()
        assert counts == (200, 200, 0, 0)  # tickets are materialised lazily, never by the seed
        performer, event_id = (
            await conn.execute(
                text(
                    "SELECT p.name, e.event_id FROM events e JOIN performers p USING (performer_id) "
                    "WHERE e.category = 1 ORDER BY e.event_id LIMIT 1"
                )
            )
        ).one()
        found = (
            await conn.scalars(
                text(
                    "SELECT event_id FROM search_documents "
                    "WHERE document @@ websearch_to_tsquery('simple', :q) ORDER BY ts_rank(document, websearch_to_tsquery("
                    "'simple', :q)) DESC"
                ),
                {"q": performer},
            )
        ).all()
        assert event_id in found
        # The trigram text forgives a typo in the performer's name.
        typo = performer[:3] + performer[4:]
        close = (
            await conn.scalars(
                text("SELECT event_id FROM search_documents WHERE word_similarity(:q, search_text) > 0.5"),
                {"q": typo.lower()},
            )
        ).all()
        assert event_id in close
        # Documents agree with the catalog they were derived from.
        mismatched = await conn.scalar(
            text(
                "SELECT count(*) FROM search_documents d JOIN events e USING (event_id) JOIN venues v ON v.venue_id = e.venue_id "
                "WHERE d.name <> e.name OR d.city <> v.city OR d.starts_at <> e.starts_at "
                "OR d.min_price_minor <> e.tier_prices[cardinality(e.tier_prices)]"
            )
        )
        assert mismatched == 0


async def test_if_empty_leaves_an_existing_catalog_alone(db: AsyncEngine, database_url: str):
    await seed_catalog(database_url, events=50, progress=False, anchor=ANCHOR)
    report = await seed_catalog(database_url, events=80, seed=9, if_empty=True, progress=False, anchor=ANCHOR)
    assert report.skipped
    assert report.events == 0
    async with db.connect() as conn:
        assert await conn.scalar(text("SELECT count(*) FROM events")) == 50


async def test_seeding_a_catalog_that_has_events_is_refused(db: AsyncEngine, database_url: str):
    await seed_catalog(database_url, events=20, progress=False, anchor=ANCHOR)
    with pytest.raises(CatalogNotEmpty, match="not empty"):
        await seed_catalog(database_url, events=20, progress=False, anchor=ANCHOR)
    async with db.connect() as conn:
        assert await conn.scalar(text("SELECT count(*) FROM events")) == 20


async def test_if_empty_seeds_an_empty_catalog(db: AsyncEngine, database_url: str):
    report = await seed_catalog(database_url, events=30, if_empty=True, progress=False, anchor=ANCHOR)
    assert not report.skipped
    assert report.events == 30
    assert "30 events" in report.summary()
