"""The admin service's server: operator controls (AdminService), internal only.

Why a service of its own: operators need the waiting room's state (the queue's Redis keys and PostgreSQL settings)
and booking's use cases with its Stripe adapter in one place, and neither public service should carry the other's
code or an operator surface. This process wires the queue's repository (read-only: the line's counts) and booking's
domain, repository and payment gateway behind the admin domain's small ports; it is the one process allowed to
import two services, it is never routed on the public edge, and one replica is enough (k8s/README.md).
"""

from __future__ import annotations

import grpc

from admin_svc.domain import OperatorConsole
from admin_svc.repository import BookingOperations, EventControlsRepository, QueueLine
from admin_svc.servicer import AdminServicer
from admin_svc.settings import AdminSettings
from booking_svc.domain import BookingService
from booking_svc.holds import SeatHolds
from booking_svc.payments import PaymentGateway
from booking_svc.repository import BookingRecord, BookingRepository
from queue_svc.domain import WaitingRoom
from queue_svc.repository import RedisQueueRepository
from tix.admission import AdmissionEnds
from tix.seatfeed import SeatFeedPublisher
from tix.server import Runtime, ServiceDefinition
from tixpb.v1 import admin_pb2, admin_pb2_grpc

# The admin service only reads the line: settings a second old at most, and the queue's key lifetime.
_QUEUE_SETTINGS_CACHE_SECONDS = 1.0
_QUEUE_TTL_SECONDS = 2 * 24 * 3600


def build_console(runtime: Runtime[AdminSettings]) -> OperatorConsole[BookingRecord]:
    settings = runtime.settings
    holds = SeatHolds.from_urls(
        settings.lock_urls(), drift_factor=settings.lock_drift_factor, node_timeout=settings.lock_node_timeout_seconds
    )
    payments = PaymentGateway(settings)
    runtime.on_close(holds.aclose)
    runtime.on_close(payments.aclose)
    repository = BookingRepository(runtime.engine)
    # An operator's cancel frees the fan's waiting-room slot, as the fan's own cancel does.
    admission_ends = AdmissionEnds(runtime.redis)
    seat_feed = SeatFeedPublisher(runtime.redis, runtime.engine)
    bookings = BookingService(settings, repository, holds, payments, seat_feed, admission_ends)
    queue = RedisQueueRepository(
        runtime.redis, runtime.engine,
        event_cache_seconds=_QUEUE_SETTINGS_CACHE_SECONDS, ttl_seconds=_QUEUE_TTL_SECONDS,
    )
    # Read-only here: the room's pace rule (it needs the admission lifetime); it never issues a token.
    room = WaitingRoom(
        queue, admission_secret=settings.admission_secret, admission_ttl_seconds=settings.admission_ttl_seconds
    )
    return OperatorConsole(
        EventControlsRepository(runtime.engine, runtime.redis),
        QueueLine(queue, room),
        BookingOperations(bookings, repository, payments),
    )


async def setup(server: grpc.aio.Server, runtime: Runtime[AdminSettings]) -> None:
    admin_pb2_grpc.add_AdminServiceServicer_to_server(AdminServicer(build_console(runtime)), server)


SERVICE = ServiceDefinition(
    name="admin",
    service_names=(admin_pb2.DESCRIPTOR.services_by_name["AdminService"].full_name,),
    settings_type=AdminSettings,
    setup=setup,
)
