"""Storage for search: the Redis cache of popular queries, and the rebuild of documents from the catalog (which
the outbox indexer, search_svc.indexer, calls). The PostgreSQL backend that queries the documents is
``search_svc.postgres``.

Documents use the 'simple' text search configuration (as the seed does): names are proper nouns, which stemming
and stop words would mangle ("The Who").
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from datetime import datetime

from cachetools import LRUCache
from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from search_svc.domain import (
    CacheLookup,
    SearchHit,
    SearchPage,
)
from tix.availability import AvailabilityBand
from tix.catalog import Performer, Venue
from tix.logs import get_logger
from tix.redis_pool import as_text
from tix.search_documents import upsert_documents_sql

log = get_logger("search_svc.repository")

_WORDS = re.compile(r"[^\W_]+")
_BIGINT_MAX = 2**63 - 1


# --- the cache of popular queries ------------------------------------------------------------------------------


# Bumped by the indexer of the serving backend after each batch of catalog changes it made searchable: a cached
# answer from an older generation is not served, so an edit is never hidden behind the cache.
SEARCH_GENERATION_KEY = "tix:search:generation"
# The generation of a lookup that could not read Redis: its answer is not stored (the generation is unknown).
_UNAVAILABLE = "unavailable"
# Answers each process keeps decoded (the popular queries of the moment).
_LOCAL_ANSWERS = 4096


async def bump_search_generation(redis: Redis) -> None:
    try:
        await redis.incr(SEARCH_GENERATION_KEY)
    except RedisError as exc:
        log.warning("search_cache_unavailable", error=repr(exc))


class RedisSearchCache:
    """Answers for a few seconds: a query trending on a sale day is asked thousands of times a second.

    Each answer is stored with the index generation read when the query missed (before the backend was asked), and
    served only while the generation is unchanged: one MGET reads both. Each process also keeps the answers it
    served most recently, decoded, and the generation it last read; while that generation is younger than
    ``generation_seconds`` a popular query is answered without a round trip to Redis. So a change the indexer
    applied hides behind the cache for at most that long (0.1 s by default) in any process.
    """

    def __init__(
        self, redis: Redis, seconds: float, *, generation_seconds: float = 0.1, local_size: int = _LOCAL_ANSWERS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._redis = redis
        self._ms = int(seconds * 1000)
        self._generation_seconds = generation_seconds
        self._clock = clock
        self._generation = ("", -math.inf)  # the last generation read, and when (clock)
        # key -> (generation, the answer's expiry on the clock, the answer)
        self._local: LRUCache[str, tuple[str, float, SearchPage]] = LRUCache(maxsize=max(1, local_size))

    async def get(self, key: str) -> CacheLookup:
        if self._ms <= 0:
            return CacheLookup(None)
        now = self._clock()
        try:
            local = self._local.get(key)
            if local is not None and local[1] > now and local[0] == await self._current_generation(now):
                return CacheLookup(local[2], local[0])
            stored_generation, raw = await self._redis.mget(SEARCH_GENERATION_KEY, f"tix:search:{key}")
        except RedisError as exc:
            log.warning("search_cache_unavailable", error=repr(exc))
            return CacheLookup(None, _UNAVAILABLE)
        current = self._observe(stored_generation)
        if raw:
            stored, _, rest = as_text(raw).partition("|")
            expires_ms, _, page = rest.partition("|")
            if stored == current and expires_ms.isdigit():
                answer = decode_page(page)
                # The copy here lives no longer than the stored one (its expiry is written beside it).
                self._local[key] = (current, now + int(expires_ms) / 1000 - time.time(), answer)
                return CacheLookup(answer, current)
        return CacheLookup(None, current)

    async def _current_generation(self, now: float) -> str:
        generation, read_at = self._generation
        if now - read_at < self._generation_seconds:
            return generation
        return self._observe(await self._redis.get(SEARCH_GENERATION_KEY))

    def _observe(self, stored: bytes | str | None) -> str:
        """The generation just read, remembered as the current one (a read that overlapped a newer one can only be
        older by an instant: still within ``generation_seconds``)."""
        current = as_text(stored) if stored else "0"
        self._generation = (current, self._clock())
        return current

    async def put(self, key: str, page: SearchPage, generation: str) -> None:
        if self._ms <= 0 or generation == _UNAVAILABLE:
            return
        expires_at = time.time() + self._ms / 1000
        self._local[key] = (generation, self._clock() + self._ms / 1000, page)
        try:
            await self._redis.set(
                f"tix:search:{key}", f"{generation}|{int(expires_at * 1000)}|{encode_page(page)}", px=self._ms
            )
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
    return SearchPage(
        hits=hits,
        total_size=data["total_size"],
        next_page_token=data["next_page_token"],
        cursor=data.get("cursor", ""),
    )


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
