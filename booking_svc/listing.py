"""ListBookings: a fan's own bookings, newest first, in keyset pages (AIP-158).

A page token holds the position of the last booking shown (its create time in microseconds and its id), so a page
is one index range scan however far back the fan pages, and bookings made meanwhile never shift later pages.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from booking_svc.model import BookingRecord
from tix.errors import InvalidArgument
from tix.page_tokens import decode_page_token, encode_page_token

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)

Position = tuple[datetime, uuid.UUID]


class BookingLister(Protocol):
    async def list_user_bookings(self, user_id: str, limit: int, after: Position | None) -> list[BookingRecord]: ...


@dataclass(frozen=True)
class BookingPage:
    bookings: tuple[BookingRecord, ...]
    next_page_token: str


def page_size_of(requested: int) -> int:
    if requested < 0:
        raise InvalidArgument("page_size", "must not be negative")
    return min(requested or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)


def encode_position(created_at: datetime, booking_id: uuid.UUID) -> str:
    return encode_page_token({"t": (created_at - _EPOCH) // _MICROSECOND, "b": str(booking_id)})


def decode_position(token: str) -> Position | None:
    if not token:
        return None
    data = decode_page_token(token)
    micros, booking = data.get("t"), data.get("b")
    if not isinstance(micros, int) or not isinstance(booking, str) or set(data) != {"t", "b"}:
        raise InvalidArgument("page_token", "is not a token this service issued")
    try:
        return _EPOCH + micros * _MICROSECOND, uuid.UUID(booking)
    except (ValueError, OverflowError):
        raise InvalidArgument("page_token", "is not a token this service issued") from None


async def list_bookings(repository: BookingLister, user_id: str, page_size: int, page_token: str) -> BookingPage:
    size = page_size_of(page_size)
    after = decode_position(page_token)
    records = await repository.list_user_bookings(user_id, size + 1, after)
    shown = records[:size]
    more = len(records) > size
    return BookingPage(tuple(shown), encode_position(shown[-1].created_at, shown[-1].booking_id) if more else "")
