"""The booking service's server: wires settings, stores, Stripe and the sweeper to the servicer; nothing else."""

from __future__ import annotations

import grpc

from booking_svc.allocation import SeatAllocator
from booking_svc.domain import BookingService
from booking_svc.holds import SeatHolds
from booking_svc.payments import PaymentGateway
from booking_svc.reaper import run_reaper
from booking_svc.repository import BookingRepository
from booking_svc.servicer import BookingServicer
from booking_svc.settings import BookingSettings
from booking_svc.sweeper import run_sweeper
from tix.admission import AdmissionEnds
from tix.db import libpq_url
from tix.seatfeed import SeatFeedPublisher
from tix.server import Runtime, ServiceDefinition
from tixpb.v1 import booking_pb2, booking_pb2_grpc


def build_booking_service(settings: BookingSettings, runtime: Runtime[BookingSettings]) -> BookingService:
    holds = SeatHolds.from_urls(
        settings.lock_urls(), drift_factor=settings.lock_drift_factor, node_timeout=settings.lock_node_timeout_seconds
    )
    payments = PaymentGateway(settings, runtime.redis)
    runtime.on_close(holds.aclose)
    runtime.on_close(payments.aclose)
    seat_feed = SeatFeedPublisher(runtime.redis, runtime.engine)
    admission_ends = AdmissionEnds(runtime.redis)
    allocator = SeatAllocator(
        holds.first_node, redis_url=settings.lock_urls()[0], dsn=libpq_url(settings.database_url),
        load_wait_seconds=settings.allocator_load_wait_seconds,
    )
    holds.on_release(allocator.returned)
    repository = BookingRepository(runtime.engine)
    if settings.hold_reaper_interval_seconds > 0:
        runtime.spawn(run_reaper(holds, repository, settings), name="booking-hold-reaper")
    return BookingService(settings, repository, holds, payments, seat_feed, admission_ends, allocator)


async def setup(server: grpc.aio.Server, runtime: Runtime[BookingSettings]) -> None:
    settings = runtime.settings
    bookings = build_booking_service(settings, runtime)
    booking_pb2_grpc.add_BookingServiceServicer_to_server(BookingServicer(bookings), server)
    runtime.spawn(run_sweeper(bookings, settings.sweeper_interval_seconds), name="booking-sweeper")


SERVICE = ServiceDefinition(
    name="booking",
    service_names=(booking_pb2.DESCRIPTOR.services_by_name["BookingService"].full_name,),
    settings_type=BookingSettings,
    setup=setup,
)
