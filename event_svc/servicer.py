"""EventService over gRPC: parse the request, ask the domain, render the answer."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator

import grpc

from event_svc.domain import (
    EventPage,
    EventViewing,
    MapSnapshot,
    SeatLayout,
    SeatMap,
    SeatMapView,
    SeatStatus,
)
from event_svc.seat_hub import Heartbeat, SeatHub
from tix import seatfeed
from tix.catalog import (
    event_category,
    money,
    render_band,
    render_performer,
    render_sale_status,
    render_venue,
    timestamp,
)
from tix.errors import InvalidArgument
from tix.validation import require_numeric_id
from tixpb.v1 import common_pb2, event_pb2, event_pb2_grpc

SEAT_STATUSES = {
    SeatStatus.AVAILABLE: common_pb2.SEAT_STATUS_AVAILABLE,
    SeatStatus.RESERVED: common_pb2.SEAT_STATUS_RESERVED,
    SeatStatus.BOOKED: common_pb2.SEAT_STATUS_BOOKED,
}
_FEED_STATUSES = {status.value: SEAT_STATUSES[status] for status in SeatStatus}
_VIEWS = {
    event_pb2.SEAT_MAP_VIEW_UNSPECIFIED: SeatMapView.COMPACT,
    event_pb2.SEAT_MAP_VIEW_COMPACT: SeatMapView.COMPACT,
    event_pb2.SEAT_MAP_VIEW_FULL: SeatMapView.FULL,
}


class EventServicer(event_pb2_grpc.EventServiceServicer):
    def __init__(self, viewing: EventViewing, hub: SeatHub) -> None:
        self._viewing = viewing
        self._hub = hub

    async def GetEvent(self, request: event_pb2.GetEventRequest, context: grpc.aio.ServicerContext) -> event_pb2.Event:
        event_id = require_numeric_id(request.event_id, "event_id")
        return render_event(await self._viewing.event_page(event_id))

    async def ListSeats(self, request: event_pb2.ListSeatsRequest, context: grpc.aio.ServicerContext) -> event_pb2.SeatMap:
        event_id = require_numeric_id(request.event_id, "event_id")
        view = _VIEWS.get(request.view)
        if view is None:
            raise InvalidArgument("view", f"unknown seat map view {request.view}")
        seat_map = await self._viewing.seat_map(
            event_id, section_id=request.section_id or None, view=view, page_size=request.page_size,
            page_token=request.page_token,
        )
        return render_seat_map(seat_map)

    async def WatchSeats(
        self, request: event_pb2.WatchSeatsRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[event_pb2.WatchSeatsResponse]:
        event_id = require_numeric_id(request.event_id, "event_id")
        if request.since_version < 0:
            raise InvalidArgument("since_version", "must not be negative")
        since = request.since_version if request.HasField("since_version") else None
        async for update in self._hub.watch(event_id, since=since):
            if isinstance(update, MapSnapshot):
                yield snapshot_response(update)
            elif isinstance(update, Heartbeat):
                yield event_pb2.WatchSeatsResponse(version=update.position or 0, heartbeat=event_pb2.Heartbeat())
            else:
                yield changes_response(update)

    async def GetSeatLayout(
        self, request: event_pb2.GetSeatLayoutRequest, context: grpc.aio.ServicerContext
    ) -> event_pb2.SeatLayout:
        if not 0 < len(request.layout_id) <= 40:
            raise InvalidArgument("layout_id", "must be 1 to 40 characters")
        return render_seat_layout(await self._viewing.seat_layout(request.layout_id))


# Every watcher sharing one snapshot or one change gets the same message object: rendered once, not per stream.
@functools.lru_cache(maxsize=64)
def snapshot_response(snapshot: MapSnapshot) -> event_pb2.WatchSeatsResponse:
    """``version`` is where the stream resumes after it: the last publication the map contains."""
    seat_map = snapshot.seat_map
    position = snapshot.position if snapshot.position is not None else seat_map.version
    return event_pb2.WatchSeatsResponse(version=position, snapshot=render_seat_map(seat_map))


@functools.lru_cache(maxsize=1024)
def changes_response(message: seatfeed.SeatFeedMessage) -> event_pb2.WatchSeatsResponse:
    changes = [
        event_pb2.SeatChange(seat_id=seat_id, status=_FEED_STATUSES.get(status, common_pb2.SEAT_STATUS_UNSPECIFIED))
        for seat_id, status in message.changes
    ]
    return event_pb2.WatchSeatsResponse(version=message.version, changes=event_pb2.SeatChanges(changes=changes))


def render_event(page: EventPage) -> event_pb2.Event:
    entry = page.entry
    currency = entry.currency
    return event_pb2.Event(
        event_id=str(entry.event_id),
        name=entry.name,
        description=entry.description,
        category=event_category(entry.category),
        start_time=timestamp(entry.starts_at),
        end_time=timestamp(entry.ends_at),
        venue=render_venue(entry.venue),
        performer=render_performer(entry.performer),
        sale_start_time=timestamp(entry.sale_starts_at),
        sale_status=render_sale_status(page.sale_status),
        waiting_room=event_pb2.WaitingRoom(
            enabled=entry.waiting_room.enabled,
            admission_rate_per_second=entry.waiting_room.admission_rate_per_second,
            max_active_shoppers=entry.waiting_room.max_active_shoppers,
        ),
        min_price=money(currency, entry.min_price_minor),
        max_price=money(currency, entry.max_price_minor),
        available_count=page.available_count,
        total_count=entry.total_count,
        availability_band=render_band(page.band),
        sections=[
            event_pb2.SectionAvailability(
                section_id=s.section.section_id,
                name=s.section.name,
                price_tier=s.section.price_tier,
                price=money(currency, s.section.price_minor),
                available_count=s.available_count,
                total_count=s.section.total_count,
            )
            for s in page.sections
        ],
        max_seats_per_user=entry.max_seats_per_user,
    )


def render_seat_map(seat_map: SeatMap) -> event_pb2.SeatMap:
    """Built in place with ``add()``: constructing each Seat on its own and copying it in costs twice as much."""
    currency = seat_map.currency
    rendered = event_pb2.SeatMap(
        event_id=str(seat_map.event_id), version=seat_map.version, next_page_token=seat_map.next_page_token
    )
    statuses = SEAT_STATUSES
    for section in seat_map.sections:
        out_section = rendered.sections.add(
            section_id=section.section.section_id,
            name=section.section.name,
            price_tier=section.section.price_tier,
            available_count=section.available_count,
            total_count=sum(len(row.status_codes) for row in section.rows),
        )
        out_section.price.currency_code = currency
        out_section.price.amount_minor = section.section.price_minor
        add_row = out_section.rows.add
        for row in section.rows:
            out_row = add_row(
                row_label=row.row_label, first_seat_number=row.first_seat_number, status_codes=row.status_codes
            )
            if not row.seats:
                continue
            add_seat = out_row.seats.add
            for seat_id, section_id, row_label, number, status, price_minor, x, y in row.seats:
                seat = add_seat(
                    seat_id=seat_id, section_id=section_id, row_label=row_label, number=number,
                    status=statuses[status], x=x, y=y,
                )
                price = seat.price
                price.currency_code = currency
                price.amount_minor = price_minor
    return rendered


def render_seat_layout(layout: SeatLayout) -> event_pb2.SeatLayout:
    rendered = event_pb2.SeatLayout(layout_id=layout.layout_id, name=layout.name, capacity=layout.capacity)
    for section in layout.sections:
        out_section = rendered.sections.add(section_id=section.section_id, name=section.name)
        for row in section.rows:
            out_section.rows.add(
                row_label=row.row_label, first_seat_number=row.first_seat_number,
                xs=[round(x, 2) for x in row.xs], ys=[round(y, 2) for y in row.ys], price_tiers=row.price_tiers,
            )
    return rendered
