"""The Elasticsearch backend's generated index template, documents, and search and suggestion bodies, as sent; and
answers read back into the domain. (The same backend against a live cluster: tests/integration/
test_search_elasticsearch.py, one environment variable away.)"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from search_svc.domain import EXACT_TOTAL, GeoFilter, SearchQuery, SuggestQuery
from search_svc.es_queries import (
    document,
    index_template,
    page_from_response,
    parse_keywords,
    search_body,
    suggest_bodies,
    suggestions_from_responses,
)
from tix.availability import AvailabilityBand
from tix.errors import InvalidArgument

STARTS = datetime(2027, 3, 1, 20, 0, tzinfo=UTC)


def query(**fields) -> SearchQuery:
    base = {"text": "", "start_time": None, "end_time": None, "city": "", "geo": None, "performer": "", "category": 0, "limit": 20}
    return SearchQuery(**{**base, **fields})


ROW = {
    "event_id": 7, "name": "Taylor Swift | The Eras Tour", "description": "", "category": 1, "starts_at": STARTS,
    "sale_starts_at": datetime(2027, 1, 1, tzinfo=UTC), "sale_ends_at": None, "cancelled": False,
    "availability_band": "few_left", "currency": "USD", "min_price_minor": 9000, "venue_id": 3,
    "venue_name": "Madison Square Garden", "city": "New York", "region": "NY", "country_code": "US",
    "latitude": 40.75, "longitude": -73.99, "time_zone": "America/New_York", "capacity": 18000,
    "layout_id": "arena", "layout_name": "Arena", "performer_id": 11, "performer_name": "Taylor Swift",
    "performer_category": 1, "genre": "pop",
}


# --- the index template ----------------------------------------------------------------------------------------


def test_the_template_maps_names_as_text_with_edge_ngram_and_keyword_sub_fields():
    template = index_template("tix-events-*")
    assert template["index_patterns"] == ["tix-events-*"]
    properties = template["template"]["mappings"]["properties"]
    assert template["template"]["mappings"]["dynamic"] == "strict"
    for field in ("name", "performer_name", "venue_name", "city"):
        assert properties[field]["type"] == "text"
        assert properties[field]["fields"]["prefix"] == {
            "type": "text", "analyzer": "edge_ngram", "search_analyzer": "folded"
        }
        assert properties[field]["fields"]["raw"]["type"] == "keyword"
        assert properties[field]["fields"]["raw"]["normalizer"] == "lowercase"
    assert properties["location"] == {"type": "geo_point"}
    assert {properties[f]["type"] for f in ("starts_at", "sale_starts_at", "sale_ends_at")} == {"date"}
    assert properties["band"]["type"] == properties["country_code"]["type"] == "keyword"
    analysis = template["template"]["settings"]["analysis"]
    assert analysis["filter"]["edge_ngram_filter"]["type"] == "edge_ngram"
    assert "edge_ngram_filter" in analysis["analyzer"]["edge_ngram"]["filter"]


def test_a_document_has_exactly_the_mapped_fields():
    doc = document(ROW)
    properties = index_template("x-*")["template"]["mappings"]["properties"]
    assert set(doc) == set(properties)
    assert doc["location"] == {"lat": 40.75, "lon": -73.99}
    assert doc["starts_at"] == "2027-03-01T20:00:00+00:00"
    assert doc["band"] == "few_left"
    json.dumps(doc)  # serialisable as sent


# --- search bodies ---------------------------------------------------------------------------------------------


def test_keywords_are_a_fuzzy_multi_match_with_prefixes_ranked_then_soonest():
    body = search_body(query(text="taylor swif"))
    (scoring,) = body["query"]["bool"]["must"]
    alternatives = scoring["bool"]["must"][0]["bool"]["should"]
    fuzzy = [a["multi_match"] for a in alternatives if a["multi_match"].get("fuzziness")]
    assert fuzzy
    assert fuzzy[0]["fuzziness"] == "AUTO"
    assert fuzzy[0]["query"] == "taylor swif"
    assert fuzzy[0]["operator"] == "and"
    assert "name^3" in fuzzy[0]["fields"]
    assert any(f.endswith(".prefix") or ".prefix^" in f for a in alternatives for f in a["multi_match"]["fields"])
    assert body["sort"] == [{"_score": "desc"}, {"starts_at": "asc"}, {"event_id": "asc"}]
    assert body["size"] == 20
    assert body["track_total_hits"] == EXACT_TOTAL


def test_web_search_syntax_becomes_phrases_exclusions_and_or():
    assert parse_keywords('"eras tour" swift -vip -"meet and greet"') == (
        ["swift"], ["eras tour"], ["meet and greet", "vip"], False
    )
    assert parse_keywords("metallica or megadeth")[3] is True
    scoring = search_body(query(text='"eras tour" -vip'))["query"]["bool"]["must"][0]["bool"]
    assert scoring["must"] == [{"multi_match": {"query": "eras tour", "fields": scoring["must"][0]["multi_match"][
        "fields"], "type": "phrase"}}]
    assert scoring["must_not"][0]["multi_match"]["query"] == "vip"


def test_text_without_words_is_no_keyword_search():
    body = search_body(query(text='"" -'))
    assert "must" not in body["query"]["bool"]
    assert body["sort"] == [{"starts_at": "asc"}, {"event_id": "asc"}]


def test_filters_are_bool_filters_and_upcoming_by_default():
    body = search_body(query(city="New York", category=2, performer="Taylor Swift", venue="42"))
    filters = body["query"]["bool"]["filter"]
    assert {"range": {"starts_at": {"gte": "now"}}} in filters
    assert {"term": {"city.raw": "new york"}} in filters
    assert {"term": {"category": 2}} in filters
    assert {"term": {"performer_name.raw": "taylor swift"}} in filters
    assert {"bool": {"should": [{"term": {"venue_name.raw": "42"}}, {"term": {"venue_id": 42}}],
                     "minimum_should_match": 1}} in filters


def test_a_time_window_replaces_now():
    end = datetime(2027, 4, 1, tzinfo=UTC)
    filters = search_body(query(start_time=STARTS, end_time=end))["query"]["bool"]["filter"]
    assert filters[0] == {"range": {"starts_at": {"gte": STARTS.isoformat(), "lt": end.isoformat()}}}


def test_a_radius_is_a_geo_distance_filter_and_the_point_orders_nearest_first():
    body = search_body(query(geo=GeoFilter(40.7, -74.0, 50.0)))
    assert {"geo_distance": {"distance": "50.0km", "location": {"lat": 40.7, "lon": -74.0}}} in body["query"][
        "bool"]["filter"]
    assert body["sort"][0] == {"_geo_distance": {"location": {"lat": 40.7, "lon": -74.0}, "order": "asc",
                                                  "unit": "km", "distance_type": "arc"}}
    assert body["sort"][1:] == [{"starts_at": "asc"}, {"event_id": "asc"}]


def test_later_pages_continue_with_search_after_and_skip_counting():
    body = search_body(query(after=json.dumps([1.5, 1798228800000, 7]), text="swift", offset=20, total=55))
    assert body["search_after"] == [1.5, 1798228800000, 7]
    assert body["track_total_hits"] is False


@pytest.mark.parametrize("after", ["not json", json.dumps([1, 2, 3]), json.dumps({"a": 1}), json.dumps([True, 1])])
def test_a_cursor_that_does_not_fit_the_sort_is_a_bad_page_token(after):
    with pytest.raises(InvalidArgument):
        search_body(query(after=after))


# --- answers ---------------------------------------------------------------------------------------------------


def _response(sort_values, total=1):
    return {"hits": {"total": {"value": total, "relation": "eq"},
                     "hits": [{"_id": "7", "_source": document(ROW), "sort": sort_values}]}}


def test_hits_come_back_whole_from_the_source_with_their_distance_and_cursor():
    q = query(geo=GeoFilter(40.7, -74.0, None), limit=1)
    page = page_from_response(q, _response([5.5, 1798228800000, 7], total=3))
    (hit,) = page.hits
    assert (hit.event_id, hit.name, hit.band, hit.distance_km) == (7, ROW["name"], AvailabilityBand.FEW_LEFT, 5.5)
    assert (hit.venue.name, hit.venue.latitude, hit.performer.name) == ("Madison Square Garden", 40.75,
                                                                        "Taylor Swift")
    assert hit.starts_at == STARTS
    assert page.total_size == 3
    assert json.loads(page.cursor) == [5.5, 1798228800000, 7]


def test_a_short_page_has_no_cursor_and_later_pages_repeat_the_total():
    page = page_from_response(query(limit=5, total=40, after="[1, 2]"), {"hits": {"hits": [
        {"_id": "7", "_source": document(ROW), "sort": [1798228800000, 7]}]}})
    assert page.cursor == ""
    assert page.total_size == 40


def test_keyword_hits_near_a_point_get_their_distance_from_the_document():
    q = query(text="swift", geo=GeoFilter(40.75, -73.99, None), limit=1)
    (hit,) = page_from_response(q, _response([3.2, 1798228800000, 7])).hits
    assert hit.distance_km == pytest.approx(0.0, abs=0.01)


# --- suggestions -----------------------------------------------------------------------------------------------


def test_suggestions_are_four_prefix_searches_typo_tolerant_from_the_third_letter():
    short = suggest_bodies(SuggestQuery(text="ta", limit=5))
    assert [b.get("collapse", {}).get("field") for b in short] == ["performer_id", "venue_id", "city.raw", None]
    assert "fuzziness" not in short[0]["query"]["bool"]["must"][0]["match"]["performer_name.prefix"]
    third = suggest_bodies(SuggestQuery(text="tay", limit=5))
    assert third[0]["query"]["bool"]["must"][0]["match"]["performer_name.prefix"]["fuzziness"] == "AUTO"
    assert all(b["size"] == 5 for b in third)
    assert all({"range": {"starts_at": {"gte": "now"}}} in b["query"]["bool"]["filter"] for b in third)


def test_suggestion_answers_become_performers_venues_cities_and_events():
    source = document(ROW)
    responses = [{"hits": {"hits": [{"_source": source}]}} for _ in range(4)]
    suggestions = suggestions_from_responses(responses)
    assert suggestions.performers[0].name == "Taylor Swift"
    assert suggestions.venues[0].name == "Madison Square Garden"
    assert (suggestions.cities[0].name, suggestions.cities[0].country_code) == ("New York", "US")
    assert suggestions.events[0].event_id == 7
