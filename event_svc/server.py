"""The event service's server: wires the stores into the viewing use cases, the caches, the seat hub, the gRPC
servicer and the HTTP listener beside it (the edge's cacheable reads and live seat streams)."""

from __future__ import annotations

from datetime import UTC, datetime

import grpc

from event_svc.domain import EventViewing, LayoutCache
from event_svc.http_api import ReadApi, start_http
from event_svc.read_cache import RedisFeedClock, RepresentationCache
from event_svc.repository import CatalogRepository, RedisAvailability, RedisCatalogCache
from event_svc.seat_hub import SeatHub
from event_svc.servicer import EventServicer
from event_svc.settings import EventSettings
from tix.redis_pool import create_redis
from tix.server import Runtime, ServiceDefinition
from tixpb.v1 import event_pb2, event_pb2_grpc


def _now() -> datetime:
    return datetime.now(UTC)


async def setup(server: grpc.aio.Server, runtime: Runtime[EventSettings]) -> None:
    settings = runtime.settings
    store = CatalogRepository(runtime.engine, runtime.reader)
    layouts = LayoutCache(store, settings.layout_cache_size)
    clocks = RedisFeedClock(runtime.redis, freshness=settings.read_freshness_seconds)
    viewing = EventViewing(
        store=store,
        cache=RedisCatalogCache(
            runtime.redis,
            catalog_seconds=settings.catalog_cache_seconds,
            missing_seconds=settings.missing_event_cache_seconds,
        ),
        availability=RedisAvailability(runtime.redis, runtime.engine, store),
        layouts=layouts,
        clock=_now,
        clocks=clocks,
        full_view_max_seats=settings.full_view_page_seats,
    )
    hub = SeatHub(
        runtime.redis,
        viewing,
        watcher_queue_size=settings.watcher_queue_size,
        recent_size=settings.watch_recent_publications,
        heartbeat_seconds=settings.watch_heartbeat_seconds,
        batch_seconds=settings.watch_batch_seconds,
        linger_seconds=settings.watch_linger_seconds,
        on_publication=clocks.note_publication,
    )
    runtime.spawn(hub.run(), name="seat-hub")
    runtime.spawn(layouts.warm(), name="seat-layouts-warm-up")
    runtime.on_close(hub.close)
    event_pb2_grpc.add_EventServiceServicer_to_server(EventServicer(viewing, hub), server)

    if settings.http_port:
        # Rendered answers are bytes (compressed bodies): a client that does not decode replies.
        blobs = create_redis(settings.redis_url, max_connections=50, decode_responses=False)
        runtime.on_close(blobs.aclose)
        cache = RepresentationCache(
            blobs,
            clocks,
            size=settings.representation_cache_size,
            redis_seconds=settings.representation_redis_seconds,
            degraded_seconds=settings.degraded_cache_seconds,
            max_life_seconds=settings.representation_max_life_seconds,
            refresh_seconds=settings.representation_refresh_seconds,
            stale_seconds=settings.representation_stale_seconds,
        )
        api = ReadApi(viewing, cache, hub, settings, draining=runtime.draining)
        runner = await start_http(api, settings.host, settings.http_port)
        runtime.on_close(runner.cleanup)


SERVICE = ServiceDefinition(
    name="event",
    service_names=(event_pb2.DESCRIPTOR.services_by_name["EventService"].full_name,),
    settings_type=EventSettings,
    setup=setup,
)
