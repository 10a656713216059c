"""SearchService over gRPC: parse the request, ask the domain, render the answer."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import grpc
from cachetools import LRUCache

from search_svc.domain import (
    EventSearch,
    SearchHit,
    SearchPage,
    SearchRequest,
    Suggestions,
    sale_status,
    statuses_change_at,
)
from tix.catalog import (
    event_category,
    money,
    render_band,
    render_performer,
    render_sale_status,
    render_venue,
    timestamp,
)
from tixpb.v1 import search_pb2, search_pb2_grpc

# Rendered answers kept for the pages the search cache hands out again (the same page object, a popular query).
_RENDERED_PAGES = 1024


class SearchServicer(search_pb2_grpc.SearchServiceServicer):
    def __init__(self, search: EventSearch, clock: Callable[[], datetime]) -> None:
        self._search = search
        self._clock = clock
        # id(page) -> (the page, its answer, until when its hits' sale statuses hold): a cached page is rendered
        # once, not once per request, and again only when time changes a status it shows.
        self._rendered: LRUCache[int, tuple[SearchPage, search_pb2.SearchEventsResponse, datetime | None]] = (
            LRUCache(maxsize=_RENDERED_PAGES)
        )

    async def SearchEvents(
        self, request: search_pb2.SearchEventsRequest, context: grpc.aio.ServicerContext
    ) -> search_pb2.SearchEventsResponse:
        page = await self._search.search(parse_request(request))
        now = self._clock()
        rendered = self._rendered.get(id(page))
        if rendered is not None and rendered[0] is page and (rendered[2] is None or now < rendered[2]):
            return rendered[1]
        answer = search_pb2.SearchEventsResponse(
            events=[render_hit(hit, now) for hit in page.hits],
            next_page_token=page.next_page_token,
            total_size=page.total_size,
        )
        self._rendered[id(page)] = (page, answer, statuses_change_at(page.hits, now))
        return answer

    async def SuggestEvents(
        self, request: search_pb2.SuggestEventsRequest, context: grpc.aio.ServicerContext
    ) -> search_pb2.SuggestEventsResponse:
        suggestions = await self._search.suggest(request.query, request.page_size)
        return render_suggestions(suggestions, self._clock())


def parse_request(request: search_pb2.SearchEventsRequest) -> SearchRequest:
    return SearchRequest(
        text=request.query,
        start_time=request.start_time.ToDatetime(UTC) if request.HasField("start_time") else None,
        end_time=request.end_time.ToDatetime(UTC) if request.HasField("end_time") else None,
        city=request.city,
        latitude=request.latitude if request.HasField("latitude") else None,
        longitude=request.longitude if request.HasField("longitude") else None,
        radius_km=request.radius_km if request.HasField("radius_km") else None,
        performer=request.performer,
        category=request.category,
        page_size=request.page_size,
        page_token=request.page_token,
        venue=request.venue,
    )


def render_suggestions(suggestions: Suggestions, now: datetime) -> search_pb2.SuggestEventsResponse:
    return search_pb2.SuggestEventsResponse(
        performers=[render_performer(performer) for performer in suggestions.performers],
        venues=[render_venue(venue) for venue in suggestions.venues],
        cities=[
            search_pb2.CitySuggestion(name=city.name, region=city.region, country_code=city.country_code)
            for city in suggestions.cities
        ],
        events=[render_hit(hit, now) for hit in suggestions.events],
    )


def render_hit(hit: SearchHit, now: datetime) -> search_pb2.EventSummary:
    summary = search_pb2.EventSummary(
        event_id=str(hit.event_id),
        name=hit.name,
        category=event_category(hit.category),
        start_time=timestamp(hit.starts_at),
        venue=render_venue(hit.venue),
        performer=render_performer(hit.performer),
        sale_status=render_sale_status(sale_status(hit, now)),
        min_price=money(hit.currency, hit.min_price_minor),
        availability_band=render_band(hit.band),
    )
    if hit.distance_km is not None:
        summary.distance_km = round(hit.distance_km, 3)
    return summary
