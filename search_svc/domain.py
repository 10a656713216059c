"""Finding events: what a search may ask, how pages are tokenised, and the backend port.

The backend (PostgreSQL by default, Elasticsearch at scale) only sees a validated ``SearchQuery`` with an offset
and a limit; page tokens, validation and caching are the same whichever backend answers.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from typing import Protocol

from tix import page_tokens, sales
from tix.availability import AvailabilityBand
from tix.catalog import Performer, Venue
from tix.errors import InvalidArgument
from tix.sales import SaleStatus, SaleWindow
from tix.validation import page_size as checked_page_size

MAX_QUERY_LENGTH = 200
MAX_RADIUS_KM = 20_000.0
# Deep paging costs the backend more with every page; like Elasticsearch's max_result_window, results stop here.
MAX_RESULT_WINDOW = 10_000
# tix.v1.EventCategory numbers (0 means any).
KNOWN_CATEGORIES = frozenset({1, 2, 3, 4, 5})


@dataclass(frozen=True)
class SearchRequest:
    """What a caller asked, before validation (times as aware datetimes, optional numbers as None)."""

    text: str = ""
    start_time: datetime | None = None
    end_time: datetime | None = None
    city: str = ""
    latitude: float | None = None
    longitude: float | None = None
    radius_km: float | None = None
    performer: str = ""
    category: int = 0
    page_size: int = 0
    page_token: str = ""


@dataclass(frozen=True)
class GeoFilter:
    latitude: float
    longitude: float
    # None: no radius limit, the point only orders results and fills their distance.
    radius_km: float | None


@dataclass(frozen=True)
class SearchQuery:
    """A validated search: filters, then which slice of the ranked results."""

    text: str
    start_time: datetime | None
    end_time: datetime | None
    city: str
    geo: GeoFilter | None
    performer: str
    category: int
    offset: int
    limit: int

    def fingerprint(self) -> str:
        """Identifies the filters (not the slice): page tokens are bound to it."""
        filters = asdict(replace(self, offset=0, limit=0))
        return hashlib.sha256(json.dumps(filters, default=str, sort_keys=True).encode()).hexdigest()[:16]

    def cache_key(self) -> str:
        return f"{self.fingerprint()}:{self.offset}:{self.limit}"


@dataclass(frozen=True)
class SearchHit:
    event_id: int
    name: str
    category: int
    starts_at: datetime
    sale_starts_at: datetime
    sale_ends_at: datetime | None
    cancelled: bool
    band: AvailabilityBand
    venue: Venue
    performer: Performer
    min_price_minor: int
    currency: str
    distance_km: float | None


@dataclass(frozen=True)
class SearchPage:
    hits: tuple[SearchHit, ...]
    # Matching events, exact up to MAX_RESULT_WINDOW and a lower bound beyond.
    total_size: int
    next_page_token: str = ""


def sale_status(hit: SearchHit, now: datetime) -> SaleStatus:
    """From the catalog and the availability band booking records (search does not count seats)."""
    window = SaleWindow(hit.starts_at, hit.sale_starts_at, hit.sale_ends_at, hit.cancelled)
    return sales.sale_status(window, now, sold_out=hit.band is AvailabilityBand.SOLD_OUT)


class SearchBackend(Protocol):
    """One search engine behind the service: PostgreSQL today, Elasticsearch by configuration later."""

    async def search(self, query: SearchQuery) -> SearchPage:
        """The hits of ``query``'s slice, ranked, and the number of matches; the page token is added by the caller."""
        ...


class SearchCache(Protocol):
    async def get(self, key: str) -> SearchPage | None: ...
    async def put(self, key: str, page: SearchPage) -> None: ...


def parse_request(request: SearchRequest) -> SearchQuery:
    """Validate a request into a query; every problem is an InvalidArgument naming its field."""
    text = " ".join(request.text.split())
    if len(text) > MAX_QUERY_LENGTH:
        raise InvalidArgument("query", f"must be at most {MAX_QUERY_LENGTH} characters")
    if request.start_time and request.end_time and request.end_time < request.start_time:
        raise InvalidArgument("end_time", "must not be before start_time")
    if (request.latitude is None) != (request.longitude is None):
        missing = "longitude" if request.longitude is None else "latitude"
        raise InvalidArgument(missing, "latitude and longitude go together")
    geo = None
    if request.latitude is not None and request.longitude is not None:
        if not (math.isfinite(request.latitude) and -90.0 <= request.latitude <= 90.0):
            raise InvalidArgument("latitude", "must be between -90 and 90")
        if not (math.isfinite(request.longitude) and -180.0 <= request.longitude <= 180.0):
            raise InvalidArgument("longitude", "must be between -180 and 180")
        geo = GeoFilter(request.latitude, request.longitude, None)
    if request.radius_km is not None:
        if geo is None:
            raise InvalidArgument("radius_km", "needs latitude and longitude")
        if not (math.isfinite(request.radius_km) and 0 < request.radius_km <= MAX_RADIUS_KM):
            raise InvalidArgument("radius_km", f"must be above 0 and at most {MAX_RADIUS_KM:g}")
        geo = replace(geo, radius_km=request.radius_km)
    if request.category and request.category not in KNOWN_CATEGORIES:
        raise InvalidArgument("category", f"unknown category {request.category}")
    limit = checked_page_size(request.page_size)
    query = SearchQuery(
        text=text,
        start_time=request.start_time,
        end_time=request.end_time,
        city=" ".join(request.city.split()),
        geo=geo,
        performer=" ".join(request.performer.split()),
        category=request.category,
        offset=0,
        limit=limit,
    )
    if request.page_token:
        query = replace(query, offset=decode_page_token(request.page_token, query.fingerprint()))
    return query


def encode_page_token(offset: int, fingerprint: str) -> str:
    return page_tokens.encode_page_token({"o": offset, "q": fingerprint})


def decode_page_token(token: str, fingerprint: str) -> int:
    """The offset a token continues from; a token from another query (or no token at all) is refused."""
    data = page_tokens.decode_page_token(token)
    offset, bound_to = data.get("o"), data.get("q")
    if not isinstance(bound_to, str) or not isinstance(offset, int):
        raise InvalidArgument("page_token", "is not a token this service issued")
    if bound_to != fingerprint:
        raise InvalidArgument("page_token", "belongs to a different query")
    if not 0 < offset < MAX_RESULT_WINDOW:
        raise InvalidArgument("page_token", "is not a token this service issued")
    return offset


class EventSearch:
    """SearchEvents: validate, answer popular queries from the cache, else ask the backend, then paginate."""

    def __init__(self, backend: SearchBackend, cache: SearchCache, on_served: Callable[[bool], None] | None = None):
        self._backend = backend
        self._cache = cache
        self._on_served = on_served or (lambda cached: None)

    async def search(self, request: SearchRequest) -> SearchPage:
        query = parse_request(request)
        key = query.cache_key()
        cached = await self._cache.get(key)
        if cached is not None:
            self._on_served(True)
            return cached
        page = await self._backend.search(query)
        end = query.offset + len(page.hits)
        if len(page.hits) == query.limit and end < min(page.total_size, MAX_RESULT_WINDOW):
            page = replace(page, next_page_token=encode_page_token(end, query.fingerprint()))
        await self._cache.put(key, page)
        self._on_served(False)
        return page
