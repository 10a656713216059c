"""Wiring of the search index outside the gRPC server: the sinks the configured backend needs, indexers over them
for ``tix search index`` (and the server), and a full rebuild for ``tix search reindex``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from search_svc.es_backend import ElasticsearchSink, open_client
from search_svc.es_backend import reindex as reindex_elasticsearch
from search_svc.indexer import IndexSink, OutboxIndexer, PostgresDocumentSink
from search_svc.repository import bump_search_generation
from search_svc.settings import SearchSettings
from tix.db import create_engine
from tix.search_documents import upsert_documents_sql

if TYPE_CHECKING:
    from elasticsearch import AsyncElasticsearch

_REBUILD_RANGE = text(upsert_documents_sql("e.event_id BETWEEN :first AND :last"))
_DROP_ORPHANS = text(
    "DELETE FROM search_documents d WHERE NOT EXISTS (SELECT 1 FROM events e WHERE e.event_id = d.event_id)"
)


def elasticsearch_client(settings: SearchSettings) -> AsyncElasticsearch | None:
    """The Elasticsearch client when that backend is configured (the caller closes it)."""
    if settings.search_backend != "elasticsearch":
        return None
    return open_client(settings.elasticsearch_url, settings.elasticsearch_timeout_seconds)


def build_sinks(
    settings: SearchSettings, engine: AsyncEngine, es_client: AsyncElasticsearch | None = None
) -> list[IndexSink]:
    """The PostgreSQL documents are always kept current (switching the backend back is then instant); a configured
    external backend gets its own sink, with its own cursor, fed from the same outbox."""
    sinks: list[IndexSink] = [PostgresDocumentSink()]
    if es_client is not None:
        sinks.append(ElasticsearchSink(es_client, engine, settings.elasticsearch_index))
    return sinks


def build_indexers(
    settings: SearchSettings,
    engine: AsyncEngine,
    sinks: list[IndexSink],
    on_applied: Callable[[], Awaitable[None]] | None = None,
) -> list[OutboxIndexer]:
    """One indexer per sink; ``on_applied`` (the search cache's generation) follows the sink of the backend that
    answers searches (the last one: the external backend when one is configured)."""
    return [
        OutboxIndexer(
            engine,
            settings.database_url,
            sink,
            poll_seconds=settings.indexer_poll_seconds,
            batch_size=settings.indexer_batch_size,
            gap_seconds=settings.indexer_gap_seconds,
            standby_seconds=settings.indexer_standby_seconds,
            listen=settings.indexer_listen,
            on_applied=on_applied if sink is sinks[-1] else None,
            # One pruner: the PostgreSQL documents' indexer, which every configuration runs.
            retention_seconds=settings.outbox_retention_hours * 3600 if sink is sinks[0] else None,
        )
        for sink in sinks
    ]


@asynccontextmanager
async def open_indexers(settings: SearchSettings) -> AsyncIterator[list[OutboxIndexer]]:
    from redis.asyncio import Redis

    engine = create_engine(settings, pool_size=3)
    es_client = elasticsearch_client(settings)
    redis = Redis.from_url(settings.redis_url)
    try:
        sinks = build_sinks(settings, engine, es_client)
        yield build_indexers(settings, engine, sinks, on_applied=lambda: bump_search_generation(redis))
    finally:
        if es_client is not None:
            await es_client.close()
        await redis.aclose()
        await engine.dispose()


async def reindex_postgres(engine: AsyncEngine, *, batch_size: int, progress: bool) -> int:
    """Rebuild every search document in place, a range of event ids per transaction; returns how many."""
    import typer

    async with engine.connect() as conn:
        bounds = (await conn.execute(text("SELECT min(event_id), max(event_id), count(*) FROM events"))).one()
    first_id, last_id, total = bounds
    rebuilt = 0
    with typer.progressbar(length=int(total), label="search documents", hidden=not progress) as bar:
        if first_id is not None:
            for first in range(first_id, last_id + 1, batch_size):
                last = min(last_id, first + batch_size - 1)
                async with engine.begin() as conn:
                    count = (await conn.execute(_REBUILD_RANGE, {"first": first, "last": last})).rowcount
                rebuilt += count
                bar.update(count)
    async with engine.begin() as conn:
        await conn.execute(_DROP_ORPHANS)
    return rebuilt


async def reindex(settings: SearchSettings, *, batch_size: int, progress: bool) -> str:
    """Rebuild the configured backend's index from the catalog; returns a one-line summary."""
    engine = create_engine(settings, pool_size=2)
    es_client = elasticsearch_client(settings)
    try:
        if es_client is None:
            count = await reindex_postgres(engine, batch_size=batch_size, progress=progress)
            return f"rebuilt {count:,} PostgreSQL search documents"
        import typer

        with typer.progressbar(length=0, label="elasticsearch documents", hidden=not progress) as bar:
            def total(count: int) -> None:
                bar.length = count

            index, count = await reindex_elasticsearch(
                es_client, engine, settings.elasticsearch_index, batch_size=batch_size, on_progress=bar.update,
                on_total=total,
            )
        return f"indexed {count:,} events into {index}; alias {settings.elasticsearch_index} now points to it"
    finally:
        if es_client is not None:
            await es_client.close()
        await engine.dispose()
