"""The PostgreSQL search backend: every query kind walks one index and stops at the page, at a million events.

How each kind stays bounded (the indexes are in migration 0009_searchpg_search_at_scale):

- **Soonest first** (no keywords, no point): one ordered index per leading filter, ``(starts_at, event_id)``
  behind ``category`` or ``lower(city)``, or none; performers and venues are resolved to ids through their own
  tables (``lower(name)``), then each id's events come from ``(performer_id | venue_id, starts_at, event_id)`` in a
  LATERAL that stops at the page, and only those few rows are merged.
- **Nearest first** (a point, with or without a radius): venues nearest first from their GiST index (a few
  thousand rows at most, radius as an indexed box), then each venue's soonest events as above, until the page is
  full. All events of a venue share its distance, so ties are soonest first.
- **Keywords**: the words are checked against ``search_terms`` (every word of every document): a known word stays,
  the last word matches as a prefix while it is being typed, a misspelt word becomes the nearest known word by
  trigram similarity (GIN over tens of thousands of words, not a million documents). Common words ("the", "of":
  STOP_WORDS) beside a rarer word only rank, they do not match (GIN would read their whole posting lists). Then
  one full-text match (``websearch_to_tsquery`` semantics: phrases, ``-word``, ``or``) reads at most
  ``candidates`` matching documents, best tier first, each tier through its own GIN index (migration
  0014_search_relevance_tiers): those whose names match, then names and places, then anywhere (the description
  too). So the bounded candidate set holds the best matches, not the first found. A selective filter (a window, a
  radius's venues, a city) joins the tier's bitmap through its btree index (BitmapAnd), so the rows read all
  match. Candidates rank by tier, then ``ts_rank_cd`` (names over places over descriptions); the page comes from
  those; ties soonest first. A narrow
  query (two words that must all match, or a city) usually has fewer matches than the bound: it reads them all
  at once through the whole-document index and ranks each by its tier, and only when they are more do the tiers
  read (each tier's read of a common word built its bitmap anew: three for one answer).
- **Paging** is keyset: the cursor is the sort key of the page's last hit (``[rank,] [distance,] starts_at,
  event_id``) and the next page starts strictly after it, through the same index; no OFFSET anywhere.
- **Counting** stops at EXACT_TOTAL and happens on the first page only (later pages repeat it); a keyword query's
  total is its candidates. A list's count reads its ordered index alone (the city index carries ``city`` for that:
  migration 0015_search_city_index_only).

Events that already started are left out unless the query's start_time reaches back to them.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from search_svc.domain import (
    EXACT_TOTAL,
    CitySuggestion,
    SearchHit,
    SearchPage,
    SearchQuery,
    Suggestions,
    SuggestQuery,
)
from tix.availability import AvailabilityBand
from tix.catalog import Performer, Venue, venue_and_performer
from tix.errors import InvalidArgument

# Documents a keyword query ranks at most: the bound on its work, whatever the words (and its exact total).
TEXT_CANDIDATES = EXACT_TOTAL
# A prefix shorter than this would expand to most of the vocabulary.
MIN_PREFIX = 3
# A word being typed with at most this many known completions is matched as those words ('rock' | 'rocket'), not as
# a prefix ('rock':*): the same documents, but a prefix makes GIN merge its matches in a bitmap, ~3x the work of
# exact words (a genre word over a million events: ~50 ms against ~160 ms).
MAX_COMPLETIONS = 8
# Words in so many documents that matching them costs more than it narrows ("the" is in a third of all names; GIN
# reads its whole posting list to intersect it): beside a rarer word of the query they only rank, like
# Elasticsearch's common terms. A query of nothing but these ("The The", a band) matches them all.
STOP_WORDS = frozenset({"the", "a", "an", "and", "of", "in", "at", "on", "to", "for", "with", "by", "vs"})
_LEXEME = re.compile(r"^[^\W_]+$")
_WORDS = re.compile(r"[^\W_]+")
_BIGINT_MAX = 2**63 - 1
# Above every character: 'abc' <= term < 'abc' || _TOP is "term starts with abc" in byte order (COLLATE "C").
_TOP = "\U0010ffff"
_POINT = "ll_to_earth(:latitude, :longitude)"
_VENUE_POINT = "ll_to_earth(v.latitude, v.longitude)"

# Loosened from pg_trgm's defaults (0.3, 0.6): "tailor" finds "taylor", "metalica" finds "metallica".
_TRIGRAM_SETTINGS = (
    "set_config('pg_trgm.similarity_threshold', '0.3', true), "
    "set_config('pg_trgm.word_similarity_threshold', '0.5', true)"
)
# A keyword query: the limits, and a plan for its own words every time. psycopg prepares a statement run five times
# on a connection, and PostgreSQL then plans it once for any words (a generic plan), which it rates cheaper but is
# not for these: at a million events, per query in PostgreSQL's CPU, a word 14.8 ms against 9.7 planned for it,
# genre + 30 days 35 against 28, radius + word 24 against 19. For the other kinds PostgreSQL chooses (about as fast).
_KEYWORD_SETTINGS = text(f"SELECT {_TRIGRAM_SETTINGS}, set_config('plan_cache_mode', 'force_custom_plan', true)")
# Suggestions: the limits, no sequential scans (see suggest), and a plan for the text typed, as for keywords.
_SUGGEST_SETTINGS = text(
    f"SELECT {_TRIGRAM_SETTINGS}, set_config('enable_seqscan', 'off', true), "
    "set_config('plan_cache_mode', 'force_custom_plan', true)"
)

# Each word of a query: known as it is, the nearest known word (when it is not), and whether known words start
# with it (a word being typed).
_CHECK_WORDS = text(
    f"""
    SELECT w.word, k.known, k.prefix, k.completions,
           CASE WHEN k.known THEN NULL ELSE (
               SELECT t.term FROM search_terms t WHERE t.term % w.word
               ORDER BY similarity(t.term, w.word) DESC, length(t.term), t.term LIMIT 1
           ) END AS nearest
    FROM unnest(CAST(:words AS text[])) AS w(word)
    CROSS JOIN LATERAL (
        SELECT EXISTS (SELECT 1 FROM search_terms t WHERE t.term = w.word) AS known,
               EXISTS (SELECT 1 FROM search_terms t WHERE t.term > w.word AND t.term < w.word || '{_TOP}') AS prefix,
               ARRAY(
                   SELECT t.term FROM search_terms t WHERE t.term >= w.word AND t.term < w.word || '{_TOP}'
                   ORDER BY t.term LIMIT {MAX_COMPLETIONS + 1}
               ) AS completions
    ) AS k
    """
)


@dataclass(frozen=True)
class Statement:
    """One search as SQL: the page, and (first page only) how to count the matches."""

    kind: str
    sql: str
    params: dict[str, Any]
    count_sql: str | None = None
    # Which columns of a row make its cursor.
    cursor_columns: tuple[str, ...] = ("starts_at", "event_id")


@dataclass(frozen=True)
class TextPlan:
    """Keywords after correction: websearch text, and its last word when that word is being typed (a prefix)."""

    web: str
    prefix: str = ""
    # The text that ranks, when it differs from ``web`` (stop words left out of the match, kept for the rank).
    rank_web: str = ""
    # The known words the prefix stands for, when there are few (else empty: matched as a prefix).
    completions: tuple[str, ...] = ()
    corrections: dict[str, str] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not _WORDS.search(self.web)


class PostgresSearchBackend:
    """SearchBackend over ``search_documents``, ``search_terms``, ``performers`` and ``venues``."""

    def __init__(self, engine: AsyncEngine, *, candidates: int = TEXT_CANDIDATES) -> None:
        self._engine = engine
        self._candidates = candidates

    @asynccontextmanager
    async def _reading(self) -> AsyncIterator[AsyncConnection]:
        """A connection for one search or suggestion, whose read ends with COMMIT rather than the pool's ROLLBACK on
        return: psycopg forgets every statement it prepared on a connection at a ROLLBACK (and sends DEALLOCATE
        ALL). A statement asked five times is prepared, so parsed (and, for the lists by date, planned) once per
        connection instead of once per search. (An error still rolls back: the pool does.)"""
        async with self._engine.connect() as conn:
            yield conn
            await conn.commit()

    async def search(self, query: SearchQuery) -> SearchPage:
        async with self._reading() as conn:
            statement = await self.statement(conn, query)
            rows = (await conn.execute(text(statement.sql), statement.params)).mappings().all()
            hits = tuple(_hit(row) for row in rows)
            if query.total is not None:
                total = query.total
            elif len(hits) < query.limit:
                total = query.offset + len(hits)
            elif rows and rows[0].get("matches") is not None:
                total = rows[0]["matches"]  # keywords: the candidates, counted already (a lower bound at the cap)
            else:
                assert statement.count_sql is not None
                params = {**statement.params, "cap": EXACT_TOTAL}
                total = int(await conn.scalar(text(statement.count_sql), params) or 0)
        cursor = ""
        if hits and len(hits) == query.limit:
            last = rows[-1]
            cursor = json.dumps([_plain(last[column]) for column in statement.cursor_columns])
        return SearchPage(hits=hits, total_size=total, cursor=cursor)

    async def statement(self, conn: AsyncConnection, query: SearchQuery) -> Statement:
        """The SQL for ``query`` (keywords are checked against the vocabulary first, on ``conn``)."""
        plan = await self.text_plan(conn, query.text) if query.text else None
        return build_statement(query, plan, self._candidates)

    async def text_plan(self, conn: AsyncConnection, raw: str) -> TextPlan:
        lowered = raw.lower()
        words = list(dict.fromkeys(_WORDS.findall(lowered)))
        if not words:
            return TextPlan(web="")
        await conn.execute(_KEYWORD_SETTINGS)
        checked = {row.word: row for row in (await conn.execute(_CHECK_WORDS, {"words": words})).all()}
        matches = list(_WORDS.finditer(lowered))
        last = matches[-1]
        # The last word is being typed unless it is negated, quoted, or followed by a space the user typed.
        typing = (
            len(last.group()) >= MIN_PREFIX
            and last.end() == len(lowered)
            and not _negated(lowered, last)
            and not _in_phrase(lowered, last)
        )
        corrections: dict[str, str] = {}
        prefix = ""
        completions: tuple[str, ...] = ()
        pieces: list[str] = []
        rank_pieces: list[str] = []  # the text as ranked: with the stop words that ``pieces`` leaves out
        # Stop words only rank when a rarer word matches (not negated), and only as plain words: not in a phrase,
        # negated, being typed, or in a query with the "or" operator (whose operands they would change).
        drop_stop_words = "or" not in words and any(
            match.group() not in STOP_WORDS and not _negated(lowered, match) for match in matches
        )
        position = 0
        for match in matches:
            word = match.group()
            row = checked[word]
            between = lowered[position : match.start()]
            pieces.append(between)
            rank_pieces.append(between)
            position = match.end()
            if (
                drop_stop_words
                and word in STOP_WORDS
                and not (match is last and typing)
                and not _in_phrase(lowered, match)
                and not _negated(lowered, match)
            ):
                rank_pieces.append(word)
                continue
            if match is last and typing and (row.prefix or row.known):
                prefix = word  # kept as typed; the query below matches it as a prefix
                known = tuple(row.completions or ())
                if len(known) <= MAX_COMPLETIONS and all(_LEXEME.match(term) for term in known):
                    completions = known
                pieces.append(word)
            elif word == "or" or row.known or row.nearest is None:
                pieces.append(word)
            else:
                corrections[word] = row.nearest
                pieces.append(row.nearest)
            rank_pieces.append(pieces[-1])
        pieces.append(lowered[position:])
        rank_pieces.append(lowered[position:])
        web, rank_web = "".join(pieces), "".join(rank_pieces)
        return TextPlan(
            web=web, prefix=prefix, corrections=corrections, completions=completions,
            rank_web=rank_web if rank_web != web else "",
        )

    async def suggest(self, query: SuggestQuery) -> Suggestions:
        async with self._reading() as conn:
            # With the trigram limits, and no sequential scans: the planner prices a trigram comparison like an
            # equality and would compare every performer's name (20,000 at a million events: ~300 ms) rather than
            # ask the trigram index (~1 ms).
            await conn.execute(_SUGGEST_SETTINGS)
            params = suggest_params(query)
            typo = len(query.text) >= MIN_PREFIX
            fuzzy = typo and fuzzy_allowed(query)

            async def names(build: Callable[..., str]) -> Sequence[Any]:
                # Near spellings rank after every name that starts with the text or has a word that does: when
                # those fill the list, the trigram similarity search (most of a suggestion's work) cannot change it.
                rows = (await conn.execute(text(build(typo, fuzzy=False)), params)).mappings().all()
                if fuzzy and len(rows) < query.limit:
                    rows = (await conn.execute(text(build(typo)), params)).mappings().all()
                return rows

            performers = await names(_suggest_performers_sql)
            venues = await names(_suggest_venues_sql)
            cities = await names(_suggest_cities_sql)
            owners = {
                "performer_ids": [row["performer_id"] for row in performers[:2]],
                "venue_ids": [row["venue_id"] for row in venues[:1]],
            }
            events: Sequence[Any] = ()
            if owners["performer_ids"] or owners["venue_ids"]:
                events = (await conn.execute(_SUGGEST_EVENTS, {**owners, "limit": query.limit})).mappings().all()
        return Suggestions(
            performers=tuple(
                Performer(row["performer_id"], row["name"], row["category"], row["genre"]) for row in performers
            ),
            venues=tuple(_venue(row) for row in venues),
            cities=tuple(CitySuggestion(row["city"], row["region"], row["country_code"]) for row in cities),
            events=tuple(_hit(row) for row in events),
        )


# --- building the statements -------------------------------------------------------------------------------------

_PAGE_COLUMNS = "d.event_id, d.starts_at, d.min_price_minor, d.currency, d.latitude AS d_latitude, " \
    "d.longitude AS d_longitude"
# The names those columns have in a CTE's rows.
_PAGE_NAMES = tuple(column.split(" AS ")[-1].removeprefix("d.") for column in _PAGE_COLUMNS.split(", "))

# The page's rows joined to the catalog (only ``limit`` rows reach this).
_DETAILS = """
    SELECT page.*, e.name, e.category, e.sale_starts_at, e.sale_ends_at, e.cancelled, e.availability_band,
           v.venue_id, v.name AS venue_name, v.city, v.region, v.country_code, v.latitude, v.longitude,
           v.time_zone, v.capacity, v.layout_id, l.name AS layout_name,
           p.performer_id, p.name AS performer_name, p.category AS performer_category, p.genre,
           {distance} AS distance_km
    FROM page
    JOIN events e ON e.event_id = page.event_id
    JOIN venues v ON v.venue_id = e.venue_id
    JOIN layouts l ON l.layout_id = v.layout_id
    JOIN performers p ON p.performer_id = e.performer_id
    ORDER BY {order}
"""


def _ids_sql(table: str, key: str, params: dict[str, Any], value: str, name: str) -> str:
    """Ids of performers or venues named ``value`` (case-insensitive) or with that id: from their own indexes."""
    params[name] = value.lower()
    by_name = f"SELECT {key} FROM {table} WHERE lower(name) COLLATE \"C\" = :{name}"
    # isascii: str.isdigit() is true for '²' and '٣', which int() refuses.
    if value.isascii() and value.isdigit() and int(value) <= _BIGINT_MAX:
        params[f"{name}_id"] = int(value)
        by_name += f" UNION SELECT {key} FROM {table} WHERE {key} = :{name}_id"
    return f"ARRAY({by_name})"


def _filters(query: SearchQuery, params: dict[str, Any], *, skip: frozenset[str] = frozenset()) -> list[str]:
    """Conditions on ``d`` every kind shares (the driving filter of a kind is in ``skip``)."""
    conditions = []
    if query.start_time is not None:
        conditions.append("d.starts_at >= :start_time")
        params["start_time"] = query.start_time
    else:
        conditions.append("d.starts_at >= now()")
    if query.end_time is not None:
        conditions.append("d.starts_at < :end_time")
        params["end_time"] = query.end_time
    if query.city and "city" not in skip:
        conditions.append("lower(d.city) = :city")
        params["city"] = query.city.lower()
    if query.category and "category" not in skip:
        conditions.append("d.category = :category")
        params["category"] = query.category
    if query.performer and "performer" not in skip:
        conditions.append(
            f"d.performer_id = ANY({_ids_sql('performers', 'performer_id', params, query.performer, 'performer')})"
        )
    if query.venue and "venue" not in skip:
        conditions.append(f"d.venue_id = ANY({_ids_sql('venues', 'venue_id', params, query.venue, 'venue')})")
    if query.geo is not None and query.geo.radius_km is not None and "geo" not in skip:
        conditions.append(f"d.venue_id = ANY(ARRAY(SELECT v.venue_id FROM venues v WHERE {_radius(query, params)}))")
    return conditions


def _radius(query: SearchQuery, params: dict[str, Any]) -> str:
    assert query.geo is not None
    assert query.geo.radius_km is not None
    params.update(latitude=query.geo.latitude, longitude=query.geo.longitude, radius_m=query.geo.radius_km * 1000.0)
    # The box is indexed (GiST) but square; the exact distance trims its corners.
    return f"earth_box({_POINT}, :radius_m) @> {_VENUE_POINT} AND earth_distance({_POINT}, {_VENUE_POINT}) <= :radius_m"


def _after(query: SearchQuery, size: int) -> list[Any]:
    """The cursor of the previous page, checked: a list of ``size`` JSON values."""
    if not query.after:
        return []
    try:
        values = json.loads(query.after)
    except ValueError:
        raise InvalidArgument("page_token", "is not a token this service issued") from None
    if not isinstance(values, list) or len(values) != size:
        raise InvalidArgument("page_token", "is not a token this service issued")
    return values


def _keyset_params(values: list[Any], params: dict[str, Any]) -> None:
    """The cursor's trailing (starts_at, event_id) as typed parameters."""
    try:
        params["after_starts"] = datetime.fromisoformat(values[-2])
        params["after_id"] = int(values[-1])
    except (TypeError, ValueError):
        raise InvalidArgument("page_token", "is not a token this service issued") from None


# Strictly after the previous page's last (starts_at, event_id): the bound is an index condition on every
# (..., starts_at, event_id) index, the rest a filter on the few rows that share the bound's starts_at.
_AFTER_BOUND = "d.starts_at >= :after_starts"
_AFTER = "(d.starts_at > :after_starts OR d.event_id > :after_id)"


def _distance_sql(query: SearchQuery) -> str:
    if query.geo is None:
        return "NULL::float8"
    return f"earth_distance({_POINT}, ll_to_earth(page.d_latitude, page.d_longitude)) / 1000.0"


def build_statement(query: SearchQuery, plan: TextPlan | None, candidates: int = TEXT_CANDIDATES) -> Statement:
    params: dict[str, Any] = {"limit": query.limit}
    if query.geo is not None:
        params.update(latitude=query.geo.latitude, longitude=query.geo.longitude)
    if plan is not None and not plan.empty:
        return _keywords(query, plan, params, candidates)
    if query.geo is not None:
        return _nearest(query, params)
    return _soonest(query, params)


def _soonest(query: SearchQuery, params: dict[str, Any]) -> Statement:
    after = _after(query, 2)
    keyset = []
    if after:
        _keyset_params(after, params)
        keyset = [_AFTER_BOUND, _AFTER]
    if query.performer or query.venue:
        # Few ids (a name is nearly always one performer or venue): each id's events in order, then merged.
        if query.performer:
            column, ids = "performer_id", _ids_sql("performers", "performer_id", params, query.performer, "performer")
            skip = frozenset({"performer"})
        else:
            column, ids = "venue_id", _ids_sql("venues", "venue_id", params, query.venue, "venue")
            skip = frozenset({"venue"})
        conditions = _filters(query, params, skip=skip)
        where = " AND ".join([f"d.{column} = k.id", *conditions, *keyset])
        page = f"""
            SELECT d.* FROM unnest({ids}) AS k(id)
            CROSS JOIN LATERAL (
                SELECT {_PAGE_COLUMNS} FROM search_documents d WHERE {where}
                ORDER BY d.starts_at, d.event_id LIMIT :limit
            ) d
            ORDER BY d.starts_at, d.event_id LIMIT :limit
        """
        count_where = " AND ".join([f"d.{column} = ANY({ids})", *conditions])
        count_order = ""
        kind = column.removesuffix("_id")
    else:
        conditions = _filters(query, params)
        where = " AND ".join([*conditions, *keyset])
        if query.city:
            order = "lower(d.city), d.starts_at, d.event_id"  # the city index, equal on its first column
        elif query.category:
            order = "d.category, d.starts_at, d.event_id"
        else:
            order = "d.starts_at, d.event_id"
        page = f"""
            SELECT {_PAGE_COLUMNS} FROM search_documents d WHERE {where} ORDER BY {order} LIMIT :limit
        """
        count_where = " AND ".join(conditions)
        # Only time bounds: ordered like the page, so the count walks the starts_at index and stops at the cap.
        count_order = "" if query.city or query.category or query.geo else f" ORDER BY {order}"
        kind = "city" if query.city else "category" if query.category else "upcoming"
        if query.geo is not None:
            kind = "radius"
    sql = f"WITH page AS ({page}) " + _DETAILS.format(
        distance=_distance_sql(query), order="page.starts_at, page.event_id"
    )
    count_sql = (
        f"SELECT count(*) FROM (SELECT 1 FROM search_documents d WHERE {count_where}{count_order} LIMIT :cap) AS m"
    )
    return Statement(kind, sql, params, count_sql)


def _nearest(query: SearchQuery, params: dict[str, Any]) -> Statement:
    """Venues nearest first (GiST), each venue's soonest events, until the page is full."""
    venue_where = [_radius(query, params)] if query.geo and query.geo.radius_km is not None else []
    after = _after(query, 3)
    lateral_keyset = []
    if after:
        _keyset_params(after, params)
        try:
            params["after_chord"] = float(after[0])
        except (TypeError, ValueError):
            raise InvalidArgument("page_token", "is not a token this service issued") from None
        venue_where.append(f"({_VENUE_POINT} <-> {_POINT}) >= :after_chord")
        lateral_keyset = ["(v.chord > :after_chord OR (d.starts_at, d.event_id) > (:after_starts, :after_id))"]
    if query.venue:
        venue_where.append(f"v.venue_id = ANY({_ids_sql('venues', 'venue_id', params, query.venue, 'venue')})")
    if query.city:
        venue_where.append('lower(v.city) COLLATE "C" = :city')
    conditions = _filters(query, params, skip=frozenset({"geo", "venue", "city"}))
    where = " AND ".join(["d.venue_id = v.venue_id", *conditions, *lateral_keyset])
    page = f"""
        SELECT d.*, v.chord FROM (
            SELECT v.venue_id, {_VENUE_POINT} <-> {_POINT} AS chord FROM venues v
            WHERE {" AND ".join(venue_where) or "true"}
            ORDER BY {_VENUE_POINT} <-> {_POINT}
        ) AS v
        CROSS JOIN LATERAL (
            SELECT {_PAGE_COLUMNS} FROM search_documents d WHERE {where}
            ORDER BY d.starts_at, d.event_id LIMIT :limit
        ) d
        ORDER BY v.chord, d.starts_at, d.event_id LIMIT :limit
    """
    if query.city:
        params["city"] = query.city.lower()
    sql = f"WITH page AS ({page}) " + _DETAILS.format(
        distance=_distance_sql(query), order="page.chord, page.starts_at, page.event_id"
    )
    count_conditions = list(conditions)
    count_venues = [w for w in venue_where if ":after_chord" not in w]
    if count_venues:
        count_conditions.append(
            f"d.venue_id = ANY(ARRAY(SELECT v.venue_id FROM venues v WHERE {' AND '.join(count_venues)}))"
        )
    count_order = "" if count_venues else " ORDER BY d.starts_at, d.event_id"
    count_sql = (
        f"SELECT count(*) FROM (SELECT 1 FROM search_documents d WHERE {' AND '.join(count_conditions)}"
        f"{count_order} LIMIT :cap) m"
    )
    return Statement("nearest", sql, params, count_sql, cursor_columns=("chord", "starts_at", "event_id"))


# Relevance tiers of a keyword match, best first: (tier, condition on ``d`` that the tier's GIN index serves). A
# document belongs to the first tier whose filtered vector matches the whole query: its names alone (weight A), its
# names and places (A, B), or anywhere (the description too). Its rank is the tier plus ts_rank_cd normalised to
# [0, 1), so every match of a better tier ranks before every match of a worse one.
_TIERS = (
    (2, "ts_filter(d.document, '{a}') @@ ({q})"),
    (1, "ts_filter(d.document, '{a,b}') @@ ({q})"),
    (0, "d.document @@ ({q})"),
)


def _keywords(query: SearchQuery, plan: TextPlan, params: dict[str, Any], candidates: int) -> Statement:
    """At most ``candidates`` matching documents, the best tiers first (each through its own GIN index, combined
    with the filters' btree indexes), ranked; the page from those."""
    params["web"] = plan.web
    tsquery = "websearch_to_tsquery('simple', :web)"
    if plan.prefix:
        # The parsed query ends with the word being typed ('word'): it becomes 'word':*, whatever operator
        # (and, or) joins it to the rest.
        if plan.completions:
            replacement = "( " + " | ".join(f"'{term}'" for term in plan.completions) + " )"
        else:
            replacement = f"'{plan.prefix}':*"
        params.update(prefix_pattern=f"'{plan.prefix}'$", prefix_replacement=replacement)
        tsquery = f"CAST(regexp_replace(CAST({tsquery} AS text), :prefix_pattern, :prefix_replacement) AS tsquery)"
    # The rank weighs every word typed, the stop words the match left out too.
    rank_tsquery = tsquery
    if plan.rank_web:
        params["rank_web"] = plan.rank_web
        rank_tsquery = tsquery.replace(":web", ":rank_web")
    filters = _filters(query, params)
    params["candidates"] = candidates
    after = _after(query, 3)
    keyset = "true"
    if after:
        _keyset_params(after, params)
        try:
            params["after_rank"] = float(after[0])
        except (TypeError, ValueError):
            raise InvalidArgument("page_token", "is not a token this service issued") from None
        keyset = (
            "(c.rank < :after_rank OR (c.rank = :after_rank AND (c.starts_at, c.event_id) > (:after_starts, :after_id)))"
        )
    ctes = []
    narrow = _narrow(query, plan)
    tiered = "true"  # when the tiers read: always, or (narrow) only when the one read found more than the bound
    if narrow:
        # Usually fewer matches than the bound: one read of the whole-document index finds them all, and each is
        # ranked by its tier here. Only when they are more than the bound do the tiers below read (and this read,
        # of the bound and one more, was spent): each tier's read of a common word builds its bitmap anew.
        tier_of = " ".join(
            f"WHEN {template.replace('{q}', tsquery).replace('d.document', 'e.document')} THEN {tier}"
            for tier, template in _TIERS[:-1]
        )
        ctes += [
            f"""every AS MATERIALIZED (
                SELECT {_PAGE_COLUMNS}, d.document FROM search_documents d
                WHERE {" AND ".join([f"d.document @@ ({tsquery})", *filters])} LIMIT :candidates + 1
            )""",
            "complete AS MATERIALIZED (SELECT count(*) <= :candidates AS yes FROM every)",
            f"""whole AS MATERIALIZED (
                SELECT {", ".join(f"e.{name}" for name in _PAGE_NAMES)},
                       ((CASE {tier_of} ELSE 0 END) + ts_rank_cd(e.document, ({rank_tsquery}), 32))::float8 AS rank
                FROM every e WHERE (SELECT yes FROM complete)
            )""",
        ]
        tiered = "NOT (SELECT yes FROM complete)"
    taken: list[str] = []  # the earlier tiers' counts: a tier reads only what the better ones left of the bound
    better: list[str] = []  # a document of a better tier is not read again
    for tier, template in _TIERS:
        condition = template.replace("{q}", tsquery)
        # With '-word' the whole document must match too (the word is excluded wherever it is, not only in the
        # names; without a negation a match of the names is a match of the whole). Checked on the tier's rows:
        # written so that no index serves it, or the planner would AND the whole document's bitmap (every match of
        # a common word) into the tier's.
        whole = [] if tier == 0 or "-" not in plan.web else [f"ts_filter(d.document, '{{a,b,c,d}}') @@ ({tsquery})"]
        where = " AND ".join([condition, *(f"NOT ({b})" for b in better), *whole, *filters, tiered])
        limit = " - ".join([":candidates", *taken])
        ctes.append(
            f"""tier{tier} AS MATERIALIZED (
                SELECT {_PAGE_COLUMNS}, ({tier} + ts_rank_cd(d.document, ({rank_tsquery}), 32))::float8 AS rank
                FROM search_documents d WHERE {where} LIMIT greatest({limit}, 0)
            )"""
        )
        taken.append(f"(SELECT count(*) FROM tier{tier})")
        better.append(condition)
    page = f"""
        SELECT c.*, (SELECT count(*) FROM candidates) AS matches FROM candidates c
        WHERE {keyset}
        ORDER BY c.rank DESC, c.starts_at, c.event_id LIMIT :limit
    """
    union = " UNION ALL ".join(
        [*(["SELECT * FROM whole"] if narrow else []), *(f"SELECT * FROM tier{tier}" for tier, _ in _TIERS)]
    )
    sql = (
        f"WITH {', '.join(ctes)}, "
        f"candidates AS MATERIALIZED ({union}), page AS ({page})"
        + _DETAILS.format(distance=_distance_sql(query), order="page.rank DESC, page.starts_at, page.event_id")
    )
    count_where = " AND ".join([f"d.document @@ ({tsquery})", *filters])
    count_sql = f"SELECT count(*) FROM (SELECT 1 FROM search_documents d WHERE {count_where} LIMIT :cap) AS m"
    return Statement("keywords", sql, params, count_sql, cursor_columns=("rank", "starts_at", "event_id"))


def _negated(text: str, word: re.Match[str]) -> bool:
    """Whether a word of a websearch text is excluded ("-word")."""
    return text[: word.start()].rstrip().endswith("-")


def _in_phrase(text: str, word: re.Match[str]) -> bool:
    """Whether a word of a websearch text is inside a quoted phrase."""
    return text[: word.start()].count('"') % 2 == 1


def _narrow(query: SearchQuery, plan: TextPlan) -> bool:
    """Whether a keyword query likely matches fewer documents than it may rank: two or more words that must all
    match, or a city (a few thousand events)."""
    if query.city:
        return True
    words = [m.group() for m in _WORDS.finditer(plan.web) if not _negated(plan.web, m)]
    return "or" not in words and len(words) >= 2


def _plain(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def _hit(row: Any) -> SearchHit:
    venue, performer = venue_and_performer(row)
    return SearchHit(
        event_id=row["event_id"],
        name=row["name"],
        category=row["category"],
        starts_at=row["starts_at"],
        sale_starts_at=row["sale_starts_at"],
        sale_ends_at=row["sale_ends_at"],
        cancelled=row["cancelled"],
        band=AvailabilityBand(row["availability_band"]),
        venue=venue,
        performer=performer,
        min_price_minor=row["min_price_minor"],
        currency=row["currency"],
        distance_km=None if row["distance_km"] is None else float(row["distance_km"]),
    )


# --- suggestions -------------------------------------------------------------------------------------------------


def suggest_params(query: SuggestQuery) -> dict[str, Any]:
    words = _WORDS.findall(query.text)
    return {
        "q": query.text,
        "low": query.text,
        "high": query.text + _TOP,
        "word_start": f"% {_like_escape(query.text)}%",
        "last": words[-1] if words else "",
        "limit": query.limit,
    }


def fuzzy_allowed(query: SuggestQuery) -> bool:
    """Near spellings are looked for from the third letter of the word being typed ("the rh" is too little to
    correct; the trigrams of "the" alone would make every "The ..." a near spelling)."""
    words = _WORDS.findall(query.text)
    return bool(words) and len(words[-1]) >= MIN_PREFIX


def _like_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


# Near spellings of the last word a suggestion ranks at most: the bound on its work when that word is common.
FUZZY_CANDIDATES = 200
# Names a suggestion reads at most per tier ("the" starts 3,000 of 20,000 performers' names at a million events).
TIER_CANDIDATES = 100


def _ranked_names(columns: str, source: str, alias: str, table: str, key: str, typo: bool, fuzzy: bool) -> str:
    """Names (``table``'s ``name``, as ``alias`` in ``source``) for what is being typed, best first: those that start
    with the text, then those with a word that does (``typo``: from the third letter), shortest first; then
    (``fuzzy``) those with a word close to the last word typed, closest first. Each tier reads a bounded number of rows through its own index: the
    first names in order from the text on (an exact name is the first of them), any with a word starting so, the
    near spellings the trigram index finds first. Only near spellings are ranked by similarity (computing it for
    every "The ..." when "the" is typed took ~30 ms)."""
    column = f"lower({alias}.name)"
    starts = f'{column} COLLATE "C" >= :low AND {column} COLLATE "C" < :high'
    selected = f"{columns}, {column} AS sort_name"
    tiers = [
        f"(SELECT {selected}, 0 AS tier, 1.0::real AS closeness FROM {source} WHERE {starts}"
        f' ORDER BY {column} COLLATE "C" LIMIT {TIER_CANDIDATES})'
    ]
    if typo:
        tiers.append(
            f"(SELECT {selected}, 1, 1.0::real FROM {source} WHERE {column} LIKE :word_start AND NOT ({starts})"
            f" LIMIT {TIER_CANDIDATES})"
        )
    if typo and fuzzy:
        near = f"SELECT f.{key} FROM {table} f WHERE :last <% lower(f.name) LIMIT {FUZZY_CANDIDATES}"
        tiers.append(
            f"(SELECT {selected}, 2, word_similarity(:q, {column}) FROM {source}"
            f" WHERE {alias}.{key} = ANY(ARRAY({near})) AND NOT ({starts}) AND {column} NOT LIKE :word_start)"
        )
    return (
        f"SELECT * FROM ({' UNION ALL '.join(tiers)}) AS m"
        " ORDER BY m.tier, m.closeness DESC, length(m.sort_name), m.sort_name LIMIT :limit"
    )


def _suggest_performers_sql(typo: bool, fuzzy: bool = True) -> str:
    return _ranked_names(
        "p.performer_id, p.name, p.category, p.genre", "performers p", "p", "performers", "performer_id", typo, fuzzy
    )


def _suggest_venues_sql(typo: bool, fuzzy: bool = True) -> str:
    return _ranked_names(
        "v.venue_id, v.name AS venue_name, v.city, v.region, v.country_code, v.latitude, v.longitude, v.time_zone,"
        " v.capacity, v.layout_id, l.name AS layout_name",
        "venues v JOIN layouts l ON l.layout_id = v.layout_id", "v", "venues", "venue_id", typo, fuzzy,
    )


def _name_match(column: str, typo: bool, fuzzy: bool) -> tuple[str, str]:
    """(condition, order) for a small table's names (cities: of ~1,000 venues): whole name starts with the text, a
    word of it does, or (typo, unless not ``fuzzy``) the word being typed is close to a word of it."""
    starts = f'({column} COLLATE "C" >= :low AND {column} COLLATE "C" < :high)'
    conditions = [starts]
    if typo:
        conditions += [f"{column} LIKE :word_start"]
    if typo and fuzzy:
        conditions += [f":last <% {column}"]
    order = (
        f"CASE WHEN {starts} THEN 0 WHEN {column} LIKE :word_start THEN 1 ELSE 2 END"
        + (f", word_similarity(:q, {column}) DESC" if typo else "")
        + f", length({column}), {column}"
    )
    return " OR ".join(conditions), order


def _suggest_cities_sql(typo: bool, fuzzy: bool = True) -> str:
    condition, order = _name_match("lower(city)", typo, fuzzy)
    return f"""
        SELECT city, region, country_code FROM (
            SELECT DISTINCT ON (lower(city), country_code) city, region, country_code FROM venues
            WHERE {condition} ORDER BY lower(city), country_code
        ) c ORDER BY {order.replace("lower(city)", "lower(c.city)")} LIMIT :limit
    """


# The soonest upcoming events of the best matching performers and venue, each through its ordered index.
_OWNER_EVENTS = """
    SELECT d.* FROM unnest(CAST(:{ids} AS bigint[])) AS k(id)
    CROSS JOIN LATERAL (
        SELECT {columns} FROM search_documents d WHERE d.{column} = k.id AND d.starts_at >= now()
        ORDER BY d.starts_at, d.event_id LIMIT :limit
    ) d
"""
_SUGGEST_EVENTS = text(
    "WITH page AS (SELECT * FROM ("
    + _OWNER_EVENTS.format(ids="performer_ids", columns=_PAGE_COLUMNS, column="performer_id")
    + " UNION "
    + _OWNER_EVENTS.format(ids="venue_ids", columns=_PAGE_COLUMNS, column="venue_id")
    + ") AS u ORDER BY starts_at, event_id LIMIT :limit)"
    + _DETAILS.format(distance="NULL::float8", order="page.starts_at, page.event_id")
)


def _venue(row: Any) -> Venue:
    return Venue(
        venue_id=row["venue_id"], name=row["venue_name"], city=row["city"], region=row["region"],
        country_code=row["country_code"], latitude=row["latitude"], longitude=row["longitude"],
        time_zone=row["time_zone"], capacity=row["capacity"], layout_id=row["layout_id"],
        layout_name=row["layout_name"],
    )
