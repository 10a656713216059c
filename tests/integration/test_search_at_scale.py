"""The PostgreSQL search backend on the seeded catalog (40,000 events in a database of this module's own, with the
planner's statistics of the documents scaled to a million events): every query kind walks an index and stops at the
page (EXPLAIN: no sequential scan of the search documents, no sort of the whole match set), and a judged relevance
set finds what a fan meant."""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from search_svc import postgres as search_postgres
from search_svc.domain import GeoFilter, SearchPage, SearchQuery, SuggestQuery
from search_svc.postgres import (
    _SUGGEST_EVENTS,
    PostgresSearchBackend,
    _suggest_cities_sql,
    _suggest_performers_sql,
    _suggest_venues_sql,
    suggest_params,
)
from tests.conftest import PG_BASE
from tix.db import create_engine, drop_database, ensure_database
from tix.migrate import upgrade
from tix.settings import TixSettings
from tix_dev.seed import seed_catalog

EVENTS = 40_000
NEW_YORK = (40.7128, -74.0060)


@pytest.fixture(scope="module")
def catalog_url() -> Iterator[str]:
    url = f"{PG_BASE}/tix_search_scale_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    asyncio.run(ensure_database(url))
    upgrade(url)
    asyncio.run(seed_catalog(url, events=EVENTS, seed=42, progress=False))
    asyncio.run(_as_if_a_million(url))
    yield url
    asyncio.run(drop_database(url))


async def _as_if_a_million(url: str) -> None:
    """The planner estimates rows as pg_class.reltuples per page times the pages on disk: scaling reltuples makes
    it plan the seeded table as it would plan a million events (the column statistics are fractions and hold)."""
    eng = create_engine(TixSettings(), pool_size=1, url=url)
    async with eng.begin() as conn:
        await conn.execute(text("ALTER TABLE search_documents SET (autovacuum_enabled = false)"))
        await conn.execute(
            text(
                "UPDATE pg_class SET reltuples = reltuples * :scale WHERE oid = 'search_documents'::regclass"
                " OR oid IN (SELECT indexrelid FROM pg_index WHERE indrelid = 'search_documents'::regclass)"
            ),
            {"scale": 1_000_000 / EVENTS},
        )
    await eng.dispose()


@pytest.fixture
async def engine(catalog_url: str) -> AsyncIterator[AsyncEngine]:
    eng = create_engine(TixSettings(), pool_size=2, url=catalog_url)
    yield eng
    await eng.dispose()


def query(**fields: Any) -> SearchQuery:
    base: dict[str, Any] = {
        "text": "", "start_time": None, "end_time": None, "city": "", "geo": None, "performer": "", "category": 0,
        "limit": 20,
    }
    return SearchQuery(**{**base, **fields})


async def names_of(engine: AsyncEngine, sql: str) -> list[str]:
    async with engine.connect() as conn:
        return list(await conn.scalars(text(sql)))


# --- plan shapes -------------------------------------------------------------------------------------------------


def _nodes(node: dict[str, Any], path: tuple[dict[str, Any], ...] = ()) -> Iterator[tuple[dict, tuple]]:
    yield node, path
    for child in node.get("Plans", ()):
        yield from _nodes(child, (*path, node))


def _bounded(node: dict[str, Any]) -> bool:
    """A sort's input is bounded when every read of the documents below it is under a LIMIT (a CTE scan reads a
    CTE, each of which has one). Sorting a few thousand venues is not sorting the match set."""
    for child in node.get("Plans", ()):
        if child["Node Type"] in ("Limit", "CTE Scan"):
            continue
        if child.get("Relation Name") == "search_documents" or child.get("Index Name", "").startswith(
            "ix_search_documents"
        ):
            return False
        if not _bounded(child):
            return False
    return True


def assert_bounded_plan(plan: dict[str, Any], label: str) -> None:
    """No sequential scan of the documents, except right below a LIMIT (the cap of a count or of the keyword
    candidates) where the planner expects most rows to match ("the", no filter) and the scan stops at the cap; no
    unbounded sort."""
    for node, path in _nodes(plan):
        relation = node.get("Relation Name")
        if path and path[-1]["Node Type"] == "Limit":
            continue
        assert not (node["Node Type"] == "Seq Scan" and relation == "search_documents"), (
            f"{label}: sequential scan of the search documents\n{json.dumps(plan, indent=1)[:3000]}"
        )
        if node["Node Type"] == "Sort":
            assert _bounded(node), f"{label}: sorts the whole match set\n{json.dumps(plan, indent=1)[:3000]}"


def assert_combined(plan: dict[str, Any], needles: tuple[str, ...], label: str) -> None:
    """A combination of filters is served by indexes together: the read of the documents that can match most (the
    whole-document GIN index of a keyword query, or the filter's ordered index) carries each of the ``needles``
    (e.g. the window's end, the radius's venues) in an index condition (a BitmapAnd of the keyword's bitmap with
    the filter's btree), not as a filter on rows already read, so its bounded read holds only rows that match the
    whole query. (The names tiers may filter: few names hold a genre word, and the planner reads those few.)"""
    scans = 0
    for node, _ in _nodes(plan):
        if node.get("Relation Name") != "search_documents":
            continue
        indexes = {child.get("Index Name", "") for child, _ in _nodes(node)}
        if node.get("Index Name", "") != "" or "ix_search_documents_document" in indexes or not any(
            index.startswith("ix_search_documents_names") for index in indexes
        ):
            scans += 1
            conditions = " ".join(str(node.get(key, "")) for key in ("Index Cond", "Recheck Cond"))
            for needle in needles:
                served = needle in conditions and needle not in str(node.get("Filter", ""))
                assert served, (
                    f"{label}: {needle!r} filters rows read instead of choosing them\n"
                    f"{json.dumps(plan, indent=1)[:4000]}"
                )
    assert scans, f"{label}: no read of the documents by the whole-document or the filter's index"


async def explain(engine: AsyncEngine, sql: str, params: dict[str, Any]) -> dict[str, Any]:
    async with engine.connect() as conn:
        raw = await conn.scalar(text(f"EXPLAIN (FORMAT JSON) {sql}"), params)
    return (raw if isinstance(raw, list) else json.loads(raw))[0]["Plan"]


async def test_every_query_kind_walks_an_index_and_stops_at_the_page(engine):
    backend = PostgresSearchBackend(engine)
    now = datetime.now(UTC)
    performer_name, venue_name, city_name = [
        (await names_of(engine, sql))[0]
        for sql in (
            "SELECT p.name FROM performers p JOIN events e USING (performer_id) GROUP BY p.name "
            "ORDER BY count(*) DESC LIMIT 1",
            "SELECT v.name FROM venues v JOIN events e USING (venue_id) GROUP BY v.name ORDER BY count(*) DESC "
            "LIMIT 1",
            "SELECT v.city FROM venues v GROUP BY v.city ORDER BY count(*) DESC LIMIT 1",
        )
    ]
    word = performer_name.split()[-1].lower()
    kinds = {
        "upcoming": query(),
        "category": query(category=2),
        "city": query(city=city_name),
        "performer": query(performer=performer_name),
        "performer + dates": query(performer=performer_name, start_time=now, end_time=now + timedelta(days=180)),
        "city + category": query(city=city_name, category=1),
        "venue": query(venue=venue_name),
        "date window": query(start_time=now + timedelta(days=30), end_time=now + timedelta(days=60)),
        "radius": query(geo=GeoFilter(*NEW_YORK, 50.0)),
        "radius + category": query(geo=GeoFilter(*NEW_YORK, 50.0), category=1),
        "point": query(geo=GeoFilter(*NEW_YORK, None)),
        "word": query(text=word),
        "typo": query(text=word[:2] + word[3:] if len(word) > 4 else word + "x"),
        "words": query(text=performer_name),
        "word + city": query(text=word, city=city_name),
        "word + radius": query(text="rock", geo=GeoFilter(*NEW_YORK, 50.0)),
        "genre word + 30 days": query(text="rock", start_time=now, end_time=now + timedelta(days=30)),
        "common word": query(text="the"),
        "phrase and exclusion": query(text=f'"{performer_name}" -{city_name.split()[0]}'),
        "category + date window": query(category=1, start_time=now + timedelta(days=30),
                                        end_time=now + timedelta(days=60)),
        "word + category": query(text="rock", category=1),
        "genre word + category + 30 days": query(text="rock", category=1, start_time=now,
                                                 end_time=now + timedelta(days=30)),
    }
    # Combinations with a selective filter (a window, a radius, a city; not a category, which holds a fifth of the
    # catalog and most of a genre's events): the filter is an index condition of the big read (see assert_combined).
    combined = {
        "genre word + 30 days": ("starts_at <",),
        "category + date window": ("starts_at <", "category ="),
        "word + radius": ("venue_id = ANY",),
        "word + city": ("lower(city)",),
        "genre word + category + 30 days": ("starts_at <",),
    }
    for label, q in kinds.items():
        page: SearchPage = await backend.search(q)
        assert page.hits, f"{label}: nothing found, the plan would prove nothing"
        async with engine.connect() as conn:
            statement = await backend.statement(conn, q)
        plan = await explain(engine, statement.sql, statement.params)
        assert_bounded_plan(plan, label)
        if label in combined:
            assert_combined(plan, combined[label], label)
        if statement.count_sql:
            count_params = {**statement.params, "cap": 1_000}
            count_plan = await explain(engine, statement.count_sql, count_params)
            assert_bounded_plan(count_plan, f"{label} (count)")
        if page.cursor:
            deep = q
            for _ in range(3):  # a few pages in: the keyset condition, not an offset
                deep = SearchQuery(**{**deep.__dict__, "after": page.cursor, "offset": deep.offset + len(page.hits),
                                      "total": page.total_size})
                page = await backend.search(deep)
                if not page.cursor:
                    break
            async with engine.connect() as conn:
                statement = await backend.statement(conn, deep)
            assert "OFFSET" not in statement.sql.upper()
            assert_bounded_plan(await explain(engine, statement.sql, statement.params), f"{label} (deep page)")

    for typed in ("ta", "tay", "swi", "madisn", "new yo", "chica"):
        params = suggest_params(SuggestQuery(typed, 5))
        typo = len(typed) >= 3
        for sql in (_suggest_performers_sql(typo), _suggest_venues_sql(typo), _suggest_cities_sql(typo)):
            plan = await explain(engine, sql, params)
            assert_bounded_plan(plan, f"suggest {typed!r}")
        plan = await explain(engine, str(_SUGGEST_EVENTS), {"performer_ids": [1, 2], "venue_ids": [3], "limit": 5})
        assert_bounded_plan(plan, "suggested events")


async def test_the_first_page_of_a_list_counts_its_matches_from_an_index_alone(engine):
    """A list's first page counts up to 1,000 matches. Each count reads only its index (no heap page): the city's too,
    whose index is on lower(city) and so held city beside it for PostgreSQL to use it alone (migration
    0015_search_city_index_only; before, the count read a heap page per match)."""
    backend = PostgresSearchBackend(engine)
    city_name = (await names_of(engine, "SELECT v.city FROM venues v GROUP BY v.city ORDER BY count(*) DESC LIMIT 1"))[0]
    for label, q in {"upcoming": query(), "category": query(category=2), "city": query(city=city_name)}.items():
        async with engine.connect() as conn:
            statement = await backend.statement(conn, q)
        assert statement.count_sql is not None
        plan = await explain(engine, statement.count_sql, {**statement.params, "cap": 1_000})
        reads = [node for node, _ in _nodes(plan) if node.get("Relation Name") == "search_documents"]
        assert reads, label
        assert all(node["Node Type"] == "Index Only Scan" for node in reads), f"{label}\n{json.dumps(plan, indent=1)}"


async def test_a_suggestion_ranks_a_bounded_number_of_names_however_common_the_word_typed(engine):
    """"the" starts or is a word of thousands of performers' names (and its trigrams are in all of them): each tier
    of a suggestion reads a bounded number of names, and only near spellings are ranked by similarity, so typing it
    costs what typing a rare word does (it sorted and compared all of them: ~50 ms at a million events)."""
    common = await names_of(
        engine, "SELECT name FROM performers WHERE lower(name) LIKE 'the %' OR lower(name) LIKE '% the %'"
    )
    bound = 2 * search_postgres.TIER_CANDIDATES + search_postgres.FUZZY_CANDIDATES
    assert len(common) > 2 * search_postgres.TIER_CANDIDATES  # enough "The ..." names for the bounds to matter
    for typed in ("the", "the rh", "the ma", "xyz the"):
        params = suggest_params(SuggestQuery(typed, 5))
        async with engine.connect() as conn:
            await conn.execute(text("SELECT set_config('pg_trgm.word_similarity_threshold', '0.5', true)"))
            raw = await conn.scalar(text(f"EXPLAIN (ANALYZE, FORMAT JSON) {_suggest_performers_sql(True)}"), params)
        plan = (raw if isinstance(raw, list) else json.loads(raw))[0]["Plan"]
        sorts = [node for node, _ in _nodes(plan) if node["Node Type"] == "Sort"]
        ranked = max(sum(child["Actual Rows"] for child in node.get("Plans", ())) for node in sorts)
        assert ranked <= min(bound, len(common) - 1), f"suggest {typed!r} ranked {ranked} names\n" + json.dumps(
            plan, indent=1
        )[:3000]


# --- relevance -----------------------------------------------------------------------------------------------------

# Judged queries over the seeded catalog (seed 42; names do not depend on the day it is seeded): what a fan typed,
# and the performer, venue or city of an event that must be among the first three results.
JUDGED = (
    ("exact", "Ruby Fischer", "performer", "Ruby Fischer"),
    ("exact", "Palace of Palaces", "performer", "Palace of Palaces"),
    ("exact", "Elijah Patel", "performer", "Elijah Patel"),
    ("exact", "Nico Baptiste", "performer", "Nico Baptiste"),
    ("exact", "Ruby Patel", "performer", "Ruby Patel"),
    ("exact", "Oscar Carter", "performer", "Oscar Carter"),
    ("exact", "Omar Khan", "performer", "Omar Khan"),
    ("exact", "DJ Bear", "performer", "DJ Bear"),
    ("exact", "Iris Fox", "performer", "Iris Fox"),
    ("exact", "Broken Comet", "performer", "Broken Comet"),
    ("exact", "Falling Carnival Club", "performer", "Falling Carnival Club"),
    ("exact", "Abel Brooks & the Strangers", "performer", "Abel Brooks & the Strangers"),
    ("partial", "stingrays", "performer", "Edmonton Stingrays"),
    ("partial", "blaze", "performer", "New York City Blaze"),
    ("partial", "dolphins", "performer", "Rising Dolphins on Ice"),
    ("partial", "diamond37", "performer", "Diamond37"),
    ("partial", "penguins", "performer", "Drifting Penguins on Ice"),
    ("partial", "zebra", "performer", "The Zebra and the Galaxy"),
    ("partial", "stranger50", "performer", "Stranger50"),
    ("partial", "orcas", "performer", "Sheffield Orcas"),
    ("misspelled", "Rising dolhins on Ice", "performer", "Rising Dolphins on Ice"),
    ("misspelled", "diaond37", "performer", "Diamond37"),
    ("misspelled", "Drifting penuins on Ice", "performer", "Drifting Penguins on Ice"),
    ("misspelled", "strnger50", "performer", "Stranger50"),
    ("misspelled", "Whispering elehants on Ice", "performer", "Whispering Elephants on Ice"),
    ("misspelled", "The Painted saiors", "performer", "The Painted Sailors"),
    ("misspelled", "vipr65", "performer", "Viper65"),
    ("venue", "The Burning Theater", "venue", "The Burning Theater"),
    ("venue", "Florence Opera House", "venue", "Florence Opera House"),
    ("venue", "The Painted Theatre", "venue", "The Painted Theatre"),
    ("venue", "Mexico City Playhouse", "venue", "Mexico City Playhouse"),
    ("venue", "Union Health Field", "venue", "Union Health Field"),
    ("venue", "Rhodes Hall", "venue", "Rhodes Hall"),
    ("city", "Rome", "city", "Rome"),
    ("city", "Osaka", "city", "Osaka"),
    ("city", "Fortaleza", "city", "Fortaleza"),
    ("city", "Berlin", "city", "Berlin"),
    ("city", "Los Angeles", "city", "Los Angeles"),
    ("multi-word", "stuttgart opera", "venue", "Stuttgart Opera House"),
    ("multi-word", "abel brooks strangers", "performer", "Abel Brooks & the Strangers"),
    ("multi-word", "burning theater", "venue", "The Burning Theater"),
    ("multi-word", "comet broken", "performer", "Broken Comet"),
)


# The relevance set runs against every backend: PostgreSQL always; Elasticsearch when TIX_TEST_ELASTICSEARCH_URL
# points at a cluster (none can be installed on the machines this project is developed on: there it skips, saying so).
ES_URL = os.environ.get("TIX_TEST_ELASTICSEARCH_URL", "")
NO_ES = (
    "no Elasticsearch server: TIX_TEST_ELASTICSEARCH_URL is unset (none can be installed on this machine); "
    "the relevance set is not run against the Elasticsearch backend"
)


@pytest.fixture(params=["postgres", pytest.param("elasticsearch", marks=pytest.mark.skipif(not ES_URL, reason=NO_ES))])
async def search_backend(request, engine) -> AsyncIterator[Any]:
    """The seeded catalog behind each backend: the PostgreSQL documents, or an Elasticsearch index built from them
    by ``reindex`` (the same bulk build ``tix search reindex`` runs)."""
    if request.param == "postgres":
        yield PostgresSearchBackend(engine)
        return
    from search_svc.es_backend import ElasticsearchSearchBackend, open_client, reindex

    alias = f"tix-test-relevance-{uuid.uuid4().hex[:10]}"
    client = open_client(ES_URL, 60)
    try:
        await reindex(client, engine, alias, replay_from_snapshot=False)
        yield ElasticsearchSearchBackend(client, alias)
    finally:
        found = await client.indices.get(index=f"{alias}-*", allow_no_indices=True, ignore_unavailable=True)
        for index in found.body:  # by name: clusters refuse wildcard deletes by default
            await client.indices.delete(index=index, ignore_unavailable=True)
        if (await client.indices.exists_index_template(name=f"{alias}-template")).body:
            await client.indices.delete_index_template(name=f"{alias}-template")
        await client.close()


async def test_the_judged_queries_find_what_was_meant_in_the_first_three(search_backend):
    backend = search_backend
    misses = []
    for kind, typed, field_, intended in JUDGED:
        page = await backend.search(query(text=typed, limit=3))
        # A team's away games are theirs too: "Charlotte Monarchs vs New York City Blaze" is a Blaze game.
        found = [
            {"performer": hit.performer.name, "venue": hit.venue.name, "city": hit.venue.city}[field_]
            for hit in page.hits
        ]
        names = [hit.name for hit in page.hits]
        if intended not in found and not (field_ == "performer" and any(intended in name for name in names)):
            misses.append(f"{kind} {typed!r}: wanted {field_} {intended!r}, got {found}")
    assert len(JUDGED) >= 40
    assert not misses, "\n".join(misses)


async def test_a_word_being_typed_stands_for_its_few_known_completions(engine, monkeypatch):
    """'stingray' (no such word) is being typed: it matches the known words it begins, as words (cheaper for GIN than
    a prefix, the same documents); a prefix with many completions stays a prefix."""
    backend = PostgresSearchBackend(engine)
    async with engine.connect() as conn:
        few = await backend.text_plan(conn, "stingray")
        # "the": the, theater, theatre, theo in this catalog; more than one completion allowed here.
        monkeypatch.setattr(search_postgres, "MAX_COMPLETIONS", 1)
        many = await backend.text_plan(conn, "the")
    assert few.prefix == "stingray"
    assert few.completions == ("stingrays",)
    assert many.prefix == "the"
    assert many.completions == ()
    page = await backend.search(query(text="stingray", limit=5))
    assert page.hits
    assert all("Stingrays" in hit.name for hit in page.hits)


async def test_a_keyword_query_is_planned_for_its_own_words_when_asked_again(catalog_url):
    """psycopg prepares a statement asked five times on a connection, and PostgreSQL may then plan it once for any
    words; for keyword queries that generic plan cost 25-50% more at a million events. Asked again and again, a
    keyword search is planned for its words every time."""
    one = create_engine(TixSettings(), pool_size=1, url=catalog_url)
    backend = PostgresSearchBackend(one)
    try:
        for words in ["rock", "comedy", "jazz", "opera", "soccer", "tour", "live", "city"] * 2:
            await backend.search(query(text=words, limit=5))
            await backend.search(query(limit=5))
            await backend.suggest(SuggestQuery(words[:3], 5))  # a fan typing on the same connection keeps them too
        async with one.connect() as conn:
            plans = (await conn.execute(text("SELECT statement, generic_plans, custom_plans FROM pg_prepared_statements"))).all()
    finally:
        await one.dispose()
    keyword = [row for row in plans if "tier2" in row.statement]
    by_date = [row for row in plans if "tier2" not in row.statement and "ORDER BY d.starts_at" in row.statement]
    # Both were prepared (parsed once on the connection: a search's or a suggestion's COMMIT keeps them, a ROLLBACK
    # would not).
    assert keyword, plans
    assert by_date, plans
    assert all(row.generic_plans == 0 and row.custom_plans >= 10 for row in keyword), keyword


async def test_common_words_rank_but_do_not_match_beside_a_rarer_word(engine):
    """"the" is in a third of all names: matching it made GIN read its whole posting list in every tier. Beside a
    rarer word it only ranks (the name with it first); alone, in a phrase or negated it still matches."""
    backend = PostgresSearchBackend(engine)
    name = (await names_of(engine, "SELECT name FROM performers WHERE name LIKE 'The % %' ORDER BY name LIMIT 1"))[0]
    async with engine.connect() as conn:
        plan = await backend.text_plan(conn, name + " ")
        alone = await backend.text_plan(conn, "the of ")
        phrase = await backend.text_plan(conn, f'"{name}" ')
        negated = await backend.text_plan(conn, "magic -the ")
        statement = await backend.statement(conn, query(text=name + " "))
    assert "the" not in plan.web.split()
    assert plan.rank_web.split() == name.lower().split()
    assert alone.web.split() == ["the", "of"]
    assert phrase.web.strip() == f'"{name.lower()}"'
    assert negated.web.split() == ["magic", "-the"]
    index_conditions = [
        node.get("Index Cond", "") for node, _ in _nodes(await explain(engine, statement.sql, statement.params))
    ]
    assert index_conditions
    assert not any("'the'" in condition for condition in index_conditions), index_conditions
    page = await backend.search(query(text=name + " ", limit=5))
    assert page.hits
    assert name in page.hits[0].name


@pytest.mark.parametrize("candidates", [1_000, 5])
async def test_a_narrow_query_reads_its_matches_once_and_ranks_them_as_the_tiers_would(engine, monkeypatch, candidates):
    """Two words, or a word and a city, usually match fewer documents than the bound: one read of the
    whole-document index finds them all and ranks each by its tier. The pages are the ones the tiered reads give,
    also when the matches are more than the bound (5 here: the read is spent and the tiers read as before)."""
    performers = await names_of(engine, "SELECT name FROM performers WHERE name LIKE '% %' ORDER BY name LIMIT 4")
    city = (await names_of(engine, "SELECT v.city FROM venues v GROUP BY v.city ORDER BY count(*) DESC LIMIT 1"))[0]
    queries = [query(text=name, limit=10) for name in performers]
    queries += [query(text=name.split()[-1], city=city, limit=10) for name in performers]
    queries += [query(text=f"{performers[0].split()[-1]} -{city.split()[0]}", limit=10)]
    backend = PostgresSearchBackend(engine, candidates=candidates)
    narrow = [await backend.search(q) for q in queries]
    async with engine.connect() as conn:
        statement = await backend.statement(conn, queries[0])
    assert "complete AS MATERIALIZED" in statement.sql
    async with engine.connect() as conn:
        raw = await conn.scalar(text(f"EXPLAIN (ANALYZE, FORMAT JSON) {statement.sql}"), statement.params)
    analyzed = (raw if isinstance(raw, list) else json.loads(raw))[0]["Plan"]
    tier_reads = {
        node["Subplan Name"]: max(
            child.get("Actual Loops", 0) for child, _ in _nodes(node) if child.get("Relation Name") == "search_documents"
        )
        for node, _ in _nodes(analyzed) if node.get("Subplan Name", "").startswith("CTE tier")
    }
    # All found by the one read (no tier read the documents), or more than the bound (the best tier did).
    if candidates > 5:
        assert set(tier_reads.values()) == {0}, tier_reads
    else:
        assert tier_reads["CTE tier2"] == 1, tier_reads
    monkeypatch.setattr(search_postgres, "_narrow", lambda query, plan: False)
    async with engine.connect() as conn:
        assert "complete AS" not in (await backend.statement(conn, queries[0])).sql
    tiered = [await backend.search(q) for q in queries]
    for q, one, other in zip(queries, narrow, tiered, strict=True):
        assert [hit.event_id for hit in one.hits] == [hit.event_id for hit in other.hits], q.text
        assert one.total_size == other.total_size, q.text
        assert one.hits or q.text.count("-"), q.text
