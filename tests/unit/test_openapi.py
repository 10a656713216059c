"""The OpenAPI 3.1 document is derived from the descriptor set: committed in gen/ (and the k8s copy) exactly as a fresh
build writes it, one operation per public route, schemas in the proto3 JSON mapping, errors as google.rpc.Status."""

from __future__ import annotations

import json

from tix_dev.edge import http_routes
from tix_dev.openapi import OpenApiBuilder, render_reference
from tix_dev.settings import REPO_ROOT

DOCUMENT = REPO_ROOT / "gen" / "openapi.json"


def _document() -> dict:
    return json.loads(DOCUMENT.read_text())


def test_committed_document_and_its_copies_match_a_fresh_build():
    fresh = OpenApiBuilder().build()
    assert _document() == fresh, "gen/openapi.json is stale: run `make proto`"
    assert (REPO_ROOT / "gen" / "openapi.html").read_text() == render_reference(fresh)
    assert (REPO_ROOT / "k8s" / "base" / "edge" / "openapi.json").read_text() == DOCUMENT.read_text()


def test_every_public_route_is_an_operation_and_nothing_else():
    document = _document()
    assert document["openapi"] == "3.1.0"
    operations = {(verb.upper(), path) for path, item in document["paths"].items() for verb in item}
    assert operations == {(route.verb, route.path) for route in http_routes()}
    assert not [path for path in document["paths"] if "admin" in path.lower()]


def test_security_follows_the_route_class():
    paths = _document()["paths"]
    assert paths["/v1/events/{event_id}"]["get"]["security"] == [{}, {"bearerAuth": []}]
    assert paths["/v1/bookings:reserve"]["post"]["security"] == [{"bearerAuth": []}]
    assert paths["/v1/webhooks/stripe"]["post"]["security"] == [{}]
    watch = paths["/v1/events/{event_id}/queue/{ticket_id}:watch"]["get"]
    assert watch["security"] == [{"bearerAuth": []}, {"streamToken": []}]
    assert watch["x-tix-streaming"] is True
    assert set(watch["responses"]["200"]["content"]) == {"text/event-stream", "application/json"}


def test_parameters_and_bodies_follow_the_transcoder():
    paths = _document()["paths"]
    search = {p["name"]: p for p in paths["/v1/events:search"]["get"]["parameters"]}
    assert {"query", "city", "pageSize", "pageToken", "startTime"} <= set(search)
    assert search["startTime"]["schema"]["format"] == "date-time"
    reserve = paths["/v1/bookings:reserve"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert reserve["required"] == ["eventId"]
    assert reserve["additionalProperties"] is False
    assert "seatIds" in reserve["properties"]
    confirm = paths["/v1/bookings/{booking_id}:confirm"]["post"]
    assert [p["name"] for p in confirm["parameters"]] == ["booking_id"]
    assert "bookingId" not in confirm["requestBody"]["content"]["application/json"]["schema"]["properties"]


def test_schemas_use_the_proto3_json_mapping_and_errors_are_statuses():
    document = _document()
    schemas = document["components"]["schemas"]
    event = schemas["tix.v1.Event"]["properties"]
    assert event["startTime"]["type"] == "string"
    assert event["startTime"]["format"] == "date-time"
    assert schemas["tix.v1.SaleStatus"]["enum"][0] == "SALE_STATUS_UNSPECIFIED"
    assert schemas["tix.v1.SeatMap"]["properties"]["version"]["format"] == "int64"  # int64 travels as a string
    assert schemas["tix.v1.SeatMap"]["properties"]["version"]["type"] == "string"
    rate_limited = document["paths"]["/v1/bookings:reserve"]["post"]["responses"]["429"]
    assert rate_limited["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/google.rpc.Status"}
    assert "Retry-After" in rate_limited["headers"]
    assert schemas["google.rpc.Status"]["required"] == ["code", "message"]


def test_the_reference_page_needs_nothing_from_elsewhere():
    page = (REPO_ROOT / "gen" / "openapi.html").read_text()
    assert "<script" not in page
    assert "http://" not in page
    assert "https://" not in page.replace("https://auth.tix.dev", "")
    assert "/v1/bookings:reserve" in page
