"""Search rules without stores: validation, page tokens bound to their query, and when a next page exists."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from search_svc.domain import (
    MAX_RESULT_WINDOW,
    CacheLookup,
    EventSearch,
    Performer,
    SaleStatus,
    SearchHit,
    SearchPage,
    SearchQuery,
    SearchRequest,
    Suggestions,
    SuggestQuery,
    Venue,
    decode_page_token,
    encode_page_token,
    parse_request,
    parse_suggest,
    sale_status,
    statuses_change_at,
)
from search_svc.repository import decode_page, encode_page
from search_svc.servicer import SearchServicer
from tix.availability import AvailabilityBand
from tix.errors import InvalidArgument
from tixpb.v1 import event_pb2, search_pb2

NOW = datetime(2026, 6, 1, tzinfo=UTC)


def field_of(request: SearchRequest) -> str:
    with pytest.raises(InvalidArgument) as caught:
        parse_request(request)
    return next(iter(caught.value.field_violations))


def test_geo_arguments_must_come_together_and_within_range():
    assert field_of(SearchRequest(latitude=1.0)) == "longitude"
    assert field_of(SearchRequest(longitude=1.0)) == "latitude"
    assert field_of(SearchRequest(radius_km=5)) == "radius_km"
    assert field_of(SearchRequest(latitude=1.0, longitude=1.0, radius_km=0)) == "radius_km"
    assert field_of(SearchRequest(latitude=1.0, longitude=1.0, radius_km=-3)) == "radius_km"
    assert field_of(SearchRequest(latitude=1.0, longitude=1.0, radius_km=20_000.5)) == "radius_km"
    assert field_of(SearchRequest(latitude=1.0, longitude=1.0, radius_km=float("nan"))) == "radius_km"
    assert field_of(SearchRequest(latitude=-91.0, longitude=1.0)) == "latitude"
    assert field_of(SearchRequest(latitude=1.0, longitude=181.0)) == "longitude"
    query = parse_request(SearchRequest(latitude=0.0, longitude=0.0, radius_km=20_000))
    assert query.geo is not None
    assert query.geo.radius_km == 20_000


def test_time_window_page_size_category_and_query_length_are_checked():
    assert field_of(SearchRequest(start_time=NOW, end_time=NOW - timedelta(seconds=1))) == "end_time"
    assert parse_request(SearchRequest(start_time=NOW, end_time=NOW)).end_time == NOW
    assert field_of(SearchRequest(page_size=-1)) == "page_size"
    assert field_of(SearchRequest(category=9)) == "category"
    assert field_of(SearchRequest(text="x" * 201)) == "query"
    assert parse_request(SearchRequest()).limit == 20
    assert parse_request(SearchRequest(page_size=500)).limit == 100


def test_text_and_names_are_normalised_so_equal_searches_share_a_fingerprint():
    a = parse_request(SearchRequest(text="  Metallica   Chicago ", city=" Chicago"))
    b = parse_request(SearchRequest(text="Metallica Chicago", city="Chicago"))
    assert a == b
    assert a.fingerprint() == b.fingerprint()


def test_a_page_token_continues_only_the_query_it_came_from_after_its_last_hit():
    query = parse_request(SearchRequest(text="adele"))
    page = SearchPage(tuple(hit(i) for i in range(40)), 120, cursor='[0.5, "2026-06-04T00:00:00+00:00", 39]')
    token = encode_page_token(query, page)
    continued = decode_page_token(token, query)
    assert (continued.after, continued.offset, continued.total) == (page.cursor, 40, 120)
    # Another page size is the same query; other filters are not.
    assert parse_request(SearchRequest(text="adele", page_size=5, page_token=token)).after == page.cursor
    assert field_of(SearchRequest(text="adele", city="Paris", page_token=token)) == "page_token"
    assert field_of(SearchRequest(text="adele", page_token="!!!")) == "page_token"
    deep = replace(query, offset=MAX_RESULT_WINDOW - 1)
    forged = encode_page_token(deep, page)
    assert field_of(SearchRequest(text="adele", page_token=forged)) == "page_token"
    no_position = encode_page_token(query, replace(page, cursor=""))
    assert field_of(SearchRequest(text="adele", page_token=no_position)) == "page_token"


def hit(event_id: int, **changes) -> SearchHit:
    fields = {
        "event_id": event_id, "name": "Show", "category": 1, "starts_at": NOW + timedelta(days=3),
        "sale_starts_at": NOW - timedelta(days=1), "sale_ends_at": None, "cancelled": False,
        "band": AvailabilityBand.AVAILABLE,
        "venue": Venue(1, "Hall", "Lyon", "", "FR", 45.7, 4.8, "Europe/Paris", 100, "hall", "hall"),
        "performer": Performer(2, "Band", 1, "rock"), "min_price_minor": 4000, "currency": "EUR", "distance_km": None,
    }
    fields.update(changes)
    return SearchHit(**fields)


def test_sale_status_of_a_hit_comes_from_the_catalog():
    assert sale_status(hit(1), NOW) is SaleStatus.ON_SALE
    assert sale_status(hit(1, cancelled=True), NOW) is SaleStatus.CANCELLED
    assert sale_status(hit(1, starts_at=NOW), NOW) is SaleStatus.ENDED
    assert sale_status(hit(1, sale_starts_at=NOW + timedelta(hours=1)), NOW) is SaleStatus.SCHEDULED
    assert sale_status(hit(1, band=AvailabilityBand.SOLD_OUT), NOW) is SaleStatus.SOLD_OUT


def test_cached_pages_round_trip_through_json():
    page = SearchPage((hit(1), hit(2, distance_km=3.5, band=AvailabilityBand.FEW_LEFT)), 2, "token", "[1, 2]")
    assert decode_page(encode_page(page)) == page


class ListBackend:
    """A SearchBackend over a list, for the paging rules (the PostgreSQL one is tested against PostgreSQL)."""

    def __init__(self, hits: list[SearchHit]) -> None:
        self.hits = hits
        self.calls = 0

    async def search(self, query: SearchQuery) -> SearchPage:
        self.calls += 1
        start = int(query.after) + 1 if query.after else 0
        hits = tuple(self.hits[start:start + query.limit])
        cursor = str(start + len(hits) - 1) if len(hits) == query.limit else ""
        return SearchPage(hits, len(self.hits), cursor=cursor)

    async def suggest(self, query: SuggestQuery) -> Suggestions:
        return Suggestions()


class DictCache:
    def __init__(self) -> None:
        self.pages: dict[str, SearchPage] = {}

    async def get(self, key: str) -> CacheLookup:
        return CacheLookup(self.pages.get(key))

    async def put(self, key: str, page: SearchPage, generation: str) -> None:
        self.pages[key] = page


async def test_next_page_token_is_given_until_the_last_page_and_answers_are_cached():
    backend, cache = ListBackend([hit(i) for i in range(5)]), DictCache()
    search = EventSearch(backend, cache)
    first = await search.search(SearchRequest(page_size=2))
    assert [h.event_id for h in first.hits] == [0, 1]
    assert first.total_size == 5
    assert first.next_page_token
    second = await search.search(SearchRequest(page_size=2, page_token=first.next_page_token))
    third = await search.search(SearchRequest(page_size=2, page_token=second.next_page_token))
    assert [h.event_id for h in third.hits] == [4]
    assert not third.next_page_token
    again = await search.search(SearchRequest(page_size=2))
    assert again == first
    assert backend.calls == 3


class SlowBackend(ListBackend):
    """Answers only when released, so that searches can miss together."""

    def __init__(self, hits: list[SearchHit]) -> None:
        super().__init__(hits)
        self.release = asyncio.Event()

    async def search(self, query: SearchQuery) -> SearchPage:
        await self.release.wait()
        return await super().search(query)


class GenerationCache(DictCache):
    """Misses at a generation the test sets (the index moved on between lookups)."""

    def __init__(self) -> None:
        super().__init__()
        self.generation = "1"
        self.stored: list[str] = []

    async def get(self, key: str) -> CacheLookup:
        return CacheLookup(None, self.generation)

    async def put(self, key: str, page: SearchPage, generation: str) -> None:
        self.stored.append(generation)


async def test_identical_searches_that_miss_together_ask_the_backend_once():
    backend = SlowBackend([hit(i) for i in range(5)])
    search = EventSearch(backend, DictCache())
    waiting = [asyncio.create_task(search.search(SearchRequest(text="muse", page_size=2))) for _ in range(20)]
    other = asyncio.create_task(search.search(SearchRequest(text="muse", page_size=3)))
    await asyncio.sleep(0)
    backend.release.set()
    pages = await asyncio.gather(*waiting)
    assert len({page.hits for page in pages}) == 1
    assert len((await other).hits) == 3
    assert backend.calls == 2


async def test_a_search_missing_at_a_newer_generation_does_not_take_an_older_answer():
    backend, cache = SlowBackend([hit(i) for i in range(5)]), GenerationCache()
    search = EventSearch(backend, cache)
    older = asyncio.create_task(search.search(SearchRequest(text="muse")))
    await asyncio.sleep(0)
    cache.generation = "2"
    newer = asyncio.create_task(search.search(SearchRequest(text="muse")))
    await asyncio.sleep(0)
    backend.release.set()
    await asyncio.gather(older, newer)
    assert backend.calls == 2
    assert sorted(cache.stored) == ["1", "2"]


async def test_exactly_full_last_page_has_no_next_token():
    search = EventSearch(ListBackend([hit(i) for i in range(4)]), DictCache())
    first = await search.search(SearchRequest(page_size=2))
    second = await search.search(SearchRequest(page_size=2, page_token=first.next_page_token))
    assert len(second.hits) == 2
    assert not second.next_page_token


def test_queries_differing_only_in_page_share_a_fingerprint_but_not_a_cache_key():
    query = parse_request(SearchRequest(text="muse"))
    later = replace(query, after="[1.0, 20]", offset=20, total=40)
    assert query.fingerprint() == later.fingerprint()
    assert query.cache_key() != later.cache_key()


def test_suggestions_need_some_text_and_take_at_most_ten_of_each_kind():
    assert parse_suggest("  Tay  ", 0) == SuggestQuery(text="tay", limit=5)
    assert parse_suggest("Taylor Swift", 50).limit == 10
    for text, size in (("   ", 0), ("x" * 101, 0), ("tay", -1)):
        with pytest.raises(InvalidArgument):
            parse_suggest(text, size)


@given(
    st.lists(st.integers(min_value=-10, max_value=10), min_size=3, max_size=3),
    st.booleans(), st.booleans(), st.integers(min_value=0, max_value=40),
)
def test_a_page_s_sale_statuses_hold_until_the_moment_it_names(hours, closed, cancelled, step):
    """Whatever the times, every hit keeps the status it has now at each moment before statuses_change_at."""
    starts, opens, closes = (NOW + timedelta(hours=h) for h in hours)
    page = [hit(1, starts_at=starts, sale_starts_at=opens, sale_ends_at=closes if closed else None,
                cancelled=cancelled), hit(2)]
    until = statuses_change_at(page, NOW)
    later = NOW + timedelta(minutes=30 * step)
    if until is None or later < until:
        assert [sale_status(h, later) for h in page] == [sale_status(h, NOW) for h in page]
    if until is not None:
        assert until > NOW


async def test_a_cached_page_is_rendered_once_until_time_changes_a_status_it_shows():
    opens = NOW + timedelta(hours=1)
    page = SearchPage((hit(1, sale_starts_at=opens), hit(2)), 2)
    clock = [NOW]

    class SamePage:
        async def search(self, request: SearchRequest) -> SearchPage:
            return page

    servicer = SearchServicer(SamePage(), lambda: clock[0])  # type: ignore[arg-type]
    first = await servicer.SearchEvents(search_pb2.SearchEventsRequest(), None)  # type: ignore[arg-type]
    clock[0] = NOW + timedelta(minutes=59)
    assert await servicer.SearchEvents(search_pb2.SearchEventsRequest(), None) is first  # type: ignore[arg-type]
    assert first.events[0].sale_status == event_pb2.SALE_STATUS_SCHEDULED
    clock[0] = opens
    fresh = await servicer.SearchEvents(search_pb2.SearchEventsRequest(), None)  # type: ignore[arg-type]
    assert fresh is not first
    assert fresh.events[0].sale_status == event_pb2.SALE_STATUS_ON_SALE
