"""Catalog values every service shows the same way (a venue, a performer), and their proto rendering.

Domain code uses the dataclasses; servicers render them with the functions below, so an event's venue looks the
same in GetEvent, in search results and anywhere else.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from google.protobuf.timestamp_pb2 import Timestamp

from tix.v1 import common_pb2, event_pb2


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
class Performer:
    performer_id: int
    name: str
    # tix.v1.EventCategory number.
    category: int
    genre: str


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
    )


def render_performer(performer: Performer) -> event_pb2.Performer:
    return event_pb2.Performer(
        performer_id=str(performer.performer_id),
        name=performer.name,
        category=performer.category,
        genre=performer.genre,
    )


def money(currency: str, amount_minor: int) -> common_pb2.Money:
    return common_pb2.Money(currency_code=currency, amount_minor=amount_minor)


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
