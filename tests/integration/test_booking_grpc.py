"""The booking service as the edge sees it: the in-process gRPC server with its interceptor, sweeper and webhook."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from google.api import httpbody_pb2
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from booking_svc.server import SERVICE
from tests.factories import create_event
from tests.integration.booking_harness import (
    age_booking,
    assert_never_sold_twice,
    booking_settings,
    intent_object,
    pay_as_fan,
    sign,
    stripe_event,
)
from tix.server import start_server
from tixpb.v1 import booking_pb2, booking_pb2_grpc

pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=<...>':DeprecationWarning")


@pytest.fixture
async def stub(db, redis, settings_env, redis_url, localstripe_url):
    running = await start_server(
        SERVICE, booking_settings(localstripe_url, port=0, redis_url=redis_url, sweeper_interval_seconds=0.1)
    )
    async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
        yield booking_pb2_grpc.BookingServiceStub(channel)
    await running.stop(grace=0)


def _as(user: str) -> tuple[tuple[str, str], ...]:
    return (("x-user-id", user),)


def _error_info(error: grpc.aio.AioRpcError) -> error_details_pb2.ErrorInfo:
    info = error_details_pb2.ErrorInfo()
    assert rpc_status.from_call(error).details[0].Unpack(info)
    return info


async def test_reserve_confirm_over_grpc_and_errors_carry_error_info(stub, db, localstripe_url):
    event = await create_event(db)
    request = booking_pb2.ReserveSeatsRequest(event_id=str(event.event_id), seat_ids=event.seat_ids[:2])

    with pytest.raises(grpc.aio.AioRpcError) as anonymous:
        await stub.ReserveSeats(request)
    assert anonymous.value.code() == grpc.StatusCode.UNAUTHENTICATED

    booking = await stub.ReserveSeats(request, metadata=_as("fan-1"))
    assert booking.status == booking_pb2.BOOKING_STATUS_RESERVED
    assert booking.payment.client_secret
    assert booking.expire_time.seconds > booking.create_time.seconds
    assert booking.total.amount_minor == 25000
    assert booking.total.currency_code == "USD"
    assert [s.seat_id for s in booking.seats] == event.seat_ids[:2]

    with pytest.raises(grpc.aio.AioRpcError) as taken:
        await stub.ReserveSeats(request, metadata=_as("fan-2"))
    assert taken.value.code() == grpc.StatusCode.ABORTED
    info = _error_info(taken.value)
    assert (info.reason, info.domain) == ("SEAT_UNAVAILABLE", "tix.dev")
    assert set(info.metadata["seat_ids"].split(",")) == set(event.seat_ids[:2])

    with pytest.raises(grpc.aio.AioRpcError) as hidden:
        await stub.GetBooking(booking_pb2.GetBookingRequest(booking_id=booking.booking_id), metadata=_as("fan-2"))
    assert hidden.value.code() == grpc.StatusCode.NOT_FOUND

    with pytest.raises(grpc.aio.AioRpcError) as unpaid:
        await stub.ConfirmBooking(
            booking_pb2.ConfirmBookingRequest(booking_id=booking.booking_id), metadata=_as("fan-1")
        )
    assert unpaid.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert _error_info(unpaid.value).reason == "PAYMENT_INCOMPLETE"

    await pay_as_fan(localstripe_url, booking.payment.payment_intent_id)
    confirmed = await stub.ConfirmBooking(
        booking_pb2.ConfirmBookingRequest(booking_id=booking.booking_id), metadata=_as("fan-1")
    )
    assert confirmed.status == booking_pb2.BOOKING_STATUS_CONFIRMED
    assert confirmed.payment.status == booking_pb2.PAYMENT_STATUS_SUCCEEDED
    assert confirmed.confirm_time.seconds > 0

    with pytest.raises(grpc.aio.AioRpcError) as bad:
        await stub.ReserveSeats(
            booking_pb2.ReserveSeatsRequest(event_id="abc", seat_ids=["x"]), metadata=_as("fan-1")
        )
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_a_hold_then_checkout_over_grpc(stub, db, localstripe_url):
    event = await create_event(db)
    held = await stub.ReserveSeats(
        booking_pb2.ReserveSeatsRequest(event_id=str(event.event_id), seat_ids=[event.seat_ids[0]],
                                        defer_payment=True),
        metadata=_as("fan-1"),
    )
    assert held.status == booking_pb2.BOOKING_STATUS_RESERVED
    assert (held.payment.payment_intent_id, held.payment.client_secret) == ("", "")
    with pytest.raises(grpc.aio.AioRpcError) as unpaid:
        await stub.ConfirmBooking(booking_pb2.ConfirmBookingRequest(booking_id=held.booking_id), metadata=_as("fan-1"))
    assert _error_info(unpaid.value).reason == "PAYMENT_INCOMPLETE"
    with pytest.raises(grpc.aio.AioRpcError) as hidden:
        await stub.CheckoutBooking(booking_pb2.CheckoutBookingRequest(booking_id=held.booking_id), metadata=_as("fan-2"))
    assert (hidden.value.code(), _error_info(hidden.value).reason) == (grpc.StatusCode.NOT_FOUND, "BOOKING_NOT_FOUND")

    checkout = booking_pb2.CheckoutBookingRequest(booking_id=held.booking_id)
    first = await stub.CheckoutBooking(checkout, metadata=_as("fan-1"))
    again = await stub.CheckoutBooking(checkout, metadata=_as("fan-1"))
    assert first.payment.client_secret
    assert first.payment.payment_intent_id
    assert again.payment.payment_intent_id == first.payment.payment_intent_id
    await pay_as_fan(localstripe_url, first.payment.payment_intent_id)
    confirmed = await stub.ConfirmBooking(booking_pb2.ConfirmBookingRequest(booking_id=held.booking_id),
                                          metadata=_as("fan-1"))
    assert confirmed.status == booking_pb2.BOOKING_STATUS_CONFIRMED

    cancelled = await stub.ReserveSeats(
        booking_pb2.ReserveSeatsRequest(event_id=str(event.event_id), seat_ids=[event.seat_ids[1]],
                                        defer_payment=True),
        metadata=_as("fan-1"),
    )
    await stub.CancelBooking(booking_pb2.CancelBookingRequest(booking_id=cancelled.booking_id), metadata=_as("fan-1"))
    with pytest.raises(grpc.aio.AioRpcError) as ended:
        await stub.CheckoutBooking(booking_pb2.CheckoutBookingRequest(booking_id=cancelled.booking_id),
                                   metadata=_as("fan-1"))
    assert (ended.value.code(), _error_info(ended.value).reason) == (
        grpc.StatusCode.FAILED_PRECONDITION, "BOOKING_CANCELLED"
    )


async def test_the_webhook_needs_stripes_signature_and_no_user(stub, db, localstripe_url):
    event = await create_event(db)
    booking = await stub.ReserveSeats(
        booking_pb2.ReserveSeatsRequest(event_id=str(event.event_id), seat_ids=[event.seat_ids[0]]),
        metadata=_as("fan-1"),
    )
    await pay_as_fan(localstripe_url, booking.payment.payment_intent_id)
    payload = stripe_event("payment_intent.succeeded", await intent_object(localstripe_url,
                                                                             booking.payment.payment_intent_id))
    body = httpbody_pb2.HttpBody(content_type="application/json", data=payload)

    with pytest.raises(grpc.aio.AioRpcError) as forged:
        await stub.HandleStripeWebhook(body, metadata=(("stripe-signature", sign(payload, secret="whsec_evil")),))
    assert forged.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert _error_info(forged.value).reason == "WEBHOOK_SIGNATURE_INVALID"

    await stub.HandleStripeWebhook(body, metadata=(("stripe-signature", sign(payload)),))
    after = await stub.GetBooking(booking_pb2.GetBookingRequest(booking_id=booking.booking_id),
                                  metadata=_as("fan-1"))
    assert after.status == booking_pb2.BOOKING_STATUS_CONFIRMED


async def test_two_hundred_fans_over_grpc_for_twenty_seats(stub, db):
    event = await create_event(db, sections=1, rows=2, seats_per_row=10, layout_id="grpc-20")

    async def fan(i: int):
        seat = event.seat_ids[i % 20]
        try:
            return await stub.ReserveSeats(
                booking_pb2.ReserveSeatsRequest(event_id=str(event.event_id), seat_ids=[seat], request_id=f"r{i}"),
                metadata=_as(f"fan-{i}"),
            )
        except grpc.aio.AioRpcError as error:
            if error.code() != grpc.StatusCode.ABORTED:
                raise
            return None

    results = await asyncio.gather(*(fan(i) for i in range(200)))
    won = [r for r in results if r is not None]
    assert len(won) == 20
    owner = await assert_never_sold_twice(db, event.event_id)
    assert set(owner) == set(event.seat_ids)


async def test_the_servers_sweeper_expires_overdue_holds(stub, db):
    event = await create_event(db)
    booking = await stub.ReserveSeats(
        booking_pb2.ReserveSeatsRequest(event_id=str(event.event_id), seat_ids=[event.seat_ids[0]]),
        metadata=_as("fan-1"),
    )
    await age_booking(db, booking.booking_id)
    for _ in range(100):
        found = await stub.GetBooking(booking_pb2.GetBookingRequest(booking_id=booking.booking_id),
                                      metadata=_as("fan-1"))
        # The sweeper expires the booking first, then cancels its PaymentIntent.
        if (found.status, found.payment.status) == (
            booking_pb2.BOOKING_STATUS_EXPIRED, booking_pb2.PAYMENT_STATUS_CANCELED
        ):
            break
        await asyncio.sleep(0.1)
    assert found.status == booking_pb2.BOOKING_STATUS_EXPIRED
    assert found.payment.status == booking_pb2.PAYMENT_STATUS_CANCELED
