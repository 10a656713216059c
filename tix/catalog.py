"""Catalog values every service shows the same way (a venue, a performer), their proto rendering, and the one
way to tell caches that the catalog changed.

Domain code uses the dataclasses; servicers render them with the functions below, so an event's venue looks the
same in GetEvent, in search results and anywhere else. Whoever changes catalog rows (the event service's catalog
writes, operators' sale commands) calls ``invalidate_event`` after committing, so the event service's cached pages
follow at once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, cast, overload

from google.protobuf.timestamp_pb2 import Timestamp

from tix.availability import AvailabilityBand
from tix.sales import SaleStatus
from tixpb.v1 import common_pb2, event_pb2

if TYPE_CHECKING:
    from redis.asyncio import Redis


@dataclass(frozen=True)
class Venue:
    venue_id: int
    name: str
    city: str
    region: str
    country_code: str
    latitude: float
    longitude: float
    time_zone: str
    capacity: int
    layout_id: str
    layout_name: str


@dataclass(frozen=True)
class LayoutSeat:
    """One seat of a venue layout (the ``layout_seats`` table): where it is, its price tier, and its ``rank``,
    which orders every seat of the layout best-first for "best available"."""

    seat_id: str
    section_id: str
    section_name: str
    row_label: str
    number: int
    price_tier: int
    x: float
    y: float
    rank: int


@dataclass(frozen=True)
class Performer:
    performer_id: int
    name: str
    # tix.v1.EventCategory number.
    category: int
    genre: str


def venue_and_performer(row: Mapping[Any, Any]) -> tuple[Venue, Performer]:
    """From a query row selecting the venue's and performer's columns under these names: venue_id, venue_name,
    city, region, country_code, latitude, longitude, time_zone, capacity, layout_id, layout_name, performer_id,
    performer_name, performer_category, genre."""
    venue = Venue(
        venue_id=row["venue_id"], name=row["venue_name"], city=row["city"], region=row["region"],
        country_code=row["country_code"], latitude=row["latitude"], longitude=row["longitude"],
        time_zone=row["time_zone"], capacity=row["capacity"], layout_id=row["layout_id"],
        layout_name=row["layout_name"],
    )
    performer = Performer(row["performer_id"], row["performer_name"], row["performer_category"], row["genre"])
    return venue, performer


def render_venue(venue: Venue) -> event_pb2.Venue:
    return event_pb2.Venue(
        venue_id=str(venue.venue_id),
        name=venue.name,
        city=venue.city,
        region=venue.region,
        country_code=venue.country_code,
        latitude=venue.latitude,
        longitude=venue.longitude,
        time_zone=venue.time_zone,
        capacity=venue.capacity,
        layout_name=venue.layout_name,
        layout_id=venue.layout_id,
    )


def event_category(number: int) -> common_pb2.EventCategory:
    """A category number as the proto enum (the generated stubs type enum fields by their enum, not int)."""
    return cast("common_pb2.EventCategory", number)


def render_performer(performer: Performer) -> event_pb2.Performer:
    return event_pb2.Performer(
        performer_id=str(performer.performer_id),
        name=performer.name,
        category=event_category(performer.category),
        genre=performer.genre,
    )


_BANDS = {
    AvailabilityBand.AVAILABLE: common_pb2.AVAILABILITY_BAND_AVAILABLE,
    AvailabilityBand.FEW_LEFT: common_pb2.AVAILABILITY_BAND_FEW_LEFT,
    AvailabilityBand.SOLD_OUT: common_pb2.AVAILABILITY_BAND_SOLD_OUT,
}
_SALE_STATUSES = {
    SaleStatus.SCHEDULED: event_pb2.SALE_STATUS_SCHEDULED,
    SaleStatus.ON_SALE: event_pb2.SALE_STATUS_ON_SALE,
    SaleStatus.SOLD_OUT: event_pb2.SALE_STATUS_SOLD_OUT,
    SaleStatus.ENDED: event_pb2.SALE_STATUS_ENDED,
    SaleStatus.CANCELLED: event_pb2.SALE_STATUS_CANCELLED,
}


def render_band(band: AvailabilityBand) -> common_pb2.AvailabilityBand:
    return _BANDS[band]


def render_sale_status(status: SaleStatus) -> event_pb2.SaleStatus:
    return _SALE_STATUSES[status]


def money(currency: str, amount_minor: int) -> common_pb2.Money:
    return common_pb2.Money(currency_code=currency, amount_minor=amount_minor)


@overload
def timestamp(moment: datetime | float) -> Timestamp: ...
@overload
def timestamp(moment: None) -> None: ...
def timestamp(moment: datetime | float | None) -> Timestamp | None:
    """A datetime or a Unix time in seconds as a protobuf Timestamp; None stays None (the field is left unset)."""
    if moment is None:
        return None
    stamp = Timestamp()
    if isinstance(moment, datetime):
        stamp.FromDatetime(moment if moment.tzinfo else moment.replace(tzinfo=UTC))
    else:
        stamp.FromNanoseconds(int(moment * 1e9))
    return stamp


# --- cache invalidation ----------------------------------------------------------------------------------------

# Bumped when the whole catalog is reloaded (a reseed), so no event keeps details cached from the old catalog.
CATALOG_GENERATION_KEY = "tix:catalog:generation"


def catalog_version_key(event_id: int) -> str:
    """The counter an event's cached details are keyed by (event_svc's catalog cache)."""
    return f"tix:event:{event_id}:catalog-version"


async def invalidate_event(redis: Redis, event_id: int) -> None:
    """Call after any change to an event, its venue or its performer (after the commit). Bumping a version (rather
    than deleting the entry) means a reader that loaded the old rows just before the change can never store them as
    current."""
    await redis.incr(catalog_version_key(event_id))


async def invalidate_events(redis: Redis, event_ids: Sequence[int]) -> None:
    """``invalidate_event`` for many events in one round trip (a venue or performer edit touches all their events)."""
    if not event_ids:
        return
    async with redis.pipeline(transaction=False) as pipe:
        for event_id in event_ids:
            pipe.incr(catalog_version_key(event_id))
        await pipe.execute()


async def invalidate_catalog(redis: Redis) -> None:
    """Call after replacing the catalog wholesale (a seed): every cached event's details are then refetched."""
    await redis.incr(CATALOG_GENERATION_KEY)
