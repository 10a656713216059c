"""The queue service's server: the waiting room's servicer, health and reflection."""

from __future__ import annotations

import grpc

from queue_svc.settings import QueueSettings
from tix.server import Runtime, ServiceDefinition
from tix.v1 import queue_pb2, queue_pb2_grpc


async def setup(server: grpc.aio.Server, runtime: Runtime) -> None:
    # The waiting room lands with its own issue; until then the generated servicer answers UNIMPLEMENTED.
    queue_pb2_grpc.add_QueueServiceServicer_to_server(queue_pb2_grpc.QueueServiceServicer(), server)


SERVICE = ServiceDefinition(
    name="queue",
    service_names=(queue_pb2.DESCRIPTOR.services_by_name["QueueService"].full_name,),
    settings_type=QueueSettings,
    setup=setup,
)
