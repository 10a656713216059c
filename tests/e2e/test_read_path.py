"""The on-sale read path through the real Envoy edge: seat maps and event pages with validators (304s), compressed
bodies, the full view of a stadium in pages, live seats as SSE with ids and heartbeats, resuming after a gap, and
reads that stay up when Redis is down."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import psycopg
import pytest
from google.protobuf import json_format

from tests.e2e.conftest import forget_catalog
from tests.factories import create_event
from tests.integration.test_event_service import set_seats
from tix.db import libpq_url
from tix.services import SERVICES
from tix_dev.catalog_layouts import stadium
from tix_dev.processes import RedisServer
from tix_dev.readiness import free_port
from tix_dev.seed import upsert_layouts
from tix_dev.up import Mesh, MeshPorts
from tixpb.v1 import event_pb2, event_pb2_grpc

pytestmark = pytest.mark.e2e

SSE = {"Accept": "text/event-stream"}


@pytest.fixture
async def sale_event(db, redis_url: str):
    """A small event on an empty catalog, Redis flushed (no map or page cached from an earlier test's event 1)."""
    import redis.asyncio as aioredis

    await forget_catalog(redis_url)
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    event = await create_event(db)
    yield event, client
    await client.aclose()


@pytest.fixture(scope="module")
async def stadium_layout(database_url: str, settings_env) -> str:
    layout = stadium()
    async with await psycopg.AsyncConnection.connect(libpq_url(database_url)) as conn:
        await upsert_layouts(conn, [layout], progress=False)
    return layout.layout_id


async def raw_body(client: httpx.AsyncClient, path: str, headers: dict[str, str]) -> tuple[httpx.Response, bytes]:
    """The response and its body exactly as it crossed the wire (not decoded)."""
    async with client.stream("GET", path, headers=headers) as response:
        return response, b"".join([part async for part in response.aiter_raw()])


async def sse_frames(response: httpx.Response) -> AsyncIterator[dict[str, Any]]:
    """Server-Sent Events as dicts (event, id, data, retry)."""
    buffer = ""
    async for text in response.aiter_text():
        buffer += text
        while "\n\n" in buffer:
            block, buffer = buffer.split("\n\n", 1)
            frame: dict[str, Any] = {}
            for line in block.splitlines():
                name, _, value = line.partition(": ")
                frame[name] = json.loads(value) if name == "data" else value
            yield frame


async def next_frame(frames: AsyncIterator[dict[str, Any]], kind: str | None = None, timeout: float = 10) -> dict:
    async def find() -> dict:
        async for frame in frames:
            if kind is None or frame.get("event") == kind:
                return frame
        raise AssertionError("the stream ended")

    return await asyncio.wait_for(find(), timeout)


# --- validators and compression ---------------------------------------------------------------------------------------


async def test_a_seat_map_revalidates_to_304_until_a_seat_changes(mesh: Mesh, http: httpx.AsyncClient, sale_event, db):
    event, redis = sale_event
    path = f"/v1/events/{event.event_id}/seats"
    first = await http.get(path)
    assert first.status_code == 200, first.text
    etag = first.headers["etag"]
    assert etag == f'W/"{first.json()["version"]}"'
    assert "max-age=" in first.headers["cache-control"]
    assert "stale-while-revalidate=" in first.headers["cache-control"]
    assert "Accept-Encoding" in first.headers["vary"]

    unchanged = await http.get(path, headers={"If-None-Match": etag})
    assert unchanged.status_code == 304
    assert unchanged.content == b""
    assert unchanged.headers["etag"] == etag

    version = await set_seats(db, event.event_id, ["S1-A-1"], "booked", redis=redis)
    deadline = time.monotonic() + 5
    while (changed := await http.get(path, headers={"If-None-Match": etag})).status_code == 304:
        assert time.monotonic() < deadline, "the map never changed"
        await asyncio.sleep(0.1)
    assert changed.status_code == 200
    assert changed.headers["etag"] == f'W/"{version}"'
    # Where a watch may start without downloading the map again: the last publication the map contains.
    assert changed.headers["tix-feed-position"] == str(version)
    assert changed.json()["sections"][0]["rows"][0]["statusCodes"].startswith("B")


async def test_an_event_page_is_the_transcoders_json_with_a_validator(mesh: Mesh, http: httpx.AsyncClient, sale_event):
    event, _ = sale_event
    response = await http.get(f"/v1/events/{event.event_id}")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    async with grpc.aio.insecure_channel(f"127.0.0.1:{mesh.ports.services['event']}") as channel:
        over_grpc = await event_pb2_grpc.EventServiceStub(channel).GetEvent(
            event_pb2.GetEventRequest(event_id=str(event.event_id)))
    assert response.json() == json_format.MessageToDict(over_grpc, always_print_fields_with_no_presence=True)
    again = await http.get(f"/v1/events/{event.event_id}", headers={"If-None-Match": response.headers["etag"]})
    assert again.status_code == 304


@pytest.mark.parametrize("encoding", ["br", "gzip"])
async def test_maps_and_pages_arrive_compressed(mesh: Mesh, http: httpx.AsyncClient, sale_event, encoding):
    event, _ = sale_event
    for path in (f"/v1/events/{event.event_id}/seats", f"/v1/events/{event.event_id}"):
        plain = await http.get(path, headers={"Accept-Encoding": "identity"})
        assert "content-encoding" not in plain.headers
        response, wire = await raw_body(http, path, {"Accept-Encoding": encoding})
        assert response.headers["content-encoding"] == encoding
        assert len(wire) < len(plain.content)
        decoded = await http.get(path, headers={"Accept-Encoding": encoding})
        assert decoded.json() == plain.json()


async def test_search_json_from_the_transcoder_is_compressed_at_the_edge(mesh: Mesh, http: httpx.AsyncClient,
                                                                         sale_event):
    response, _ = await raw_body(http, "/v1/events:search?query=test&pageSize=50", {"Accept-Encoding": "gzip"})
    assert response.status_code == 200
    if int(response.headers.get("content-length", "1000")) >= 256:
        assert response.headers.get("content-encoding") == "gzip"


async def test_a_70000_seat_stadium_map_is_under_40_kb_on_the_wire_mid_sale(
    mesh: Mesh, http: httpx.AsyncClient, sale_event, db, stadium_layout
):
    _, redis = sale_event
    event = await create_event(db, layout_id=stadium_layout)
    assert len(event.seat_ids) == 69_778
    # A third of the stadium sold in scattered blocks of two, as a sale leaves it.
    taken = [seat for index, seat in enumerate(event.seat_ids) if index % 6 in (1, 2)]
    await set_seats(db, event.event_id, taken, "booked", redis=redis)
    path = f"/v1/events/{event.event_id}/seats"
    for encoding, limit in (("br", 40_000), ("gzip", 40_000)):
        response, wire = await raw_body(http, path, {"Accept-Encoding": encoding})
        assert response.status_code == 200
        print(f"\n70,000-seat map mid-sale: {len(wire):,} bytes as {encoding}")
        assert len(wire) <= limit


# --- the full view --------------------------------------------------------------------------------------------------


async def test_the_full_view_of_a_stadium_comes_in_pages_of_whole_sections(
    mesh: Mesh, http: httpx.AsyncClient, sale_event, db, stadium_layout
):
    event = await create_event(db, layout_id=stadium_layout)
    path = f"/v1/events/{event.event_id}/seats"
    pages, token, seats = 0, "", 0
    sections: list[str] = []
    while True:
        params = {"view": "SEAT_MAP_VIEW_FULL"} | ({"pageToken": token} if token else {})
        response = await http.get(path, params=params)
        assert response.status_code == 200, response.text
        page = response.json()
        page_seats = sum(len(row["seats"]) for section in page["sections"] for row in section["rows"])
        assert 0 < page_seats <= 5_000
        seats += page_seats
        sections += [section["sectionId"] for section in page["sections"]]
        pages += 1
        token = page["nextPageToken"]
        if not token:
            break
    assert seats == 69_778
    assert len(sections) == len(set(sections)) == 120
    assert pages >= 14
    one = await http.get(path, params={"view": "SEAT_MAP_VIEW_FULL", "sectionId": sections[0]})
    assert one.status_code == 200
    assert [s["sectionId"] for s in one.json()["sections"]] == [sections[0]]
    assert one.json()["sections"][0]["rows"][0]["seats"][0]["x"] != 0


async def test_a_bad_page_token_is_a_400_not_a_500(mesh: Mesh, http: httpx.AsyncClient, sale_event):
    event, _ = sale_event
    response = await http.get(f"/v1/events/{event.event_id}/seats",
                              params={"view": "SEAT_MAP_VIEW_FULL", "pageToken": "garbage"})
    assert response.status_code == 400
    assert response.json()["details"][0]["reason"] == "INVALID_PAGE_TOKEN"
    unknown = await http.get(f"/v1/events/{event.event_id}/seats", params={"colour": "red"})
    assert unknown.status_code == 400


async def test_a_layouts_geometry_is_cached_for_long(mesh: Mesh, http: httpx.AsyncClient, sale_event):
    event, _ = sale_event
    page = (await http.get(f"/v1/events/{event.event_id}")).json()
    layout_id = page["venue"]["layoutId"]
    response = await http.get(f"/v1/layouts/{layout_id}")
    assert response.status_code == 200, response.text
    assert "max-age=86400" in response.headers["cache-control"]
    layout = response.json()
    row = layout["sections"][0]["rows"][0]
    assert len(row["xs"]) == len(row["ys"]) == 10
    assert (await http.get(f"/v1/layouts/{layout_id}", headers={"If-None-Match": response.headers["etag"]})
            ).status_code == 304
    assert (await http.get("/v1/layouts/no-such-layout")).status_code == 404


# --- live seats -----------------------------------------------------------------------------------------------------


async def test_a_seat_watch_is_server_sent_events_with_ids_and_heartbeats(mesh: Mesh, edge_url: str, sale_event, db):
    event, redis = sale_event
    async with (
        httpx.AsyncClient(base_url=edge_url, timeout=15) as client,
        client.stream("GET", f"/v1/events/{event.event_id}/seats:watch", headers=SSE) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        frames = sse_frames(response)
        assert "retry" in await next_frame(frames)
        snapshot = await next_frame(frames, "snapshot")
        assert snapshot["data"]["snapshot"]["eventId"] == str(event.event_id)
        assert snapshot["id"] == snapshot["data"]["version"]
        # The e2e mesh beats every second (TIX_WATCH_HEARTBEAT_SECONDS).
        heartbeat = await next_frame(frames, "heartbeat", timeout=5)
        assert "id" not in heartbeat
        version = await set_seats(db, event.event_id, ["S1-B-2"], "reserved", redis=redis)
        change = await next_frame(frames, "changes")
        assert change["id"] == str(version)
        assert change["data"]["changes"]["changes"] == [{"seatId": "S1-B-2", "status": "SEAT_STATUS_RESERVED"}]


async def test_a_seat_watch_is_ndjson_for_other_clients(mesh: Mesh, edge_url: str, sale_event):
    event, _ = sale_event
    async with (
        httpx.AsyncClient(base_url=edge_url, timeout=10) as client,
        client.stream("GET", f"/v1/events/{event.event_id}/seats:watch") as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/x-ndjson"
        buffer = ""
        async for text in response.aiter_text():
            buffer += text
            if buffer.count("\n") >= 2:
                break
    first, second = (json.loads(line) for line in buffer.splitlines()[:2])
    assert first["snapshot"]["eventId"] == str(event.event_id)
    assert "heartbeat" in second


async def test_a_watcher_reconnecting_after_a_gap_gets_only_the_changes_it_missed(
    mesh: Mesh, edge_url: str, sale_event, db
):
    event, redis = sale_event
    async with httpx.AsyncClient(base_url=edge_url, timeout=15) as client:
        async with client.stream("GET", f"/v1/events/{event.event_id}/seats:watch", headers=SSE) as response:
            frames = sse_frames(response)
            last_id = (await next_frame(frames, "snapshot"))["id"]
        missed = [await set_seats(db, event.event_id, [f"S2-C-{n}"], "booked", redis=redis) for n in (1, 2, 3)]
        await asyncio.sleep(0.3)
        async with client.stream("GET", f"/v1/events/{event.event_id}/seats:watch",
                                 headers=SSE | {"Last-Event-ID": last_id}) as response:
            frames = sse_frames(response)
            seen = []
            while len(seen) < 3:
                frame = await next_frame(frames)
                assert frame.get("event") != "snapshot", "a resume within the log must not download the map"
                if frame.get("event") == "changes":
                    seen.append(int(frame["id"]))
            assert seen == missed
        # Too far back for the log: the stream starts from the map again.
        async with client.stream("GET", f"/v1/events/{event.event_id}/seats:watch",
                                 params={"sinceVersion": "1"}, headers=SSE) as response:
            assert (await next_frame(sse_frames(response), "snapshot"))["data"]["snapshot"]


class _RawWatch:
    """One SSE watch on a plain socket (hundreds of them stay cheap): the ids it saw and whether a map came."""

    def __init__(self) -> None:
        self.ids: list[int] = []
        self.snapshots = 0
        self.status = 0
        self._writer: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task | None = None
        self._seen = asyncio.Event()

    async def open(self, edge_url: str, path: str, last_id: int | None = None) -> None:
        host, port = edge_url.removeprefix("http://").split(":")
        reader, self._writer = await asyncio.open_connection(host, int(port))
        resume = f"Last-Event-ID: {last_id}\r\n" if last_id is not None else ""
        self._writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept: text/event-stream\r\n{resume}\r\n".encode())
        self._reader_task = asyncio.create_task(self._read(reader))

    async def _read(self, reader: asyncio.StreamReader) -> None:
        buffer = b""
        while data := await reader.read(65536):
            buffer += data
            if not self.status and b"\r\n" in buffer:
                self.status = int(buffer.split(b" ", 2)[1])
            *blocks, buffer = buffer.split(b"\n\n")
            for block in blocks:
                lines = block.split(b"\n")
                if b"event: snapshot" in lines:
                    self.snapshots += 1
                self.ids += [int(line[4:]) for line in lines if line.startswith(b"id: ")]
                self._seen.set()

    async def wait_for_ids(self, count: int, timeout: float = 30) -> None:
        async def enough() -> None:
            while len(self.ids) < count:
                self._seen.clear()
                await self._seen.wait()

        await asyncio.wait_for(enough(), timeout)

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.transport.abort()
        if self._reader_task is not None:
            self._reader_task.cancel()
            await asyncio.gather(self._reader_task, return_exceptions=True)


async def test_hundreds_of_watchers_cut_off_at_once_resume_with_last_event_id_without_a_map(
    mesh: Mesh, edge_url: str, sale_event, db
):
    """Every watcher loses its connection at once (an edge restart), changes go on, and all come back at once with
    Last-Event-ID: each gets exactly the changes it missed and nobody downloads the map again."""
    event, redis = sale_event
    path = f"/v1/events/{event.event_id}/seats:watch"
    first = await set_seats(db, event.event_id, ["S1-A-1"], "reserved", redis=redis)
    watches = [_RawWatch() for _ in range(300)]
    try:
        await asyncio.gather(*(watch.open(edge_url, path, first) for watch in watches))
        change = await set_seats(db, event.event_id, ["S1-A-2"], "reserved", redis=redis)
        await asyncio.gather(*(watch.wait_for_ids(1) for watch in watches))
        assert {tuple(watch.ids) for watch in watches} == {(change,)}
        for watch in watches:
            await watch.close()
        missed = [await set_seats(db, event.event_id, [f"S2-D-{n}"], "booked", redis=redis) for n in (1, 2, 3)]
        back = [_RawWatch() for _ in watches]
        watches += back
        await asyncio.gather(*(watch.open(edge_url, path, change) for watch in back))
        await asyncio.gather(*(watch.wait_for_ids(3) for watch in back))
        assert {watch.status for watch in back} == {200}
        assert {tuple(watch.ids) for watch in back} == {tuple(missed)}
        assert sum(watch.snapshots for watch in back) == 0
    finally:
        await asyncio.gather(*(watch.close() for watch in watches))


async def test_a_watch_of_an_unknown_event_is_a_json_404(mesh: Mesh, http: httpx.AsyncClient, sale_event):
    response = await http.get("/v1/events/987654/seats:watch", headers=SSE)
    assert response.status_code == 404
    assert response.json()["details"][0]["reason"] == "EVENT_NOT_FOUND"
    bad = await http.get("/v1/events/1/seats:watch", headers=SSE | {"Last-Event-ID": "yesterday"})
    assert bad.status_code == 400


# --- Redis down ---------------------------------------------------------------------------------------------------


@pytest.fixture
def event_mesh_with_own_redis(settings_env: dict[str, str], tmp_path: Path):
    """The event service and the edge alone, on a redis-server of their own that the test may stop."""
    node = RedisServer().start()
    ports = MeshPorts(
        edge=free_port(), admin=free_port(), stripe=free_port(),
        services={name: free_port() for name in SERVICES}, metrics=dict.fromkeys(SERVICES, 0),
        http={"event": free_port()},
    )
    env = {**settings_env, "TIX_REDIS_URL": node.url, "TIX_DB_POOL_SIZE": "2", "TIX_DB_MAX_OVERFLOW": "2",
           "TIX_GRACE_SECONDS": "1", "TIX_DEGRADED_CACHE_SECONDS": "0.5"}
    running = Mesh(var_dir=tmp_path / "var", ports=ports, env=env, services=("event",), with_localstripe=False)
    running.start()
    try:
        running.wait_ready(timeout=60)
        yield running, node
    finally:
        running.stop(grace=5)
        node.stop()


async def test_maps_and_pages_are_served_from_postgresql_while_redis_is_down(event_mesh_with_own_redis, db):
    running, node = event_mesh_with_own_redis
    event = await create_event(db)
    async with httpx.AsyncClient(base_url=running.edge_url, timeout=15) as client:
        assert (await client.get(f"/v1/events/{event.event_id}")).status_code == 200
        node.stop()
        version = await set_seats(db, event.event_id, ["S1-A-1", "S1-A-2"], "booked")
        await asyncio.sleep(0.6)  # longer than the degraded cache life
        page = await client.get(f"/v1/events/{event.event_id}")
        assert page.status_code == 200, page.text
        seats = await client.get(f"/v1/events/{event.event_id}/seats", headers={"Accept-Encoding": "gzip"})
        assert seats.status_code == 200, seats.text
        assert seats.headers["etag"] == f'W/"{version}"'
        assert seats.json()["sections"][0]["rows"][0]["statusCodes"].startswith("BB")
        assert page.json()["availableCount"] == 98
        assert (await client.get(f"/v1/events/{event.event_id}/seats",
                                 headers={"If-None-Match": seats.headers["etag"]})).status_code == 304
        watch = await client.get(f"/v1/events/{event.event_id}/seats:watch", headers=SSE)
        assert watch.status_code == 503
        assert watch.json()["details"][0]["reason"] == "SEAT_FEED_UNAVAILABLE"
