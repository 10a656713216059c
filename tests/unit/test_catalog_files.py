"""Catalog files (tix catalog apply) are validated whole before anything is written, and every problem names where
it is in the file."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from tix.catalog_files import CatalogFileError, parse_catalog

GOOD = """
venues:
  - external_id: msg
    name: Madison Square Garden
    city: New York
    region: NY
    country_code: US
    latitude: 40.7505
    longitude: -73.9934
    time_zone: America/New_York
    layout: arena
performers:
  - external_id: taylor
    name: Taylor Swift
    category: concert
    genre: pop
events:
  - external_id: eras-msg-1
    name: Taylor Swift | The Eras Tour
    venue: msg
    performer: taylor
    starts_at: 2027-03-01T20:00:00-05:00
    sale_starts_at: 2027-01-10T10:00:00-05:00
    tier_prices: [25000, 15000, 9000]
"""


def problems(raw: str, source: str = "catalog.yaml") -> list[str]:
    with pytest.raises(CatalogFileError) as caught:
        parse_catalog(raw, source)
    return caught.value.problems


def test_a_good_file_parses_with_defaults_filled_in():
    catalog = parse_catalog(GOOD, "catalog.yaml")
    (event,) = catalog.events
    assert event.ends - event.starts_at == timedelta(hours=3)
    assert event.category is None  # the performer's
    assert (event.currency, event.max_seats_per_user, event.queue.enabled) == ("USD", 8, False)
    assert catalog.size == 3


def test_json_is_accepted_too():
    import yaml

    data = yaml.safe_load(GOOD)
    catalog = parse_catalog(json.dumps(data, default=str), "catalog.json")
    assert catalog.venues[0].external_id == "msg"


def test_every_problem_is_listed_with_its_place_in_the_file():
    raw = GOOD.replace("country_code: US", "country_code: usa").replace(
        "starts_at: 2027-03-01T20:00:00-05:00", "starts_at: 2027-03-01T20:00:00"
    ).replace("category: concert", "category: opera")
    found = problems(raw)
    assert any(p.startswith("venues[0].country_code:") for p in found)
    assert any(p.startswith("performers[0].category:") for p in found)
    assert any(p.startswith("events[0].starts_at:") and "timezone" in p for p in found)


def test_unknown_fields_and_unknown_time_zones_are_refused():
    raw = GOOD.replace("time_zone: America/New_York", "time_zone: Mars/Olympus").replace(
        "genre: pop", "genre: pop\n    colour: blue"
    )
    found = problems(raw)
    assert any(p.startswith("venues[0].time_zone:") and "Mars/Olympus" in p for p in found)
    assert any(p.startswith("performers[0].colour:") for p in found)


def test_an_event_ending_before_it_starts_is_refused():
    raw = GOOD.replace("    tier_prices:", "    ends_at: 2027-03-01T19:00:00-05:00\n    tier_prices:")
    assert any("ends_at must not be before starts_at" in p for p in problems(raw))


def test_an_external_id_used_twice_in_one_kind_is_refused():
    data = {"performers": [{"external_id": "a", "name": "A", "category": "comedy"}] * 2}
    found = problems(json.dumps(data), "catalog.json")
    assert found == [
        "performers[0].external_id: 'a' appears 2 times in the file",
        "performers[1].external_id: 'a' appears 2 times in the file",
    ]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("venues: [", "not valid YAML"),
        ("- just\n- a list\n", "must be a mapping"),
        ("venues: 3\n", "venues: Input should be a valid list"),
    ],
)
def test_malformed_files_say_what_is_wrong(raw, expected):
    assert any(expected in p for p in problems(raw))


def test_an_empty_file_is_an_empty_catalog():
    assert parse_catalog("", "catalog.yaml").size == 0


def test_the_error_message_names_the_file_and_counts_the_problems():
    raw = GOOD.replace("latitude: 40.7505", "latitude: 400")
    with pytest.raises(CatalogFileError) as caught:
        parse_catalog(raw, "shows.yaml")
    message = str(caught.value)
    assert message.startswith("shows.yaml: 1 problem(s)")
    assert "venues[0].latitude" in message
