"""Finding events: what a search may ask, how pages are tokenised, and the backend port.

The backend (PostgreSQL by default, Elasticsearch at scale) only sees a validated ``SearchQuery`` with a keyset
position (``after``) and a limit; page tokens, validation and caching are the same whichever backend answers.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from typing import Protocol

from tix import page_tokens, sales
from tix.availability import AvailabilityBand
from tix.catalog import Performer, Venue
from tix.errors import InvalidArgument
from tix.sales import SaleStatus, SaleWindow
from tix.singleflight import SingleFlight
from tix.validation import page_size as checked_page_size

MAX_QUERY_LENGTH = 200
MAX_RADIUS_KM = 20_000.0
# Deep paging costs the backend more with every page; like Elasticsearch's max_result_window, results stop here.
MAX_RESULT_WINDOW = 10_000
# total_size is exact up to this many matches and a lower bound beyond (like Elasticsearch's track_total_hits):
# counting further costs a read per match, and "more than 1,000" is all a fan needs.
EXACT_TOTAL = 1_000
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
    venue: str = ""


@dataclass(frozen=True)
class GeoFilter:
    latitude: float
    longitude: float
    # None: no radius limit, the point only orders results and fills their distance.
    radius_km: float | None


@dataclass(frozen=True)
class SearchQuery:
    """A validated search: filters, then which page of the ranked results.

    The contract every backend keeps:

    - ``text``: keywords with web-search syntax (``"a phrase"``, ``-excluded``, ``or``) over event, performer,
      venue and city names (and the description, weighted low); a misspelt word is corrected to the nearest word
      the catalog has; the last word also matches as a prefix. Best match first, ties soonest first.
    - otherwise with ``geo``: nearest first (ties soonest first), within ``radius_km`` when given.
    - otherwise soonest first.
    - ``start_time`` None means "from now": events that already started are left out unless the request reaches
      back to them. ``end_time`` is exclusive.
    - ``city``, ``performer`` and ``venue`` are names compared case-insensitively (``performer`` and ``venue`` may
      also be ids); ``category`` 0 means any.
    - Paging is keyset (search_after): ``after`` is the ``cursor`` a backend returned with the previous page (opaque
      to everyone else; "" for the first page), never an offset. ``offset`` counts the hits of earlier pages, for
      MAX_RESULT_WINDOW only.
    """

    text: str
    start_time: datetime | None
    end_time: datetime | None
    city: str
    geo: GeoFilter | None
    performer: str
    category: int
    limit: int
    venue: str = ""
    after: str = ""
    offset: int = 0
    # total_size as the first page counted it (later pages repeat it instead of counting again).
    total: int | None = None

    def fingerprint(self) -> str:
        """Identifies the filters (not the page): page tokens are bound to it."""
        filters = asdict(replace(self, limit=0, after="", offset=0, total=None))
        return hashlib.sha256(json.dumps(filters, default=str, sort_keys=True).encode()).hexdigest()[:16]

    def cache_key(self) -> str:
        after = hashlib.sha256(self.after.encode()).hexdigest()[:16] if self.after else ""
        return f"{self.fingerprint()}:{after}:{self.limit}"


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
    # Matching events, exact up to EXACT_TOTAL and a lower bound beyond.
    total_size: int
    next_page_token: str = ""
    # The backend's position after the last hit (search_after), "" when nothing follows.
    cursor: str = ""


@dataclass(frozen=True)
class SuggestQuery:
    """What was typed into a search box (normalised, lower case) and how many suggestions of each kind."""

    text: str
    limit: int


@dataclass(frozen=True)
class CitySuggestion:
    name: str
    region: str
    country_code: str


@dataclass(frozen=True)
class Suggestions:
    performers: tuple[Performer, ...] = ()
    venues: tuple[Venue, ...] = ()
    cities: tuple[CitySuggestion, ...] = ()
    events: tuple[SearchHit, ...] = ()


def sale_status(hit: SearchHit, now: datetime) -> SaleStatus:
    """From the catalog and the availability band booking records (search does not count seats)."""
    return sales.sale_status(_window(hit), now, sold_out=hit.band is AvailabilityBand.SOLD_OUT)


def statuses_change_at(hits: Sequence[SearchHit], now: datetime) -> datetime | None:
    """Until when every hit keeps the sale status it has at ``now`` (None: for as long as the page lives)."""
    return min((t for hit in hits if (t := sales.status_changes_at(_window(hit), now)) is not None), default=None)


def _window(hit: SearchHit) -> SaleWindow:
    return SaleWindow(hit.starts_at, hit.sale_starts_at, hit.sale_ends_at, hit.cancelled)


class SearchBackend(Protocol):
    """One search engine behind the service (PostgreSQL, or Elasticsearch by configuration); see SearchQuery for
    the contract both keep."""

    async def search(self, query: SearchQuery) -> SearchPage:
        """One page of ``query``'s hits after ``query.after``, ranked; the number of matches (unless ``query.total``
        is given, which the backend returns as is); and the cursor after the last hit when more may follow. The
        page token is made by the caller."""
        ...

    async def suggest(self, query: SuggestQuery) -> Suggestions:
        """Performers, venues, cities and upcoming events for what was typed, at most ``query.limit`` of each."""
        ...


@dataclass(frozen=True)
class CacheLookup:
    """A cached answer (None: a miss) and the index generation read with it: an answer computed after a miss is
    stored under the generation read *before* the backend was asked, so it is never served as newer than it is."""

    page: SearchPage | None
    generation: str = "0"


class SearchCache(Protocol):
    async def get(self, key: str) -> CacheLookup: ...
    async def put(self, key: str, page: SearchPage, generation: str) -> None: ...


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
        venue=" ".join(request.venue.split()),
        category=request.category,
        limit=limit,
    )
    if request.page_token:
        query = decode_page_token(request.page_token, query)
    return query


def encode_page_token(query: SearchQuery, page: SearchPage) -> str:
    return page_tokens.encode_page_token(
        {"a": page.cursor, "n": query.offset + len(page.hits), "t": page.total_size, "q": query.fingerprint()}
    )


def decode_page_token(token: str, query: SearchQuery) -> SearchQuery:
    """The query continued after the token's position; a token from another query (or no token at all) is
    refused."""
    data = page_tokens.decode_page_token(token)
    after, offset, total, bound_to = data.get("a"), data.get("n"), data.get("t"), data.get("q")
    if not (
        isinstance(bound_to, str) and isinstance(after, str) and isinstance(offset, int) and isinstance(total, int)
    ):
        raise InvalidArgument("page_token", "is not a token this service issued")
    if bound_to != query.fingerprint():
        raise InvalidArgument("page_token", "belongs to a different query")
    if not (after and 0 < offset < MAX_RESULT_WINDOW and total >= 0):
        raise InvalidArgument("page_token", "is not a token this service issued")
    return replace(query, after=after, offset=offset, total=total)


MAX_SUGGEST_LENGTH = 100


def parse_suggest(text: str, page_size: int) -> SuggestQuery:
    text = " ".join(text.split()).lower()
    if not text:
        raise InvalidArgument("query", "is required")
    if len(text) > MAX_SUGGEST_LENGTH:
        raise InvalidArgument("query", f"must be at most {MAX_SUGGEST_LENGTH} characters")
    return SuggestQuery(text=text, limit=checked_page_size(page_size, default=5, maximum=10))


class EventSearch:
    """SearchEvents: validate, answer popular queries from the cache, else ask the backend, then paginate."""

    def __init__(self, backend: SearchBackend, cache: SearchCache, on_served: Callable[[bool], None] | None = None):
        self._backend = backend
        self._cache = cache
        self._on_served = on_served or (lambda cached: None)
        # Identical searches that miss together (a trending query as its answer expires) ask the backend once.
        self._misses: SingleFlight[tuple[str, str], SearchPage] = SingleFlight()

    async def search(self, request: SearchRequest) -> SearchPage:
        query = parse_request(request)
        key = query.cache_key()
        cached = await self._cache.get(key)
        if cached.page is not None:
            self._on_served(True)
            return cached.page
        self._on_served(False)
        return await self._misses.run((key, cached.generation), lambda: self._answer(query, key, cached.generation))

    async def _answer(self, query: SearchQuery, key: str, generation: str) -> SearchPage:
        page = await self._backend.search(query)
        end = query.offset + len(page.hits)
        # A total at EXACT_TOTAL is a lower bound: more may follow it.
        more = end < page.total_size or page.total_size >= EXACT_TOTAL
        if page.cursor and len(page.hits) == query.limit and end < MAX_RESULT_WINDOW and more:
            page = replace(page, next_page_token=encode_page_token(query, page))
        await self._cache.put(key, page, generation)
        return page

    async def suggest(self, text: str, page_size: int) -> Suggestions:
        return await self._backend.suggest(parse_suggest(text, page_size))
