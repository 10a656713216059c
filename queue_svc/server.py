"""The queue service's server: the waiting room, its watcher loop, health and reflection."""

from __future__ import annotations

import os
import secrets
import socket

import grpc

from queue_svc.domain import WaitingRoom
from queue_svc.repository import RedisQueueRepository
from queue_svc.servicer import QueueServicer
from queue_svc.settings import QueueSettings
from queue_svc.slots import run_slot_freeing
from queue_svc.stream_tokens import StreamTokenSigner
from queue_svc.watchers import QueueWatchers
from tix.admission import AdmissionEndsReader
from tix.server import Runtime, ServiceDefinition
from tixpb.v1 import queue_pb2, queue_pb2_grpc


async def setup(server: grpc.aio.Server, runtime: Runtime[QueueSettings]) -> None:
    settings = runtime.settings
    repository = RedisQueueRepository(
        runtime.redis,
        runtime.engine,
        event_cache_seconds=settings.event_cache_seconds,
        ttl_seconds=settings.queue_ttl_seconds,
    )
    room = WaitingRoom(
        repository,
        admission_secret=settings.admission_secret,
        admission_ttl_seconds=settings.admission_ttl_seconds,
    )
    watchers = QueueWatchers(room, tick_seconds=settings.tick_seconds, heartbeat_seconds=settings.heartbeat_seconds)
    runtime.spawn(watchers.run(), name="queue-watchers")
    ends = AdmissionEndsReader(runtime.redis, consumer=f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(4)}")
    runtime.spawn(run_slot_freeing(ends, room, watchers.step_now), name="queue-slot-freeing")
    stream_tokens = StreamTokenSigner(settings.stream_token_private_key, settings.stream_token_ttl_seconds)
    queue_pb2_grpc.add_QueueServiceServicer_to_server(QueueServicer(room, watchers, stream_tokens), server)


SERVICE = ServiceDefinition(
    name="queue",
    service_names=(queue_pb2.DESCRIPTOR.services_by_name["QueueService"].full_name,),
    settings_type=QueueSettings,
    setup=setup,
)
