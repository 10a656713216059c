"""The queue service's server: the waiting room, its admission loop and watchers, slot freeing, health and
reflection."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import secrets
import socket
from typing import Any

import grpc

from queue_svc.domain import WaitingRoom
from queue_svc.repository import RedisQueueRepository
from queue_svc.servicer import QueueServicer, TicketRenderer
from queue_svc.settings import QueueSettings
from queue_svc.slots import run_slot_freeing
from queue_svc.stream_tokens import StreamTokenSigner
from queue_svc.watchers import STEPS_CHANNEL, QueueWatchers
from tix.admission import AdmissionEndsReader
from tix.logs import get_logger
from tix.redis_pool import as_text
from tix.server import Runtime, ServiceDefinition
from tixpb.v1 import queue_pb2, queue_pb2_grpc

log = get_logger("queue_svc.server")

_SERVICE_NAME = queue_pb2.DESCRIPTOR.services_by_name["QueueService"].full_name


class _CapturedHandlers:
    """Stands in for the server while the generated code registers the service, to keep its method handlers."""

    def __init__(self) -> None:
        self.handlers: dict[str, Any] = {}

    def add_generic_rpc_handlers(self, handlers: Any) -> None:
        pass

    def add_registered_method_handlers(self, name: str, handlers: dict[str, Any]) -> None:
        self.handlers = dict(handlers)


def _pass_through(message: bytes) -> bytes:
    return message


def add_queue_service(servicer: QueueServicer, server: grpc.aio.Server) -> None:
    """The generated registration, except that WatchQueue's messages arrive serialized (see the servicer)."""
    captured = _CapturedHandlers()
    queue_pb2_grpc.add_QueueServiceServicer_to_server(servicer, captured)
    handlers = captured.handlers
    handlers["WatchQueue"] = handlers["WatchQueue"]._replace(response_serializer=_pass_through)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(_SERVICE_NAME, handlers),))
    server.add_registered_method_handlers(_SERVICE_NAME, handlers)


async def _listen_for_steps(runtime: Runtime[QueueSettings], watchers: QueueWatchers) -> None:
    """Other processes announce the lines they step; this process then pushes at once."""
    while True:
        pubsub = runtime.redis.pubsub()
        try:
            await pubsub.subscribe(STEPS_CHANNEL)
            while True:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                if message is not None and message.get("type") == "message":
                    watchers.heard_step(as_text(message["data"]))
        except asyncio.CancelledError:
            raise
        except Exception as error:  # noqa: BLE001 - Redis may be briefly away; the ticks go on meanwhile
            log.warning("queue_step_listener_failed", error=repr(error))
            await asyncio.sleep(1.0)
        finally:
            with contextlib.suppress(Exception):
                await pubsub.aclose()


async def setup(server: grpc.aio.Server, runtime: Runtime[QueueSettings]) -> None:
    settings = runtime.settings
    repository = RedisQueueRepository(
        runtime.redis,
        runtime.engine,
        event_cache_seconds=settings.event_cache_seconds,
        ttl_seconds=settings.queue_ttl_seconds,
        presence_grace_seconds=settings.presence_grace_seconds,
    )
    room = WaitingRoom(
        repository,
        admission_secret=settings.admission_secret,
        admission_ttl_seconds=settings.admission_ttl_seconds,
    )
    owner = f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(4)}"
    watchers = QueueWatchers(
        room,
        TicketRenderer(),
        owner=owner,
        tick_seconds=settings.tick_seconds,
        heartbeat_seconds=settings.heartbeat_seconds,
        lease_seconds=max(3 * settings.tick_seconds, 1.0),
        presence_refresh_seconds=settings.presence_grace_seconds / 3,
    )
    runtime.spawn(watchers.run(), name="queue-admission-loop")
    runtime.spawn(watchers.announce_steps(runtime.redis.publish), name="queue-step-announcer")
    runtime.spawn(_listen_for_steps(runtime, watchers), name="queue-step-listener")
    ends = AdmissionEndsReader(runtime.redis, consumer=owner)
    runtime.spawn(run_slot_freeing(ends, room, watchers.step_now), name="queue-slot-freeing")
    stream_tokens = StreamTokenSigner(settings.stream_token_private_key, settings.stream_token_ttl_seconds)
    add_queue_service(QueueServicer(room, watchers, stream_tokens), server)
    _tune_garbage_collector()


# Young collections every 50,000 net allocations (not 700), full ones after 20 middle ones (not 10). With 20,000
# streams a full collection walks millions of objects and holds the event loop 0.4-2.9 s (measured: gc callbacks
# in the queue process during `python -m bench queue`, 9 full collections in 50 s with the defaults), stalling
# every step and health check; cyclic garbage is collected later, at the cost of some memory.
_GC_THRESHOLDS = (50_000, 20, 20)


def _tune_garbage_collector() -> None:
    """Fewer full collections, and none that walk what lives as long as the process (modules, descriptors,
    settings): they are frozen out of the collector once set up."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*_GC_THRESHOLDS)


SERVICE = ServiceDefinition(
    name="queue",
    service_names=(_SERVICE_NAME,),
    settings_type=QueueSettings,
    setup=setup,
)
