"""The search service's server: picks the search backend from settings, runs the outbox indexer, serves."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

import grpc
from prometheus_client import Counter

from search_svc.domain import EventSearch, SearchBackend
from search_svc.es_backend import ElasticsearchSearchBackend
from search_svc.postgres import PostgresSearchBackend
from search_svc.repository import RedisSearchCache, bump_search_generation
from search_svc.runner import build_indexers, build_sinks, elasticsearch_client
from search_svc.servicer import SearchServicer
from search_svc.settings import SearchSettings
from tix.server import Runtime, ServiceDefinition
from tixpb.v1 import search_pb2, search_pb2_grpc

if TYPE_CHECKING:
    from elasticsearch import AsyncElasticsearch

SEARCHES = Counter("tix_search_queries_total", "Searches answered, by whether the cache answered.", ["cached"])


def _now() -> datetime:
    return datetime.now(UTC)


def build_backend(
    settings: SearchSettings, runtime: Runtime[SearchSettings], es_client: AsyncElasticsearch | None
) -> SearchBackend:
    """The one place a backend is chosen, by TIX_SEARCH_BACKEND (a client exists exactly for "elasticsearch")."""
    if es_client is not None:
        return ElasticsearchSearchBackend(es_client, settings.elasticsearch_index)
    return PostgresSearchBackend(runtime.reader)


async def setup(server: grpc.aio.Server, runtime: Runtime[SearchSettings]) -> None:
    settings = runtime.settings
    es_client = elasticsearch_client(settings)
    if es_client is not None:
        runtime.on_close(es_client.close)
    search = EventSearch(
        build_backend(settings, runtime, es_client),
        RedisSearchCache(runtime.redis, settings.search_cache_seconds),
        on_served=lambda cached: SEARCHES.labels("true" if cached else "false").inc(),
    )
    if settings.indexer_enabled:
        # Every worker and replica runs one per sink; one of them leads (search_svc.indexer).
        sinks = build_sinks(settings, runtime.engine, es_client)
        indexers = build_indexers(
            settings, runtime.engine, sinks, on_applied=lambda: bump_search_generation(runtime.redis)
        )
        for indexer in indexers:
            runtime.spawn(indexer.run(), name=f"search-outbox-indexer-{indexer.sink.name}")
    search_pb2_grpc.add_SearchServiceServicer_to_server(SearchServicer(search, _now), server)


SERVICE = ServiceDefinition(
    name="search",
    service_names=(search_pb2.DESCRIPTOR.services_by_name["SearchService"].full_name,),
    settings_type=SearchSettings,
    setup=setup,
)
