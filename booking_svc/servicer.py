"""BookingService over gRPC: proto in, one domain call, proto out. Errors are domain exceptions, mapped to statuses
by the shared interceptor."""

from __future__ import annotations

import time
from typing import cast

import grpc
from google.api import httpbody_pb2
from google.protobuf import empty_pb2

from booking_svc.domain import BestAvailable, BookingService, SeatRequest
from booking_svc.model import BookingRecord
from tix.catalog import timestamp
from tix.identity import require_user_id
from tix.validation import optional_request_id, require_numeric_id, require_uuid
from tixpb.v1 import booking_pb2, booking_pb2_grpc, common_pb2

_BOOKING_STATUS = {
    "reserved": booking_pb2.BOOKING_STATUS_RESERVED,
    "confirmed": booking_pb2.BOOKING_STATUS_CONFIRMED,
    "cancelled": booking_pb2.BOOKING_STATUS_CANCELLED,
    "expired": booking_pb2.BOOKING_STATUS_EXPIRED,
    "refunded": booking_pb2.BOOKING_STATUS_REFUNDED,
}
_PAYMENT_STATUS = {
    "requires_payment": booking_pb2.PAYMENT_STATUS_REQUIRES_PAYMENT,
    "processing": booking_pb2.PAYMENT_STATUS_PROCESSING,
    "succeeded": booking_pb2.PAYMENT_STATUS_SUCCEEDED,
    "failed": booking_pb2.PAYMENT_STATUS_FAILED,
    "canceled": booking_pb2.PAYMENT_STATUS_CANCELED,
    "refunded": booking_pb2.PAYMENT_STATUS_REFUNDED,
}
STRIPE_SIGNATURE_METADATA = "stripe-signature"


class BookingServicer(booking_pb2_grpc.BookingServiceServicer):
    def __init__(self, bookings: BookingService) -> None:
        self._bookings = bookings

    async def ReserveSeats(self, request: booking_pb2.ReserveSeatsRequest, context: grpc.aio.ServicerContext) -> booking_pb2.Booking:
        user_id = require_user_id(context.invocation_metadata())
        best = None
        if request.HasField("best_available"):
            wish = request.best_available
            best = BestAvailable(wish.quantity, wish.section_id or None, wish.price_tier)
        # None without a deadline (the stubs say float).
        remaining = cast("float | None", context.time_remaining())
        record = await self._bookings.reserve_seats(
            SeatRequest(
                user_id=user_id,
                event_id=require_numeric_id(request.event_id, "event_id"),
                seat_ids=tuple(request.seat_ids),
                best_available=best,
                admission_token=request.admission_token,
                request_id=optional_request_id(request.request_id),
                defer_payment=request.defer_payment,
            ),
            deadline=time.monotonic() + remaining if remaining is not None else None,
        )
        return render_booking(record)

    async def CheckoutBooking(self, request: booking_pb2.CheckoutBookingRequest, context: grpc.aio.ServicerContext) -> booking_pb2.Booking:
        user_id = require_user_id(context.invocation_metadata())
        optional_request_id(request.request_id)  # checkout is idempotent by nature; the id is only checked
        record = await self._bookings.checkout_booking(user_id, require_uuid(request.booking_id, "booking_id"))
        return render_booking(record)

    async def ConfirmBooking(self, request: booking_pb2.ConfirmBookingRequest, context: grpc.aio.ServicerContext) -> booking_pb2.Booking:
        user_id = require_user_id(context.invocation_metadata())
        optional_request_id(request.request_id)  # confirming is idempotent by nature; the id is only checked
        record = await self._bookings.confirm_booking(user_id, require_uuid(request.booking_id, "booking_id"))
        return render_booking(record)

    async def CancelBooking(self, request: booking_pb2.CancelBookingRequest, context: grpc.aio.ServicerContext) -> booking_pb2.Booking:
        user_id = require_user_id(context.invocation_metadata())
        optional_request_id(request.request_id)  # cancelling is idempotent by nature; the id is only checked
        record = await self._bookings.cancel_booking(user_id, require_uuid(request.booking_id, "booking_id"))
        return render_booking(record)

    async def GetBooking(self, request: booking_pb2.GetBookingRequest, context: grpc.aio.ServicerContext) -> booking_pb2.Booking:
        user_id = require_user_id(context.invocation_metadata())
        record = await self._bookings.get_booking(user_id, require_uuid(request.booking_id, "booking_id"))
        return render_booking(record)

    async def ListBookings(
        self, request: booking_pb2.ListBookingsRequest, context: grpc.aio.ServicerContext
    ) -> booking_pb2.ListBookingsResponse:
        user_id = require_user_id(context.invocation_metadata())
        page = await self._bookings.list_bookings(user_id, request.page_size, request.page_token)
        return booking_pb2.ListBookingsResponse(
            bookings=[render_booking(record) for record in page.bookings], next_page_token=page.next_page_token
        )

    async def HandleStripeWebhook(
        self, request: httpbody_pb2.HttpBody, context: grpc.aio.ServicerContext
    ) -> empty_pb2.Empty:
        signature = ""
        for key, value in context.invocation_metadata() or ():
            if key == STRIPE_SIGNATURE_METADATA:
                signature = value.decode() if isinstance(value, bytes) else value
        await self._bookings.handle_stripe_webhook(request.data, signature)
        return empty_pb2.Empty()


def render_booking(record: BookingRecord) -> booking_pb2.Booking:
    currency = record.currency
    booking = booking_pb2.Booking(
        booking_id=str(record.booking_id),
        event_id=str(record.event_id),
        user_id=record.user_id,
        status=_BOOKING_STATUS[record.status],
        status_reason=record.status_reason,
        seats=[
            booking_pb2.BookedSeat(
                seat_id=s.seat_id, section_id=s.section_id, row_label=s.row_label, number=s.number,
                price=common_pb2.Money(currency_code=currency, amount_minor=s.price_minor),
            )
            for s in record.seats
        ],
        total=common_pb2.Money(currency_code=currency, amount_minor=record.total_minor),
        payment=booking_pb2.Payment(
            payment_intent_id=record.payment_intent_id or "",
            client_secret=record.client_secret or "",
            status=_PAYMENT_STATUS.get(record.payment_status, booking_pb2.PAYMENT_STATUS_UNSPECIFIED),
            amount=common_pb2.Money(currency_code=currency, amount_minor=record.amount_minor),
        ),
        create_time=timestamp(record.created_at),
        expire_time=timestamp(record.expires_at),
        confirm_time=timestamp(record.confirmed_at),
    )
    return booking
