"""What the Elasticsearch backend sends and reads, as plain data: the index template, a document per event, the
search and suggestion bodies, and hits back into the domain. No client and no I/O here, so every body is
unit-tested as it is generated (tests/unit/test_search_elasticsearch_bodies.py).

The contract is SearchQuery's (search_svc.domain), kept the Elasticsearch way:

- **Keywords**: ``multi_match`` with ``fuzziness: AUTO`` (typos) over event, performer, venue and city names
  (names weigh more than places, the description least), every word required; the words also match the
  ``.prefix`` sub-fields (edge n-grams), so the word being typed matches as a prefix. Web-search syntax as in
  the PostgreSQL backend: ``"a phrase"`` must appear as a phrase, ``-word`` must not appear, ``or`` between words
  lets either match. Best match first, ties soonest first.
- **Filters** are ``bool`` filters (cached, unscored): time range ("from now" unless start_time is given), city,
  category, performer and venue (name, case-insensitive through a lower-case normalizer, or id),
  ``geo_distance`` for a radius.
- **Order** without keywords: nearest first (``_geo_distance`` sort) when a point is given, else soonest first.
- **Paging**: ``search_after`` with the previous page's last sort values (the cursor); totals counted up to
  EXACT_TOTAL (a lower bound beyond, as the PostgreSQL backend's) on the first page only.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from search_svc.domain import (
    EXACT_TOTAL,
    CitySuggestion,
    SearchHit,
    SearchPage,
    SearchQuery,
    Suggestions,
    SuggestQuery,
)
from tix.availability import AvailabilityBand
from tix.catalog import Performer, Venue
from tix.errors import InvalidArgument

_BIGINT_MAX = 2**63 - 1
# Fields a keyword query reads, with their weights (names over places over the description).
TEXT_FIELDS = ("name^3", "performer_name^3", "venue_name^2", "city^2", "description^0.5")
PREFIX_FIELDS = ("name.prefix^2", "performer_name.prefix^2", "venue_name.prefix", "city.prefix")

_NAME = {
    "type": "text",
    "analyzer": "folded",
    "fields": {
        # As-you-type: edge n-grams of every word at index time, the plain words at query time.
        "prefix": {"type": "text", "analyzer": "edge_ngram", "search_analyzer": "folded"},
        # Exact, case-insensitive filters and field collapsing (suggestions).
        "raw": {"type": "keyword", "normalizer": "lowercase", "ignore_above": 256},
    },
}


def index_template(pattern: str) -> dict[str, Any]:
    """The composable index template every index behind the alias is created from (``pattern``: "<alias>-*")."""
    return {
        "index_patterns": [pattern],
        "priority": 200,
        "template": {
            "settings": {
                "number_of_shards": 1,
                "refresh_interval": "1s",
                "analysis": {
                    "filter": {
                        "edge_ngram_filter": {"type": "edge_ngram", "min_gram": 1, "max_gram": 20},
                    },
                    "analyzer": {
                        "folded": {"type": "custom", "tokenizer": "standard",
                                   "filter": ["lowercase", "asciifolding"]},
                        "edge_ngram": {"type": "custom", "tokenizer": "standard",
                                       "filter": ["lowercase", "asciifolding", "edge_ngram_filter"]},
                    },
                    "normalizer": {
                        "lowercase": {"type": "custom", "filter": ["lowercase", "asciifolding"]},
                    },
                },
            },
            "mappings": {
                "dynamic": "strict",
                "properties": {
                    "event_id": {"type": "long"},
                    "name": _NAME,
                    "description": {"type": "text", "analyzer": "folded"},
                    "category": {"type": "short"},
                    "starts_at": {"type": "date"},
                    "sale_starts_at": {"type": "date"},
                    "sale_ends_at": {"type": "date"},
                    "cancelled": {"type": "boolean"},
                    "band": {"type": "keyword"},
                    "min_price_minor": {"type": "long"},
                    "currency": {"type": "keyword"},
                    "venue_id": {"type": "long"},
                    "venue_name": _NAME,
                    "city": _NAME,
                    "region": {"type": "keyword"},
                    "country_code": {"type": "keyword"},
                    "location": {"type": "geo_point"},
                    "time_zone": {"type": "keyword", "index": False},
                    "capacity": {"type": "integer", "index": False},
                    "layout_id": {"type": "keyword", "index": False},
                    "layout_name": {"type": "keyword", "index": False},
                    "performer_id": {"type": "long"},
                    "performer_name": _NAME,
                    "performer_category": {"type": "short"},
                    "genre": {"type": "keyword"},
                },
            },
        },
    }


# The catalog's rows for a document, by event (the projection shared by the indexer and `tix search reindex`).
DOCUMENT_SQL = """
    SELECT e.event_id, e.name, e.description, e.category, e.starts_at, e.sale_starts_at, e.sale_ends_at,
           e.cancelled, e.availability_band, e.currency,
           coalesce((SELECT min(price) FROM unnest(e.tier_prices) AS price), 0) AS min_price_minor,
           v.venue_id, v.name AS venue_name, v.city, v.region, v.country_code, v.latitude, v.longitude,
           v.time_zone, v.capacity, v.layout_id, l.name AS layout_name,
           p.performer_id, p.name AS performer_name, p.category AS performer_category, p.genre
    FROM events e
    JOIN venues v ON v.venue_id = e.venue_id
    JOIN layouts l ON l.layout_id = v.layout_id
    JOIN performers p ON p.performer_id = e.performer_id
    WHERE {where}
"""


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def document(row: Mapping[Any, Any]) -> dict[str, Any]:
    """An event's document from a DOCUMENT_SQL row."""
    return {
        "event_id": row["event_id"],
        "name": row["name"],
        "description": row["description"],
        "category": row["category"],
        "starts_at": _iso(row["starts_at"]),
        "sale_starts_at": _iso(row["sale_starts_at"]),
        "sale_ends_at": _iso(row["sale_ends_at"]),
        "cancelled": row["cancelled"],
        "band": row["availability_band"],
        "min_price_minor": row["min_price_minor"],
        "currency": row["currency"],
        "venue_id": row["venue_id"],
        "venue_name": row["venue_name"],
        "city": row["city"],
        "region": row["region"],
        "country_code": row["country_code"],
        "location": {"lat": row["latitude"], "lon": row["longitude"]},
        "time_zone": row["time_zone"],
        "capacity": row["capacity"],
        "layout_id": row["layout_id"],
        "layout_name": row["layout_name"],
        "performer_id": row["performer_id"],
        "performer_name": row["performer_name"],
        "performer_category": row["performer_category"],
        "genre": row["genre"],
    }


# --- keywords --------------------------------------------------------------------------------------------------

_PHRASE = re.compile(r'(-?)"([^"]*)"')
_WORD = re.compile(r"(-?)([^\s\"]+)")


def parse_keywords(raw: str) -> tuple[list[str], list[str], list[str], bool]:
    """Web-search syntax: (words, phrases, excluded words or phrases, whether "or" joins the words)."""
    phrases: list[str] = []
    excluded: list[str] = []
    for negated, phrase in _PHRASE.findall(raw):
        if phrase.strip():
            (excluded if negated else phrases).append(phrase.strip())
    rest = _PHRASE.sub(" ", raw)
    words: list[str] = []
    any_of = False
    for negated, word in _WORD.findall(rest):
        if word.lower() == "or":
            any_of = True
        elif negated:
            excluded.append(word)
        elif word.strip("-"):
            words.append(word.strip("-"))
    return words, phrases, excluded, any_of


def text_query(raw: str) -> dict[str, Any] | None:
    """The scoring part of a keyword search; None when the text has no word to look for."""
    words, phrases, excluded, any_of = parse_keywords(raw)
    if not words and not phrases:
        return None
    must: list[dict[str, Any]] = []
    should: list[dict[str, Any]] = []
    if words:
        text = " ".join(words)
        operator = "or" if any_of else "and"
        must.append({
            "bool": {
                "should": [
                    {"multi_match": {"query": text, "fields": list(TEXT_FIELDS), "type": "cross_fields",
                                     "operator": operator}},
                    {"multi_match": {"query": text, "fields": list(TEXT_FIELDS), "fuzziness": "AUTO",
                                     "prefix_length": 1, "operator": operator}},
                    {"multi_match": {"query": text, "fields": list(PREFIX_FIELDS), "type": "cross_fields",
                                     "operator": operator}},
                ],
                "minimum_should_match": 1,
            }
        })
        # An exact phrase of the words ranks first.
        should.append({"multi_match": {"query": text, "fields": list(TEXT_FIELDS), "type": "phrase", "boost": 2}})
    for phrase in phrases:
        must.append({"multi_match": {"query": phrase, "fields": list(TEXT_FIELDS), "type": "phrase"}})
    query: dict[str, Any] = {"must": must}
    if should:
        query["should"] = should
    if excluded:
        query["must_not"] = [
            {"multi_match": {"query": term, "fields": list(TEXT_FIELDS), "type": "phrase"}} for term in excluded
        ]
    return {"bool": query}


# --- filters, order, paging ------------------------------------------------------------------------------------


def _named(field: str, id_field: str, value: str) -> dict[str, Any]:
    by_name: dict[str, Any] = {"term": {f"{field}.raw": value.lower()}}
    if value.isascii() and value.isdigit() and int(value) <= _BIGINT_MAX:
        return {"bool": {"should": [by_name, {"term": {id_field: int(value)}}], "minimum_should_match": 1}}
    return by_name


def filters(query: SearchQuery) -> list[dict[str, Any]]:
    starts: dict[str, Any] = {"gte": query.start_time.isoformat() if query.start_time else "now"}
    if query.end_time is not None:
        starts["lt"] = query.end_time.isoformat()
    out: list[dict[str, Any]] = [{"range": {"starts_at": starts}}]
    if query.city:
        out.append({"term": {"city.raw": query.city.lower()}})
    if query.category:
        out.append({"term": {"category": query.category}})
    if query.performer:
        out.append(_named("performer_name", "performer_id", query.performer))
    if query.venue:
        out.append(_named("venue_name", "venue_id", query.venue))
    if query.geo is not None and query.geo.radius_km is not None:
        out.append({"geo_distance": {"distance": f"{query.geo.radius_km}km",
                                     "location": {"lat": query.geo.latitude, "lon": query.geo.longitude}}})
    return out


def sort(query: SearchQuery, keywords: bool) -> list[Any]:
    tail: list[Any] = [{"starts_at": "asc"}, {"event_id": "asc"}]
    if keywords:
        return [{"_score": "desc"}, *tail]
    if query.geo is not None:
        point = {"lat": query.geo.latitude, "lon": query.geo.longitude}
        return [{"_geo_distance": {"location": point, "order": "asc", "unit": "km", "distance_type": "arc"}}, *tail]
    return tail


def search_after(query: SearchQuery, size: int) -> list[Any] | None:
    """The previous page's cursor, checked: ``size`` JSON scalars."""
    if not query.after:
        return None
    try:
        values = json.loads(query.after)
    except ValueError:
        raise InvalidArgument("page_token", "is not a token this service issued") from None
    if (
        not isinstance(values, list)
        or len(values) != size
        or not all(isinstance(v, int | float | str) and not isinstance(v, bool) for v in values)
    ):
        raise InvalidArgument("page_token", "is not a token this service issued")
    return values


def search_body(query: SearchQuery) -> dict[str, Any]:
    """The _search body of one page of ``query``."""
    scoring = text_query(query.text) if query.text else None
    bool_query: dict[str, Any] = {"filter": filters(query)}
    if scoring is not None:
        bool_query["must"] = [scoring]
    order = sort(query, scoring is not None)
    body: dict[str, Any] = {
        "query": {"bool": bool_query},
        "sort": order,
        "size": query.limit,
        # Counting stops at EXACT_TOTAL (as the PostgreSQL backend's), and only the first page counts.
        "track_total_hits": EXACT_TOTAL if query.total is None else False,
    }
    after = search_after(query, len(order))
    if after is not None:
        body["search_after"] = after
    return body


def page_from_response(query: SearchQuery, response: Mapping[str, Any]) -> SearchPage:
    hits = response["hits"]["hits"]
    geo_first = not query.text or text_query(query.text) is None
    with_distance = query.geo is not None
    results = []
    for hit in hits:
        distance = None
        if with_distance:
            if geo_first:
                distance = float(hit["sort"][0])
            else:
                source = hit["_source"]["location"]
                assert query.geo is not None
                distance = _arc_km(query.geo.latitude, query.geo.longitude, source["lat"], source["lon"])
        results.append(hit_from_source(hit["_source"], distance))
    if query.total is not None:
        total = query.total
    else:
        total = int(response["hits"]["total"]["value"]) if response["hits"].get("total") else len(hits)
    cursor = json.dumps(hits[-1]["sort"]) if hits and len(hits) == query.limit else ""
    return SearchPage(hits=tuple(results), total_size=total, cursor=cursor)


def _arc_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    import math

    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6371.0088 * math.asin(min(1.0, math.sqrt(a)))


def hit_from_source(source: Mapping[str, Any], distance_km: float | None) -> SearchHit:
    return SearchHit(
        event_id=int(source["event_id"]),
        name=source["name"],
        category=int(source["category"]),
        starts_at=datetime.fromisoformat(source["starts_at"]),
        sale_starts_at=datetime.fromisoformat(source["sale_starts_at"]),
        sale_ends_at=datetime.fromisoformat(source["sale_ends_at"]) if source.get("sale_ends_at") else None,
        cancelled=bool(source["cancelled"]),
        band=AvailabilityBand(source["band"]),
        venue=_venue(source),
        performer=Performer(int(source["performer_id"]), source["performer_name"], int(source["performer_category"]),
                            source["genre"]),
        min_price_minor=int(source["min_price_minor"]),
        currency=source["currency"],
        distance_km=distance_km,
    )


def _venue(source: Mapping[str, Any]) -> Venue:
    return Venue(
        venue_id=int(source["venue_id"]), name=source["venue_name"], city=source["city"], region=source["region"],
        country_code=source["country_code"], latitude=float(source["location"]["lat"]),
        longitude=float(source["location"]["lon"]), time_zone=source["time_zone"], capacity=int(source["capacity"]),
        layout_id=source["layout_id"], layout_name=source["layout_name"],
    )


# --- suggestions -----------------------------------------------------------------------------------------------


def _prefix_match(field: str, text: str) -> dict[str, Any]:
    """What was typed as a prefix of ``field``'s words; from the third letter a typo is forgiven too."""
    match: dict[str, Any] = {"query": text, "operator": "and"}
    if len(text) >= 3:
        match["fuzziness"] = "AUTO"
        match["prefix_length"] = 1
    return {"match": {f"{field}.prefix": match}}


def suggest_bodies(query: SuggestQuery) -> list[dict[str, Any]]:
    """Four searches (one msearch): performers, venues and cities (one hit each, by collapsing on the field), and
    upcoming events of matching performers or venues or with a matching name, soonest first."""
    upcoming = {"range": {"starts_at": {"gte": "now"}}}

    def collapsed(field: str, key: str, source: list[str]) -> dict[str, Any]:
        return {
            "query": {"bool": {"must": [_prefix_match(field, query.text)], "filter": [upcoming]}},
            "collapse": {"field": key},
            "sort": [{"_score": "desc"}, {key: "asc"}],
            "_source": source,
            "size": query.limit,
        }

    venue_fields = ["venue_id", "venue_name", "city", "region", "country_code", "location", "time_zone", "capacity",
                    "layout_id", "layout_name"]
    return [
        collapsed("performer_name", "performer_id", ["performer_id", "performer_name", "performer_category", "genre"]),
        collapsed("venue_name", "venue_id", venue_fields),
        collapsed("city", "city.raw", ["city", "region", "country_code"]),
        {
            "query": {"bool": {
                "should": [_prefix_match(field, query.text) for field in ("performer_name", "venue_name", "name")],
                "minimum_should_match": 1,
                "filter": [upcoming],
            }},
            "sort": [{"_score": "desc"}, {"starts_at": "asc"}, {"event_id": "asc"}],
            "size": query.limit,
        },
    ]


def suggestions_from_responses(responses: list[Mapping[str, Any]]) -> Suggestions:
    performers, venues, cities, events = ([hit["_source"] for hit in r["hits"]["hits"]] for r in responses)
    return Suggestions(
        performers=tuple(
            Performer(int(s["performer_id"]), s["performer_name"], int(s["performer_category"]), s["genre"])
            for s in performers
        ),
        venues=tuple(_venue(s) for s in venues),
        cities=tuple(CitySuggestion(s["city"], s["region"], s["country_code"]) for s in cities),
        events=tuple(hit_from_source(s, None) for s in events),
    )
