"""The search service's server: picks the search backend from settings, runs the outbox indexer, serves."""

from __future__ import annotations

from datetime import UTC, datetime

import grpc
from prometheus_client import Counter

from search_svc.domain import EventSearch, SearchBackend
from search_svc.postgres import PostgresSearchBackend
from search_svc.repository import RedisSearchCache
from search_svc.runner import build_indexers, build_sinks
from search_svc.servicer import SearchServicer
from search_svc.settings import SearchSettings
from tix.server import Runtime, ServiceDefinition
from tixpb.v1 import search_pb2, search_pb2_grpc

SEARCHES = Counter("tix_search_queries_total", "Searches answered, by whether the cache answered.", ["cached"])


def _now() -> datetime:
    return datetime.now(UTC)


def build_backend(settings: SearchSettings, runtime: Runtime[SearchSettings]) -> SearchBackend:
    """The one place a backend is chosen; an Elasticsearch backend slots in here by configuration."""
    if settings.search_backend == "postgres":
        return PostgresSearchBackend(runtime.reader)
    raise ValueError(f"unknown search backend {settings.search_backend!r}")


async def setup(server: grpc.aio.Server, runtime: Runtime[SearchSettings]) -> None:
    settings = runtime.settings
    search = EventSearch(
        build_backend(settings, runtime),
        RedisSearchCache(runtime.redis, settings.search_cache_seconds),
        on_served=lambda cached: SEARCHES.labels("true" if cached else "false").inc(),
    )
    if settings.indexer_enabled:
        # Every worker and replica runs one per sink; one of them leads (search_svc.indexer).
        for indexer in build_indexers(settings, runtime.engine, build_sinks(settings)):
            runtime.spawn(indexer.run(), name=f"search-outbox-indexer-{indexer.sink.name}")
    search_pb2_grpc.add_SearchServiceServicer_to_server(SearchServicer(search, _now), server)


SERVICE = ServiceDefinition(
    name="search",
    service_names=(search_pb2.DESCRIPTOR.services_by_name["SearchService"].full_name,),
    settings_type=SearchSettings,
    setup=setup,
)
