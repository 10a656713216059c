"""Storage for search: the PostgreSQL backend over ``search_documents``, the Redis cache of popular queries, and the
rebuild of documents from the catalog (which the outbox indexer, search_svc.indexer, calls).

Documents use the 'simple' text search configuration (as the seed does): names are proper nouns, which stemming
and stop words would mangle ("The Who"). Keywords match through ``websearch_to_tsquery`` and prefixes (type-ahead),
typos through pg_trgm word similarity on ``search_text``; both feed the rank.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import asdict
from datetime import datetime
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from search_svc.domain import (
    MAX_RESULT_WINDOW,
    SearchHit,
    SearchPage,
    SearchQuery,
)
from tix.availability import AvailabilityBand
from tix.catalog import Performer, Venue, venue_and_performer
from tix.logs import get_logger
from tix.redis_pool import as_text
from tix.search_documents import upsert_documents_sql

log = get_logger("search_svc.repository")

_WORDS = re.compile(r"[^\W_]+")
_BIGINT_MAX = 2**63 - 1


class PostgresSearchBackend:
    """SearchBackend over the denormalised ``search_documents`` table (GIN tsvector, GIN trigram, GiST earth)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def search(self, query: SearchQuery) -> SearchPage:
        where, params, rank, distance = _conditions(query)
        if query.text:
            order = "rank DESC, starts_at, event_id"
        elif query.geo is not None:
            order = "distance_km, starts_at, event_id"
        else:
            order = "starts_at, event_id"
        # Ranked orders evaluate every match anyway, so counting them on the way costs nothing; the time order can
        # stop at the page (the starts_at index), and a capped count is then cheaper than a full one.
        ranked = query.text or query.geo is not None
        matches = "count(*) OVER ()" if ranked else "NULL::bigint"
        # Rank and slice over the documents alone; only the page's rows are joined to the catalog.
        page_sql = f"""
            WITH page AS (
                SELECT d.event_id, d.starts_at, d.min_price_minor, d.currency,
                       {rank} AS rank, {distance} AS distance_km, {matches} AS matches
                FROM search_documents d
                WHERE {where}
                ORDER BY {order}
                LIMIT :limit OFFSET :offset
            )
            SELECT page.event_id, e.name, e.category, e.starts_at, e.sale_starts_at, e.sale_ends_at, e.cancelled,
                   e.availability_band,
                   v.venue_id, v.name AS venue_name, v.city, v.region, v.country_code, v.latitude, v.longitude,
                   v.time_zone, v.capacity, v.layout_id, l.name AS layout_name,
                   p.performer_id, p.name AS performer_name, p.category AS performer_category, p.genre,
                   page.min_price_minor, page.currency, page.distance_km, page.matches
            FROM page
            JOIN events e ON e.event_id = page.event_id
            JOIN venues v ON v.venue_id = e.venue_id
            JOIN layouts l ON l.layout_id = v.layout_id
            JOIN performers p ON p.performer_id = e.performer_id
            ORDER BY {order.replace("starts_at", "page.starts_at").replace("event_id", "page.event_id")}
        """
        params.update(limit=query.limit, offset=query.offset)
        async with self._engine.connect() as conn:
            rows = (await conn.execute(text(page_sql), params)).mappings().all()
            hits = [_hit(row) for row in rows]
            if rows and rows[0]["matches"] is not None:
                total = rows[0]["matches"]
            elif len(hits) < query.limit and (hits or query.offset == 0):
                total = query.offset + len(hits)  # the last page: everything is counted already
            else:
                # Counting stops past the window: "at least 10,000" is all a fan needs, and it is cheap.
                count_sql = f"SELECT count(*) FROM (SELECT 1 FROM search_documents d WHERE {where} LIMIT :cap) m"
                total = await conn.scalar(text(count_sql), {**params, "cap": MAX_RESULT_WINDOW})
        return SearchPage(hits=tuple(hits), total_size=int(total))


def _conditions(query: SearchQuery) -> tuple[str, dict[str, Any], str, str]:
    conditions: list[str] = []
    params: dict[str, Any] = {}
    rank = "0.0"
    distance = "NULL::float8"
    if query.text:
        params["q"] = query.text.lower()
        web = "websearch_to_tsquery('simple', :q)"
        matches = [f"d.document @@ {web}", ":q <% d.search_text"]
        rank = f"ts_rank_cd(d.document, {web}) + word_similarity(:q, d.search_text)"
        words = _WORDS.findall(query.text.lower())
        if words:
            # Every word as a prefix: "metal gard" finds "Metallica at Madison Square Garden" while typing.
            params["prefix"] = " & ".join(f"{word}:*" for word in words)
            matches.append("d.document @@ to_tsquery('simple', :prefix)")
            rank += " + 0.5 * ts_rank_cd(d.document, to_tsquery('simple', :prefix))"
        conditions.append("(" + " OR ".join(matches) + ")")
    if query.start_time is not None:
        conditions.append("d.starts_at >= :start_time")
        params["start_time"] = query.start_time
    if query.end_time is not None:
        conditions.append("d.starts_at < :end_time")
        params["end_time"] = query.end_time
    if query.city:
        conditions.append("lower(d.city) = lower(:city)")
        params["city"] = query.city
    if query.geo is not None:
        params.update(latitude=query.geo.latitude, longitude=query.geo.longitude)
        point = "ll_to_earth(:latitude, :longitude)"
        distance = f"(earth_distance({point}, ll_to_earth(d.latitude, d.longitude)) / 1000.0)"
        if query.geo.radius_km is not None:
            params["radius_m"] = query.geo.radius_km * 1000.0
            # The box is indexed (GiST) but square; the exact distance trims its corners.
            conditions.append(f"earth_box({point}, :radius_m) @> ll_to_earth(d.latitude, d.longitude)")
            conditions.append(f"earth_distance({point}, ll_to_earth(d.latitude, d.longitude)) <= :radius_m")
    if query.performer:
        params["performer"] = query.performer
        by_name = "lower(d.performer_name) = lower(:performer)"
        # isascii: str.isdigit() is true for '²' and '٣', which int() refuses.
        if query.performer.isascii() and query.performer.isdigit() and int(query.performer) <= _BIGINT_MAX:
            params["performer_id"] = int(query.performer)
            conditions.append(f"(d.performer_id = :performer_id OR {by_name})")
        else:
            conditions.append(by_name)
    if query.category:
        conditions.append("d.category = :category")
        params["category"] = query.category
    return (" AND ".join(conditions) or "true"), params, rank, distance


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


# --- the cache of popular queries ------------------------------------------------------------------------------


class RedisSearchCache:
    """Answers for a few seconds: a query trending on a sale day is asked thousands of times a second."""

    def __init__(self, redis: Redis, seconds: float) -> None:
        self._redis = redis
        self._ms = int(seconds * 1000)

    async def get(self, key: str) -> SearchPage | None:
        if self._ms <= 0:
            return None
        try:
            raw = await self._redis.get(f"tix:search:{key}")
        except RedisError as exc:
            log.warning("search_cache_unavailable", error=repr(exc))
            return None
        return decode_page(as_text(raw)) if raw else None

    async def put(self, key: str, page: SearchPage) -> None:
        if self._ms <= 0:
            return
        try:
            await self._redis.set(f"tix:search:{key}", encode_page(page), px=self._ms)
        except RedisError as exc:
            log.warning("search_cache_unavailable", error=repr(exc))


def encode_page(page: SearchPage) -> str:
    def plain(value: object) -> object:
        return value.value if isinstance(value, AvailabilityBand) else value.isoformat()  # type: ignore[attr-defined]

    return json.dumps(asdict(page), default=plain, separators=(",", ":"))


def decode_page(raw: str) -> SearchPage:
    data = json.loads(raw)
    hits = tuple(
        SearchHit(
            **{
                **hit,
                "starts_at": datetime.fromisoformat(hit["starts_at"]),
                "sale_starts_at": datetime.fromisoformat(hit["sale_starts_at"]),
                "sale_ends_at": datetime.fromisoformat(hit["sale_ends_at"]) if hit.get("sale_ends_at") else None,
                "band": AvailabilityBand(hit.get("band", AvailabilityBand.AVAILABLE.value)),
                "venue": Venue(**hit["venue"]),
                "performer": Performer(**hit["performer"]),
            }
        )
        for hit in data["hits"]
    )
    return SearchPage(hits=hits, total_size=data["total_size"], next_page_token=data["next_page_token"])


# --- documents -------------------------------------------------------------------------------------------------

_REBUILD = text(
    upsert_documents_sql(
        "e.event_id = ANY(:event_ids) OR e.venue_id = ANY(:venue_ids) OR e.performer_id = ANY(:performer_ids)"
    )
)

_DROP_GONE = text(
    """
    DELETE FROM search_documents d
    WHERE d.event_id = ANY(:event_ids) AND NOT EXISTS (SELECT 1 FROM events e WHERE e.event_id = d.event_id)
    """
)


async def rebuild_search_documents(
    conn: AsyncConnection,
    *,
    event_ids: Sequence[int] = (),
    venue_ids: Sequence[int] = (),
    performer_ids: Sequence[int] = (),
) -> int:
    """(Re)build the documents of these events and of every event at these venues or by these performers."""
    params = {"event_ids": list(event_ids), "venue_ids": list(venue_ids), "performer_ids": list(performer_ids)}
    result = await conn.execute(_REBUILD, params)
    if event_ids:
        await conn.execute(_DROP_GONE, {"event_ids": list(event_ids)})
    return result.rowcount


async def rebuild_search_document(conn: AsyncConnection, event_id: int) -> None:
    """(Re)build one event's document from the catalog; an event that no longer exists loses its document."""
    await rebuild_search_documents(conn, event_ids=[event_id])
