"""The edge as a trust boundary, probed as a hostile or careless client would (issue 9's measurements, each kept as a
regression test): bad bytes are a 4xx naming the field and never a 5xx, sizes are bounded, rate budgets are per fan
and per address and spare bystanders, tokens must expire and carry a sane subject, native gRPC callers get real
status details, and browsers on another origin get CORS and stream tokens."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import re
import time
import uuid

import grpc
import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from tests.e2e.conftest import access_log_entries, forget_catalog, second_edge
from tests.factories import create_event
from tix.identity import JWT_AUDIENCE, JWT_ISSUER
from tix.settings import DEVELOPMENT_STRIPE_WEBHOOK_SECRET
from tix_dev.edge import Bucket, EdgeLimits, http_routes
from tix_dev.settings import REPO_ROOT
from tix_dev.tokens import KEY_ID, dev_key_paths, issue_token
from tix_dev.up import Mesh
from tixpb.v1 import booking_pb2, booking_pb2_grpc, event_pb2, event_pb2_grpc

pytestmark = pytest.mark.e2e

BAD_REQUEST = "type.googleapis.com/google.rpc.BadRequest"
ERROR_INFO = "type.googleapis.com/google.rpc.ErrorInfo"
RETRY_INFO = "type.googleapis.com/google.rpc.RetryInfo"
LEAKS = re.compile(r"Decode|Traceback|Exception|psycopg|sqlalchemy|\.py\b", re.IGNORECASE)


def _details(body: dict, type_url: str) -> list[dict]:
    return [detail for detail in body.get("details", []) if detail.get("@type") == type_url]


def _assert_bad_request(response: httpx.Response, field: str) -> None:
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["code"] == 3
    [bad] = _details(body, BAD_REQUEST)
    assert [violation["field"] for violation in bad["fieldViolations"]] == [field], body
    assert not LEAKS.search(body["message"]), body


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# --- bad bytes are a 4xx, always ---------------------------------------------------------------------------------


def _invalid_utf8_probes() -> list[tuple[str, str, str]]:
    """(verb, url, field) for every path variable of every route, and every string query parameter of the GETs."""
    probes = []
    for route in http_routes():
        variables = re.findall(r"\{([^}=]+)[^}]*\}", route.path)
        for target in variables:
            url = route.path
            for name in variables:
                url = url.replace(f"{{{name}}}", "%FF" if name == target else "1")
            probes.append((route.verb, url, target))
    search = next(route for route in http_routes() if route.path == "/v1/events:search")
    for parameter in ("query", "city", "performer", "pageToken"):
        probes.append((search.verb, f"{search.path}?{parameter}=%FF", re.sub(r"([A-Z])", r"_\1", parameter).lower()))
    probes.append(("GET", "/v1/events/1/seats?sectionId=%FF", "section_id"))
    return probes


@pytest.mark.parametrize(("verb", "url", "field"), _invalid_utf8_probes())
async def test_bytes_that_are_not_utf8_are_a_400_naming_the_field(http, token, verb, url, field):
    kwargs = {"json": {}} if verb == "POST" else {}
    response = await http.request(verb, url, headers=_bearer(token), **kwargs)
    _assert_bad_request(response, field)


@pytest.mark.parametrize(
    ("url", "field"),
    [
        ("/v1/events:search?query=rock%00roll", "query"),
        ("/v1/events:search?city=Chi%00cago", "city"),
        ("/v1/events:search?performer=a%00b", "performer"),
        ("/v1/events:search?query=%1B%5B31m", "query"),
        ("/v1/events:search?query=%EF%BF%BF", "query"),  # U+FFFF, a noncharacter
        ("/v1/events:search?city=%EE%80%80", "city"),  # U+E000, private use
        ("/v1/events/1/seats?sectionId=A%00", "section_id"),
    ],
)
async def test_nul_control_and_odd_code_points_are_a_400_naming_the_field(http, url, field):
    _assert_bad_request(await http.get(url), field)


async def test_controls_inside_a_json_body_are_a_400_naming_the_nested_field(http, token, catalog_event):
    response = await http.post(
        "/v1/bookings:reserve",
        headers=_bearer(token),
        json={"eventId": str(catalog_event.event_id), "bestAvailable": {"quantity": 1, "sectionId": "A\u0000"}},
    )
    _assert_bad_request(response, "best_available.section_id")


@pytest.mark.parametrize("performer", ["²", "٣", "Motörhead", "東京"])
async def test_ordinary_unicode_that_looks_like_digits_is_a_search_not_an_error(http, performer):
    response = await http.get("/v1/events:search", params={"performer": performer})
    assert response.status_code == 200, response.text


def _token(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.mark.parametrize(
    "page_token",
    [
        _token(b'{"o":true}'),
        _token(b'{"o":true,"q":"0123456789abcdef"}'),
        _token(b"[" * 200 + b"]" * 200),
        _token(b'{"o":1e400,"q":"x"}'),
        "not base64 at all!",
        "A" * 2000,
    ],
)
async def test_malformed_page_tokens_are_a_400_on_page_token(http, page_token):
    _assert_bad_request(await http.get("/v1/events:search", params={"pageToken": page_token}), "page_token")


def _stripe_signed(payload: bytes) -> str:
    stamp = int(time.time())
    signature = hmac.new(DEVELOPMENT_STRIPE_WEBHOOK_SECRET.encode(), b"%d.%s" % (stamp, payload), hashlib.sha256)
    return f"t={stamp},v1={signature.hexdigest()}"


@pytest.mark.parametrize("payload", [b"[]", b"null", b'{"id": 7}', b'"text"'])
async def test_signed_webhooks_that_are_not_stripe_events_are_a_400(http, payload):
    response = await http.post(
        "/v1/webhooks/stripe",
        content=payload,
        headers={"Stripe-Signature": _stripe_signed(payload), "Content-Type": "application/json"},
    )
    assert response.status_code == 400, response.text
    [info] = _details(response.json(), ERROR_INFO)
    assert info["reason"] == "WEBHOOK_PAYLOAD_INVALID"


async def test_headers_http_allows_but_grpc_metadata_does_not_are_dropped_not_a_500(http):
    response = await http.get(
        "/v1/events/1",
        headers=[(b"'odd^name", b"x"), (b"x-latin", b"caf\xe9"), (b"x-control", b"a\x01b")],
    )
    assert response.status_code < 500, response.text


# --- sizes ----------------------------------------------------------------------------------------------------------


async def test_a_twenty_megabyte_body_is_a_413_json_status(edge_url, token):
    """Envoy answers as soon as the Content-Length says too much, while the client is still sending (a client that
    only reads after sending everything sees the connection close instead): send the first megabyte, then read."""
    host, port = edge_url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(
            (
                "POST /v1/bookings:reserve HTTP/1.1\r\nHost: tix\r\nContent-Type: application/json\r\n"
                f"Authorization: Bearer {token}\r\nContent-Length: {20 * 1024 * 1024}\r\n\r\n"
            ).encode()
        )
        with contextlib.suppress(ConnectionError):
            writer.write(b" " * (1024 * 1024))
            await writer.drain()
        head, _, body = (await asyncio.wait_for(reader.read(65536), 10)).partition(b"\r\n\r\n")
    finally:
        writer.close()
    assert head.startswith(b"HTTP/1.1 413"), head
    assert json.loads(body)["details"][0]["reason"] == "REQUEST_TOO_LARGE"


async def test_webhooks_have_a_body_limit_of_their_own(http):
    limits = EdgeLimits()
    assert limits.max_webhook_body_bytes > limits.max_request_body_bytes
    # Above the API's limit but under the webhook's: it reaches the service (which wants a signature).
    medium = b" " * (limits.max_request_body_bytes * 2)
    response = await http.post("/v1/webhooks/stripe", content=medium, headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert _details(response.json(), ERROR_INFO)[0]["reason"] == "WEBHOOK_SIGNATURE_INVALID"
    huge = b" " * (limits.max_webhook_body_bytes + 1)
    response = await http.post("/v1/webhooks/stripe", content=huge, headers={"Content-Type": "application/json"})
    assert response.status_code == 413


@pytest.mark.parametrize("length", [4097, 8 * 1024, 16 * 1024])
async def test_long_urls_are_a_414_never_a_random_429(http, length):
    base = "/v1/events:search?query="
    response = await http.get(base + "a" * (length - len(base)))
    assert response.status_code == 414
    assert _details(response.json(), ERROR_INFO)[0]["reason"] == "URI_TOO_LONG"


async def test_a_url_just_under_the_limit_is_served(http):
    base = "/v1/events:search?query="
    response = await http.get(base + "a+" * ((EdgeLimits().max_url_bytes - len(base)) // 2 - 1))
    # A long query is the search's business (at most 200 characters): a 400 from the service, not the edge.
    assert response.status_code == 400, response.text
    assert "x-envoy-upstream-service-time" in response.headers


async def test_too_many_header_bytes_are_a_431_json_status(http):
    response = await http.get("/v1/events/1", headers={"x-padding": "a" * (40 * 1024)})
    assert response.status_code == 431
    assert _details(response.json(), ERROR_INFO)[0]["reason"] == "REQUEST_HEADERS_TOO_LARGE"


async def test_headers_under_the_limit_never_trip_the_services_metadata_limit(http):
    """gRPC refuses metadata past 8 KiB at random (RESOURCE_EXHAUSTED, a 429 at the edge); the services accept what
    the edge does."""
    statuses = {
        (await http.get("/v1/events/1", headers={"x-padding": "a" * (24 * 1024)})).status_code for _ in range(10)
    }
    assert 429 not in statuses
    assert statuses <= {200, 404}


# --- rate budgets that spare bystanders ----------------------------------------------------------------------------


def _assert_rate_limited(response: httpx.Response) -> None:
    assert response.status_code == 429, response.text
    assert response.headers["retry-after"] == "1"
    body = response.json()
    assert body["code"] == 8
    assert _details(body, ERROR_INFO)[0]["reason"] == "RATE_LIMITED"
    assert _details(body, RETRY_INFO) == [{"@type": RETRY_INFO, "retryDelay": "1s"}]


async def test_one_fans_burst_leaves_another_fans_reserve_untouched(mesh: Mesh, db, tmp_path):
    """Mallory fires 60 reserves at once from the same address as Alice; Mallory's budget runs dry (429 with
    Retry-After and RetryInfo), Alice's reserve right after goes through and holds her seats."""
    event = await create_event(db)
    limits = EdgeLimits.unlimited()
    limits = EdgeLimits(
        edge=limits.edge, read_per_ip=limits.read_per_ip, webhook=limits.webhook,
        fan_per_user=Bucket(burst=5, per_second=1), fan_per_ip=Bucket(burst=1000, per_second=1000),
    )
    mallory, alice = issue_token(mesh.var_dir, "mallory-burst"), issue_token(mesh.var_dir, "alice-bystander")
    with second_edge(mesh, tmp_path, limits) as base_url:
        async with httpx.AsyncClient(base_url=base_url, timeout=20) as client:
            burst = await asyncio.gather(
                *(
                    client.post(
                        "/v1/bookings:reserve", headers=_bearer(mallory),
                        json={"eventId": str(event.event_id), "seatIds": [event.seat_ids[-1 - i % 10]]},
                    )
                    for i in range(60)
                )
            )
            reserve = await client.post(
                "/v1/bookings:reserve", headers=_bearer(alice),
                json={"eventId": str(event.event_id), "bestAvailable": {"quantity": 2}, "requestId": "alice-1"},
            )
    limited = [response for response in burst if response.status_code == 429]
    assert len(limited) >= 60 - 5 - 2, [r.status_code for r in burst]
    _assert_rate_limited(limited[0])
    assert reserve.status_code == 200, reserve.text
    assert len(reserve.json()["seats"]) == 2


async def test_reads_have_a_per_address_budget_and_webhooks_one_of_their_own(mesh: Mesh, tmp_path, token):
    limits = EdgeLimits(
        read_per_ip=Bucket(burst=5, per_second=1), fan_per_user=Bucket(burst=3, per_second=1),
        webhook=Bucket(burst=3, per_second=1),
    )
    with second_edge(mesh, tmp_path, limits) as base_url:
        async with httpx.AsyncClient(base_url=base_url, timeout=20) as client:
            reads = [(await client.get("/v1/events:search", params={"query": "x"})).status_code for _ in range(8)]
            # The reads' budget is spent; the fan's and the webhook's are not.
            fan = await client.get(f"/v1/bookings/{uuid.uuid4()}", headers=_bearer(token))
            webhooks = [
                (await client.post("/v1/webhooks/stripe", content=b"{}")).status_code for _ in range(5)
            ]
            search_after = await client.get("/v1/events:search", params={"query": "x"})
    assert reads[:5] == [200] * 5
    assert 429 in reads[5:]
    assert fan.status_code == 404, fan.text  # the booking service answered: not limited
    assert webhooks[:3] == [400, 400, 400]  # unsigned: the service refused them
    assert webhooks[3:] == [429, 429]
    _assert_rate_limited(search_after)


async def test_native_grpc_callers_get_status_details_from_the_edge(mesh: Mesh, tmp_path, token):
    limits = EdgeLimits(read_per_ip=Bucket(burst=1, per_second=1))
    with second_edge(mesh, tmp_path, limits) as base_url:
        async with grpc.aio.insecure_channel(base_url.removeprefix("http://")) as channel:
            bookings = booking_pb2_grpc.BookingServiceStub(channel)
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await bookings.GetBooking(booking_pb2.GetBookingRequest(booking_id=str(uuid.uuid4())))
            _assert_grpc_reason(caught.value, grpc.StatusCode.UNAUTHENTICATED, "UNAUTHENTICATED")

            unknown = channel.unary_unary("/tix.v1.EventAdminService/CancelEvent")
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await unknown(b"")
            _assert_grpc_reason(caught.value, grpc.StatusCode.UNIMPLEMENTED, "ROUTE_NOT_FOUND")

            events = event_pb2_grpc.EventServiceStub(channel)
            codes = []
            for _ in range(3):
                try:
                    await events.GetEvent(event_pb2.GetEventRequest(event_id="1"))
                    codes.append(grpc.StatusCode.OK)
                except grpc.aio.AioRpcError as error:
                    codes.append(error.code())
                    last = error
            assert grpc.StatusCode.RESOURCE_EXHAUSTED in codes
            status = _assert_grpc_reason(last, grpc.StatusCode.RESOURCE_EXHAUSTED, "RATE_LIMITED")
            retry = error_details_pb2.RetryInfo()
            assert status.details[1].Unpack(retry)
            assert retry.retry_delay.seconds == 1


def _assert_grpc_reason(error: grpc.aio.AioRpcError, code: grpc.StatusCode, reason: str):
    assert error.code() == code, error
    status = rpc_status.from_call(error)  # raises when grpc-message and the details disagree
    assert status is not None, "no grpc-status-details-bin"
    info = error_details_pb2.ErrorInfo()
    assert status.details[0].Unpack(info)
    assert (info.reason, info.domain) == (reason, "tix.dev")
    assert "{" not in error.details()  # no JSON body stuffed into grpc-message
    return status


# --- tokens -------------------------------------------------------------------------------------------------------


def _signed(mesh: Mesh, claims: dict) -> str:
    key = serialization.load_pem_private_key(dev_key_paths(mesh.var_dir)[0].read_bytes(), None)
    base = {"iss": JWT_ISSUER, "aud": JWT_AUDIENCE, "iat": int(time.time()), "exp": int(time.time()) + 600}
    merged = {k: v for k, v in {**base, **claims}.items() if v is not None}
    return jwt.encode(merged, key, algorithm="RS256", headers={"kid": KEY_ID})


@pytest.mark.parametrize(
    "claims",
    [
        {"sub": "fan-1", "exp": None},  # never expires
        {"sub": "fan\n1"},  # used to be a 503
        {"sub": "fan 1"},
        {"sub": ""},
        {"sub": "f\u00e4n"},
        {"sub": "a" * 300},
    ],
)
async def test_tokens_without_exp_or_with_a_subject_the_services_cannot_use_are_401(mesh: Mesh, http, claims):
    response = await http.get(f"/v1/bookings/{uuid.uuid4()}", headers=_bearer(_signed(mesh, claims)))
    assert response.status_code == 401, response.text
    assert response.json()["code"] == 16


async def test_a_good_subject_still_passes(mesh: Mesh, http):
    response = await http.get(f"/v1/bookings/{uuid.uuid4()}", headers=_bearer(_signed(mesh, {"sub": "auth0|abc.D-1"})))
    assert response.status_code == 404, response.text


# --- browsers: CORS and stream tokens ---------------------------------------------------------------------------


async def test_a_loopback_origin_gets_cors_preflights_and_headers_another_origin_does_not(http):
    preflight = await http.options(
        "/v1/bookings:reserve",
        headers={
            "Origin": "http://localhost:5173",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "http://localhost:5173"
    assert "authorization" in preflight.headers["access-control-allow-headers"]
    read = await http.get("/v1/events:search", headers={"Origin": "http://127.0.0.1:9999"})
    assert read.headers["access-control-allow-origin"] == "http://127.0.0.1:9999"
    assert "retry-after" in read.headers["access-control-expose-headers"]
    unauthorized = await http.post("/v1/bookings:reserve", json={}, headers={"Origin": "http://localhost:5173"})
    assert unauthorized.status_code == 401
    assert unauthorized.headers["access-control-allow-origin"] == "http://localhost:5173"  # errors are readable
    foreign = await http.get("/v1/events:search", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in foreign.headers


async def _first_sse_frame(client: httpx.AsyncClient, url: str) -> tuple[int, dict]:
    async with client.stream("GET", url, headers={"Accept": "text/event-stream"}) as response:
        if response.status_code != 200:
            return response.status_code, json.loads(await response.aread())
        buffer = ""
        async for chunk in response.aiter_text():
            buffer += chunk
            # The first complete frame with data (the seat watch starts with a retry: frame, and names its events).
            for frame in buffer.split("\n\n")[:-1]:
                for line in frame.split("\n"):
                    if line.startswith("data: "):
                        return 200, json.loads(line.removeprefix("data: "))
    raise AssertionError(f"the stream ended without data: {buffer!r}")


async def test_a_stream_token_opens_the_fans_queue_watch_and_nothing_else(mesh: Mesh, http, db, edge_url, redis_url):
    await forget_catalog(redis_url)  # event ids are reused between tests; an earlier test may have found none
    event = await create_event(db, queue_enabled=True)
    fan, other = issue_token(mesh.var_dir, "stream-fan"), issue_token(mesh.var_dir, "stream-other")
    minted = await http.post("/v1/streamTokens", headers=_bearer(fan), json={})
    assert minted.status_code == 200, minted.text
    stream_token = minted.json()["token"]
    claims = jwt.decode(stream_token, options={"verify_signature": False})
    assert claims["aud"] == "tix-streams"
    assert claims["sub"] == "stream-fan"
    assert 0 < claims["exp"] - time.time() <= 300
    ticket = (await http.post(f"/v1/events/{event.event_id}/queue:join", headers=_bearer(fan), json={})).json()
    watch = f"/v1/events/{event.event_id}/queue/{ticket['ticketId']}:watch"

    async with httpx.AsyncClient(base_url=edge_url, timeout=10) as client:
        status, first = await _first_sse_frame(client, f"{watch}?access_token={stream_token}")
        assert status == 200, first
        assert first["ticketId"] == ticket["ticketId"]
        # Without a token, with a broken one, or with a fan's long-lived token in the URL: 401.
        assert (await _first_sse_frame(client, watch))[0] == 401
        assert (await _first_sse_frame(client, f"{watch}?access_token=abc.def.ghi"))[0] == 401
        assert (await _first_sse_frame(client, f"{watch}?access_token={fan}"))[0] == 401
        # Another fan's stream token does not reveal this ticket.
        other_token = (await client.post("/v1/streamTokens", headers=_bearer(other), json={})).json()["token"]
        assert (await _first_sse_frame(client, f"{watch}?access_token={other_token}"))[0] == 404
        # Seat watches are public and ignore the parameter.
        assert (await _first_sse_frame(client, f"/v1/events/{event.event_id}/seats:watch?access_token=x"))[0] == 200
    # A stream token is no bearer token for anything else.
    join = await http.post(f"/v1/events/{event.event_id}/queue:join", headers=_bearer(stream_token), json={})
    assert join.status_code == 401
    # It never lands in the access log.
    logged = access_log_entries(mesh, f"{watch}?access_token=REDACTED")
    assert logged
    assert stream_token not in (mesh.log_dir / "envoy.log").read_text()


# --- the document -------------------------------------------------------------------------------------------------


async def test_the_edge_serves_the_openapi_document_and_its_reference_page(http):
    document = await http.get("/openapi.json")
    assert document.status_code == 200
    assert document.headers["content-type"] == "application/json"
    assert document.json() == json.loads((REPO_ROOT / "gen" / "openapi.json").read_text())
    page = await http.get("/docs")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "/v1/bookings:reserve" in page.text
