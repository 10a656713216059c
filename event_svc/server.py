"""The event service's server: wires the stores into the viewing use cases, the seat hub and the servicer."""

from __future__ import annotations

from datetime import UTC, datetime

import grpc

from event_svc.domain import EventViewing, LayoutCache
from event_svc.repository import CatalogRepository, RedisAvailability, RedisCatalogCache
from event_svc.seat_hub import SeatHub
from event_svc.servicer import EventServicer
from event_svc.settings import EventSettings
from tix.server import Runtime, ServiceDefinition
from tixpb.v1 import event_pb2, event_pb2_grpc


def _now() -> datetime:
    return datetime.now(UTC)


async def setup(server: grpc.aio.Server, runtime: Runtime[EventSettings]) -> None:
    settings = runtime.settings
    store = CatalogRepository(runtime.engine)
    layouts = LayoutCache(store, settings.layout_cache_size)
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
    )
    hub = SeatHub(runtime.redis, viewing, watcher_queue_size=settings.watcher_queue_size)
    runtime.spawn(hub.run(), name="seat-hub")
    runtime.spawn(layouts.warm(), name="seat-layouts-warm-up")
    runtime.on_close(hub.close)
    event_pb2_grpc.add_EventServiceServicer_to_server(EventServicer(viewing, hub), server)


SERVICE = ServiceDefinition(
    name="event",
    service_names=(event_pb2.DESCRIPTOR.services_by_name["EventService"].full_name,),
    settings_type=EventSettings,
    setup=setup,
)
