"""ListBookings over gRPC: a fan sees only their own bookings, newest first, in keyset pages (AIP-158)."""

from __future__ import annotations

import grpc
import pytest

from booking_svc.server import SERVICE
from tests.factories import create_event
from tests.integration.booking_harness import booking_settings
from tix.server import start_server
from tixpb.v1 import booking_pb2, booking_pb2_grpc

pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=<...>':DeprecationWarning")


@pytest.fixture
async def stub(db, redis, settings_env, redis_url, localstripe_url):
    running = await start_server(SERVICE, booking_settings(localstripe_url, port=0, redis_url=redis_url))
    async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
        yield booking_pb2_grpc.BookingServiceStub(channel)
    await running.stop(grace=0)


def _as(user: str) -> tuple[tuple[str, str], ...]:
    return (("x-user-id", user),)


async def _reserve(stub, event_id: int, seat_id: str, user: str) -> booking_pb2.Booking:
    request = booking_pb2.ReserveSeatsRequest(event_id=str(event_id), seat_ids=[seat_id])
    return await stub.ReserveSeats(request, metadata=_as(user))


async def _all_pages(stub, user: str, page_size: int) -> tuple[list[str], int]:
    ids, token, pages = [], "", 0
    while True:
        page = await stub.ListBookings(
            booking_pb2.ListBookingsRequest(page_size=page_size, page_token=token), metadata=_as(user)
        )
        pages += 1
        ids += [b.booking_id for b in page.bookings]
        token = page.next_page_token
        if not token:
            return ids, pages


async def test_a_fan_lists_only_their_own_bookings_newest_first_in_pages(stub, db):
    event = await create_event(db)
    mine = [await _reserve(stub, event.event_id, seat, "lister-1") for seat in event.seat_ids[:5]]
    await _reserve(stub, event.event_id, event.seat_ids[5], "lister-2")

    ids, pages = await _all_pages(stub, "lister-1", page_size=2)
    assert ids == [b.booking_id for b in reversed(mine)]
    assert pages == 3

    first = await stub.ListBookings(booking_pb2.ListBookingsRequest(), metadata=_as("lister-1"))
    assert [b.booking_id for b in first.bookings] == ids
    assert first.next_page_token == ""
    newest = first.bookings[0]
    assert newest.user_id == "lister-1"
    assert newest.status == booking_pb2.BOOKING_STATUS_RESERVED
    assert [s.seat_id for s in newest.seats] == [event.seat_ids[4]]
    assert newest.seats[0].row_label
    assert newest.total.amount_minor > 0

    others = await stub.ListBookings(booking_pb2.ListBookingsRequest(), metadata=_as("lister-3"))
    assert list(others.bookings) == []
    assert others.next_page_token == ""


async def test_bookings_made_while_paging_do_not_shift_the_later_pages(stub, db):
    event = await create_event(db)
    made = [await _reserve(stub, event.event_id, seat, "pager") for seat in event.seat_ids[:4]]
    first = await stub.ListBookings(booking_pb2.ListBookingsRequest(page_size=2), metadata=_as("pager"))
    assert [b.booking_id for b in first.bookings] == [made[3].booking_id, made[2].booking_id]
    await _reserve(stub, event.event_id, event.seat_ids[4], "pager")
    second = await stub.ListBookings(
        booking_pb2.ListBookingsRequest(page_size=2, page_token=first.next_page_token), metadata=_as("pager")
    )
    assert [b.booking_id for b in second.bookings] == [made[1].booking_id, made[0].booking_id]


@pytest.mark.parametrize(
    ("request_fields", "field"),
    [({"page_size": -1}, "page_size"), ({"page_token": "not-a-token"}, "page_token"),
     ({"page_token": "eyJ0IjoxfQ"}, "page_token")],  # {"t":1}: ours in shape, not in content
)
async def test_bad_page_requests_are_invalid_argument_naming_the_field(stub, db, request_fields, field):
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.ListBookings(booking_pb2.ListBookingsRequest(**request_fields), metadata=_as("fan"))
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in refused.value.details()


async def test_listing_needs_a_signed_in_fan(stub, db):
    with pytest.raises(grpc.aio.AioRpcError) as anonymous:
        await stub.ListBookings(booking_pb2.ListBookingsRequest())
    assert anonymous.value.code() == grpc.StatusCode.UNAUTHENTICATED
