"""The public REST contract through the real Envoy edge: routing derived from the descriptor set, identity, error
bodies and streams, against the services running as processes."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import uuid
from collections import defaultdict

import httpx
import pytest

from tests.e2e.conftest import access_log_entries
from tix.services import EDGE_SERVICES
from tix_dev.edge import DESCRIPTOR_PATH, http_routes, render_config
from tix_dev.tokens import dev_stream_jwks_path
from tix_dev.up import Mesh, envoy_binary

pytestmark = pytest.mark.e2e

ROUTE_NOT_FOUND = "ROUTE_NOT_FOUND"
UNIMPLEMENTED = 12


def _error_info(body: dict) -> dict:
    infos = [d for d in body.get("details", []) if d.get("@type") == "type.googleapis.com/google.rpc.ErrorInfo"]
    assert infos, body
    return infos[0]


def _reached_service(response: httpx.Response) -> bool:
    # Envoy adds this header only to answers that came back from an upstream, never to its own local replies.
    return "x-envoy-upstream-service-time" in response.headers


def test_rendered_configs_pass_envoy_validation(mesh: Mesh, tmp_path):
    local = subprocess.run(
        [envoy_binary(), "--mode", "validate", "-c", str(mesh.envoy_config_path)], capture_output=True, text=True
    )
    assert local.returncode == 0, local.stderr[-2000:]

    # The k8s rendering names files mounted in the pod; point them at local copies to validate everything else.
    mounted = {
        "/etc/tix/descriptor/tix.pb": DESCRIPTOR_PATH,
        "/etc/tix/jwks/jwks.json": mesh.var_dir / "jwks.json",
        "/etc/tix/stream-jwks/jwks.json": dev_stream_jwks_path(mesh.var_dir),
        "/etc/tix/openapi/": DESCRIPTOR_PATH.parent,
        # The web app's build committed beside the k8s edge configuration (the edge-web ConfigMap).
        "/etc/tix/web/": DESCRIPTOR_PATH.parent.parent / "k8s" / "base" / "edge" / "web",
    }
    k8s = render_config("k8s")
    for mount, local in mounted.items():
        k8s = k8s.replace(mount, f"{local}/" if mount.endswith("/") else str(local))
    k8s_file = tmp_path / "k8s.yaml"
    k8s_file.write_text(k8s)
    checked = subprocess.run([envoy_binary(), "--mode", "validate", "-c", str(k8s_file)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr[-2000:]


async def test_every_http_route_in_the_descriptor_reaches_its_service(mesh: Mesh, http: httpx.AsyncClient, token):
    answers: dict[str, list[tuple[str, int, bool, int | None]]] = defaultdict(list)
    for route in http_routes():
        path = re.sub(r"\{[^}]+\}", "1", route.path)
        headers = {"Authorization": f"Bearer {token}"}
        kwargs = {"json": {}} if route.verb in ("POST", "PUT", "PATCH") else {}
        async with http.stream(route.verb, path, headers=headers, **kwargs) as response:
            # A stream stays open: its status line and headers say who answered. Unary errors carry a Status body.
            grpc_code = None
            if not route.server_streaming and response.status_code >= 400:
                grpc_code = json.loads(await response.aread()).get("code")
            answers[route.service].append(
                (f"{route.verb} {path}", response.status_code, _reached_service(response), grpc_code)
            )

    short = {f"tix.v1.{name.capitalize()}Service": name for name in EDGE_SERVICES}
    assert set(answers) == set(short), "every service of the registry publishes REST routes"
    for service, results in answers.items():
        assert all(reached for _, _, reached, _ in results), f"{service}: not every route reached it: {results}"
        # Every service is built: none may leave a route unimplemented.
        unimplemented = [result for result in results if result[1] == 501 or result[3] == UNIMPLEMENTED]
        assert not unimplemented, f"{service} leaves routes unimplemented: {unimplemented}"


async def test_unknown_path_is_a_json_404(http: httpx.AsyncClient):
    response = await http.get("/v1/nothing-here")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["code"] == 5
    assert _error_info(body) == {
        "@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": ROUTE_NOT_FOUND, "domain": "tix.dev"
    }


async def test_unknown_query_parameter_is_a_json_400(http: httpx.AsyncClient):
    response = await http.get("/v1/events:search", params={"querry": "rock"})
    assert response.status_code == 400
    assert response.json()["code"] == 3


async def test_booking_without_a_token_is_401_with_a_json_status(http: httpx.AsyncClient):
    response = await http.post("/v1/bookings:reserve", json={"eventId": "1", "seatIds": ["S1-A-1"]})
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["code"] == 16
    assert _error_info(body)["reason"] == "UNAUTHENTICATED"


async def test_token_signed_by_another_key_is_401(http: httpx.AsyncClient, tmp_path):
    from tix_dev.tokens import issue_token

    forged = issue_token(tmp_path, "mallory")
    response = await http.get("/v1/bookings/b-1", headers={"Authorization": f"Bearer {forged}"})
    assert response.status_code == 401
    assert response.json()["code"] == 16


async def test_forged_user_header_without_a_token_is_rejected(http: httpx.AsyncClient):
    response = await http.get("/v1/bookings/b-1", headers={"x-user-id": "mallory"})
    assert response.status_code == 401
    assert response.json()["code"] == 16


async def test_booking_with_a_token_reaches_the_booking_service(mesh: Mesh, http: httpx.AsyncClient, token):
    response = await http.get(f"/v1/bookings/{uuid.uuid4()}", headers={"Authorization": f"Bearer {token}"})
    assert response.headers["content-type"].startswith("application/json")
    assert _reached_service(response), response.text
    assert response.status_code in (404, 403, 400), response.text


async def test_services_see_the_verified_user_and_never_a_client_sent_one(
    mesh: Mesh, http: httpx.AsyncClient, token
):
    # The access log records the x-user-id header as the edge forwarded it upstream.
    anonymous_path = f"/v1/events/{900_000_000 + uuid.uuid4().int % 1000}"
    await http.get(anonymous_path, headers={"x-user-id": "mallory"})
    signed_path = f"/v1/events/{910_000_000 + uuid.uuid4().int % 1000}"
    await http.get(signed_path, headers={"x-user-id": "mallory", "Authorization": f"Bearer {token}"})

    [anonymous] = access_log_entries(mesh, anonymous_path)
    assert anonymous["user"] is None
    [signed] = access_log_entries(mesh, signed_path)
    assert signed["user"] == "e2e-alice"


async def test_malformed_json_body_is_a_json_400(http: httpx.AsyncClient, token):
    response = await http.post(
        "/v1/bookings:reserve",
        content=b'{"eventId": "1", "seatIds": [',
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == 3
    assert _error_info(body)["reason"] == "INVALID_REQUEST"


async def test_get_event_returns_the_event_as_json(mesh: Mesh, http: httpx.AsyncClient, catalog_event):
    response = await http.get(f"/v1/events/{catalog_event.event_id}")
    assert response.status_code == 200, response.text
    event = response.json()
    assert event["eventId"] == str(catalog_event.event_id)
    assert event["name"] == "The Test Band Live"
    assert event["venue"]["city"] == "Chicago"
    # Proto3 JSON mapping with defaults printed and enums as names.
    assert isinstance(event["saleStatus"], str)
    assert "maxSeatsPerUser" in event


async def test_malformed_event_id_is_a_400_status_with_error_info(mesh: Mesh, http: httpx.AsyncClient):
    response = await http.get("/v1/events/abc")
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["code"] == 3
    info = _error_info(body)
    assert info["domain"] == "tix.dev"
    assert re.fullmatch(r"[A-Z][A-Z0-9_]+", info["reason"])


async def test_seat_watch_streams_server_sent_events(mesh: Mesh, edge_url: str, catalog_event):
    async with httpx.AsyncClient(base_url=edge_url, timeout=10) as client, client.stream(
        "GET", f"/v1/events/{catalog_event.event_id}/seats:watch", headers={"Accept": "text/event-stream"}
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        buffer = ""
        async for chunk in response.aiter_text():
            buffer += chunk
            if "event: snapshot" in buffer and buffer.count("\n\n") >= 2:
                break
    # retry: (how long an EventSource waits to reconnect), then the snapshot with its id.
    retry, frame = buffer.split("\n\n")[:2]
    assert retry.startswith("retry: ")
    event, ident, data = frame.split("\n")
    assert event == "event: snapshot"
    assert ident.startswith("id: ")
    first = json.loads(data.removeprefix("data: "))
    assert first["snapshot"]["eventId"] == str(catalog_event.event_id)


async def test_seat_watch_streams_newline_delimited_json_to_other_clients(
    mesh: Mesh, edge_url: str, catalog_event
):
    async with (
        httpx.AsyncClient(base_url=edge_url, timeout=10) as client,
        client.stream("GET", f"/v1/events/{catalog_event.event_id}/seats:watch") as response,
    ):
            assert response.status_code == 200
            assert response.headers["content-type"] == "application/x-ndjson"
            buffer = ""
            async for chunk in response.aiter_text():
                buffer += chunk
                if "\n" in buffer:
                    break
    first = json.loads(buffer.split("\n", 1)[0])
    assert first["snapshot"]["eventId"] == str(catalog_event.event_id)


async def test_fifteen_hundred_fans_can_watch_one_seat_map_through_the_edge_at_once(
    mesh: Mesh, edge_url: str, catalog_event
):
    """Every open stream is a request in flight at the edge: Envoy's default cluster limit (1,024) would turn the
    1,025th watcher into a 503. The edge is sized for a stampede of watchers."""
    import aiohttp

    watchers = 1500
    url = f"{edge_url}/v1/events/{catalog_event.event_id}/seats:watch"
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=90)) as session:
        opened = asyncio.Event()
        responses: list[aiohttp.ClientResponse] = []

        async def watch() -> int:
            response = await session.get(url, headers={"Accept": "text/event-stream"})
            responses.append(response)
            if response.status == 200:
                await response.content.readline()  # the snapshot's first line
            if len(responses) == watchers:
                opened.set()
            await opened.wait()  # hold every stream open until all have been answered
            return response.status

        statuses = await asyncio.gather(*(watch() for _ in range(watchers)))
        for response in responses:
            response.close()
    assert statuses.count(200) == watchers, {s: statuses.count(s) for s in set(statuses)}
