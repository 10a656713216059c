"""The Elasticsearch search backend (``TIX_SEARCH_BACKEND=elasticsearch``) over the official async client.

- **Index layout.** An index template (``<alias>-template``: mappings and analysers, search_svc.es_queries) for
  indices named ``<alias>-<UTC time>``, and an alias (``TIX_ELASTICSEARCH_INDEX``, default ``tix-events``) that
  searches and the indexer use. Documents carry everything a result shows, so a search never reads PostgreSQL.
- **Reindex without downtime** (``tix search reindex``, and by itself when the alias does not exist yet or a seed
  reloaded the catalog): a new index is filled from one consistent snapshot of the catalog with the bulk helper
  (refresh off, no replicas while loading), then the alias moves from the old index to the new one in one
  ``_aliases`` call and the old index is deleted. Changes committed after the snapshot are replayed from the
  outbox into the new index (the sink's cursor is set back to the snapshot's last outbox id), so none is lost.
- **The same outbox feeding it**: :class:`ElasticsearchSink` is an IndexSink with its own cursor
  (``search-es:<alias>``); each batch of changed events is read from the catalog and bulk-written before the
  cursor moves (a crash replays the batch; writing a document twice is harmless).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from search_svc.domain import SearchPage, SearchQuery, Suggestions, SuggestQuery
from search_svc.es_queries import (
    DOCUMENT_SQL,
    document,
    index_template,
    page_from_response,
    search_body,
    suggest_bodies,
    suggestions_from_responses,
)
from search_svc.indexer import CatalogChanges
from tix.errors import Unavailable
from tix.logs import get_logger

if TYPE_CHECKING:
    from elasticsearch import AsyncElasticsearch

log = get_logger("search_svc.es_backend")

# Events whose documents one bulk request carries.
BULK_CHUNK = 500
_BY_IDS = text(DOCUMENT_SQL.format(where="e.event_id = ANY(:ids)"))
_ALL = text(DOCUMENT_SQL.format(where="true") + " ORDER BY e.event_id")
_EVENTS_OF = text("SELECT event_id FROM events WHERE venue_id = ANY(:venues) OR performer_id = ANY(:performers)")


def open_client(url: str, timeout_seconds: float) -> AsyncElasticsearch:
    from elasticsearch import AsyncElasticsearch

    return AsyncElasticsearch(url, request_timeout=timeout_seconds, retry_on_timeout=True, max_retries=2)


def sink_name(alias: str) -> str:
    return f"search-es:{alias}"


class ElasticsearchSearchBackend:
    """SearchBackend over the alias (see SearchQuery for the contract, search_svc.es_queries for the bodies)."""

    def __init__(self, client: AsyncElasticsearch, alias: str) -> None:
        self._client = client
        self._alias = alias

    async def search(self, query: SearchQuery) -> SearchPage:
        body = search_body(query)
        async with _unavailable_when_down():
            response = await self._client.search(index=self._alias, **body)
        return page_from_response(query, response.body)

    async def suggest(self, query: SuggestQuery) -> Suggestions:
        searches: list[dict[str, Any]] = []
        for body in suggest_bodies(query):
            searches += [{"index": self._alias}, body]
        async with _unavailable_when_down():
            response = await self._client.msearch(searches=searches)
        responses = response.body["responses"]
        for answer in responses:
            if "error" in answer:
                raise RuntimeError(f"elasticsearch suggestion failed: {answer['error']}")
        return suggestions_from_responses(responses)


@asynccontextmanager
async def _unavailable_when_down() -> AsyncIterator[None]:
    """A cluster that cannot be reached, or whose alias does not exist yet, is UNAVAILABLE (retry later), not a
    failure of the request."""
    from elasticsearch import ApiError, NotFoundError, TransportError

    try:
        yield
    except NotFoundError as error:
        raise Unavailable("SEARCH_INDEX_NOT_READY", "the search index is being built") from error
    except TransportError as error:
        raise Unavailable("SEARCH_BACKEND_UNAVAILABLE", "the search backend cannot be reached") from error
    except ApiError as error:
        if error.meta.status >= 500:
            raise Unavailable("SEARCH_BACKEND_UNAVAILABLE", "the search backend failed") from error
        raise


async def ensure_template(client: AsyncElasticsearch, alias: str) -> None:
    template = index_template(f"{alias}-*")
    await client.indices.put_index_template(name=f"{alias}-template", **template)


async def alias_indices(client: AsyncElasticsearch, alias: str) -> list[str]:
    if not (await client.indices.exists_alias(name=alias)).body:
        return []
    return sorted((await client.indices.get_alias(name=alias)).body)


async def _documents(conn: AsyncConnection, batch: int) -> AsyncIterator[list[dict[str, Any]]]:
    result = await conn.stream(_ALL.execution_options(yield_per=batch))
    async for partition in result.mappings().partitions(batch):
        yield [document(row) for row in partition]


async def reindex(
    client: AsyncElasticsearch,
    engine: AsyncEngine,
    alias: str,
    *,
    batch_size: int = 5_000,
    on_progress: Callable[[int], None] = lambda done: None,
    on_total: Callable[[int], None] = lambda total: None,
    replay_from_snapshot: bool = True,
) -> tuple[str, int]:
    """Build a new index from the catalog and move the alias to it (see the module docstring); returns the new
    index's name and how many documents it holds."""
    from elasticsearch.helpers import async_bulk

    await ensure_template(client, alias)
    name = f"{alias}-{datetime.now(UTC).strftime('%Y%m%d%H%M%S%f')}"
    await client.indices.create(index=name, settings={"refresh_interval": "-1", "number_of_replicas": 0})
    loaded = 0
    try:
        async with engine.connect() as conn:
            conn = await conn.execution_options(isolation_level="REPEATABLE READ")
            async with conn.begin():
                # The snapshot's last outbox row: later changes are not in the documents read below.
                snapshot = int(await conn.scalar(text("SELECT coalesce(max(outbox_id), 0) FROM outbox")) or 0)
                on_total(int(await conn.scalar(text("SELECT count(*) FROM events")) or 0))
                async for docs in _documents(conn, batch_size):
                    bulk = [{"_index": name, "_id": str(doc["event_id"]), "_source": doc} for doc in docs]
                    await async_bulk(client, bulk, chunk_size=BULK_CHUNK, refresh=False)
                    loaded += len(docs)
                    on_progress(len(docs))
        await client.indices.put_settings(index=name, settings={"refresh_interval": "1s", "number_of_replicas": 1})
        await client.indices.refresh(index=name)
        old = await alias_indices(client, alias)
        actions: list[dict[str, Any]] = [{"remove": {"index": index, "alias": alias}} for index in old]
        actions.append({"add": {"index": name, "alias": alias}})
        await client.indices.update_aliases(actions=actions)  # one atomic step: searches see old, then new
    except BaseException:
        await client.indices.delete(index=name, ignore_unavailable=True)
        raise
    for index in old:
        await client.indices.delete(index=index, ignore_unavailable=True)
    if replay_from_snapshot:
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO outbox_cursors (consumer, last_outbox_id) VALUES (:c, :s) ON CONFLICT (consumer) "
                    "DO UPDATE SET last_outbox_id = LEAST(outbox_cursors.last_outbox_id, EXCLUDED.last_outbox_id), "
                    "updated_at = now()"
                ),
                {"c": sink_name(alias), "s": snapshot},
            )
    log.info("elasticsearch_reindexed", alias=alias, index=name, documents=loaded, replaced=old)
    return name, loaded


class ElasticsearchSink:
    """The outbox feeding the Elasticsearch index (an IndexSink, search_svc.indexer)."""

    def __init__(self, client: AsyncElasticsearch, engine: AsyncEngine, alias: str) -> None:
        self._client = client
        self._engine = engine
        self._alias = alias
        self.name = sink_name(alias)

    async def prepare(self) -> None:
        """A first start (no alias yet) builds the index from the catalog."""
        await ensure_template(self._client, self._alias)
        if not await alias_indices(self._client, self._alias):
            started = time.monotonic()
            _, count = await reindex(self._client, self._engine, self._alias)
            log.info("elasticsearch_index_created", alias=self._alias, documents=count,
                     seconds=round(time.monotonic() - started, 1))

    async def apply(self, conn: AsyncConnection, changes: CatalogChanges) -> None:
        if changes.everything:
            # A seed reloaded the catalog: a new index from it (this batch's cursor move follows; later changes
            # come after the 'catalog' row and are applied after).
            await reindex(self._client, self._engine, self._alias, replay_from_snapshot=False)
            return
        ids = set(changes.events) | set(changes.availability)
        if changes.venues or changes.performers:
            params = {"venues": sorted(changes.venues), "performers": sorted(changes.performers)}
            ids |= set(await conn.scalars(_EVENTS_OF, params))
        ordered = sorted(ids)
        for start in range(0, len(ordered), BULK_CHUNK * 10):
            await self._write(conn, ordered[start : start + BULK_CHUNK * 10])

    async def _write(self, conn: AsyncConnection, ids: Sequence[int]) -> None:
        from elasticsearch.helpers import async_bulk

        rows = (await conn.execute(_BY_IDS, {"ids": list(ids)})).mappings().all()
        found = {row["event_id"] for row in rows}
        actions: list[dict[str, Any]] = [
            {"_op_type": "index", "_index": self._alias, "_id": str(row["event_id"]), "_source": document(row)}
            for row in rows
        ]
        actions += [
            {"_op_type": "delete", "_index": self._alias, "_id": str(event_id)}
            for event_id in ids if event_id not in found
        ]
        # wait_for: the bulk answers once its documents are searchable, so the cursor (and the search cache's
        # generation) move only after the change can be found.
        _, errors = await async_bulk(self._client, actions, chunk_size=BULK_CHUNK, raise_on_error=False,
                                     raise_on_exception=True, refresh="wait_for")
        failed = [error for error in errors if not _missing_delete(error)]  # type: ignore[union-attr]
        if failed:
            raise RuntimeError(f"elasticsearch refused {len(failed)} document(s): {failed[:3]}")


def _missing_delete(error: Any) -> bool:
    """Deleting a document that is not there (an event created and deleted between two batches) is fine."""
    return isinstance(error, dict) and error.get("delete", {}).get("status") == 404
