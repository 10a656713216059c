"""The event service's HTTP listener: the public reads the edge routes here instead of through its gRPC
transcoder, because the transcoder can neither answer 304 nor pass precompressed bytes on, nor write the ``id:`` and
heartbeats of Server-Sent Events.

It runs in the service process beside the ``grpc.aio`` server (same settings, stores, caches, seat hub, metrics and
drain), is as thin as the servicer (parse, call the use case, render) and answers in the same proto3 JSON mapping,
with the same ``google.rpc.Status`` error bodies, as the transcoded routes:

- ``GET /v1/events/{event_id}`` — the event page;
- ``GET /v1/events/{event_id}/seats`` — the seat map (``sectionId``, ``view``, ``pageSize``, ``pageToken``);
- ``GET /v1/layouts/{layout_id}`` — a venue layout's drawing geometry;
- ``GET /v1/events/{event_id}/seats:watch`` — live seats as SSE (``Accept: text/event-stream``) or NDJSON, resuming
  after ``Last-Event-ID`` or ``sinceVersion``;
- ``GET /healthz`` — 200 while serving, 503 once the process drains (the edge's health check).

Maps, pages and layouts are rendered and compressed once per change (``read_cache``), carry an ``ETag``
(``If-None-Match`` → 304) and a ``Cache-Control`` a CDN can use.
"""

from __future__ import annotations

import asyncio
import functools
import re
import time
import urllib.parse
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from aiohttp import web
from cachetools import LRUCache
from google.rpc import code_pb2
from prometheus_client import Counter, Histogram

from event_svc.domain import MAX_SECTIONS_PER_PAGE, EventClock, EventViewing, MapSnapshot, SeatMapView
from event_svc.read_cache import RepresentationCache
from event_svc.representations import (
    Representation,
    cache_control,
    content_etag,
    encode,
    etag_matches,
    json_dumps,
    map_etag,
    negotiate,
    proto_json,
)
from event_svc.seat_hub import SEAT_WATCH_STARTS, FeedBatch, FeedItem, SeatHub
from event_svc.servicer import render_event, render_seat_layout, render_seat_map
from event_svc.settings import EventSettings
from event_svc.watch_frames import (
    StreamFormat,
    changes_frame,
    error_frame,
    heartbeat_frame,
    retry_frame,
    snapshot_frame,
)
from tix.errors import DomainError, InvalidArgument
from tix.identity import STREAM_TOKEN_PARAMETER
from tix.logs import get_logger
from tix.validation import TEXT_REASON, require_numeric_id, text_problem

log = get_logger("event_svc.http_api")

HTTP_REQUESTS = Counter("tix_http_requests_total", "HTTP requests answered, by route and status.", ["route", "status"])
HTTP_LATENCY = Histogram(
    "tix_http_request_seconds", "Time to answer an HTTP request (or to open a stream), by route.", ["route"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
WATCHERS_DROPPED = Counter("tix_seat_watchers_dropped_total", "HTTP seat watchers the server ended, by reason.",
                           ["reason"])

# gRPC code -> HTTP status, as the edge maps transcoded errors.
_HTTP_STATUS = {
    "INVALID_ARGUMENT": 400, "FAILED_PRECONDITION": 400, "OUT_OF_RANGE": 400, "UNAUTHENTICATED": 401,
    "PERMISSION_DENIED": 403, "NOT_FOUND": 404, "ALREADY_EXISTS": 409, "ABORTED": 409, "RESOURCE_EXHAUSTED": 429,
    "CANCELLED": 499, "UNIMPLEMENTED": 501, "UNAVAILABLE": 503, "DEADLINE_EXCEEDED": 504, "INTERNAL": 500,
}
_VIEWS = {"SEAT_MAP_VIEW_UNSPECIFIED": SeatMapView.COMPACT, "SEAT_MAP_VIEW_COMPACT": SeatMapView.COMPACT,
          "SEAT_MAP_VIEW_FULL": SeatMapView.FULL, "0": SeatMapView.COMPACT, "1": SeatMapView.COMPACT,
          "2": SeatMapView.FULL}
SSE_ACCEPT = "text/event-stream"


def status_body(code: str, reason: str, message: str, *, metadata: Mapping[str, str] | None = None,
                field_violations: Mapping[str, str] | None = None) -> bytes:
    """A google.rpc.Status in JSON, as the edge's transcoder writes gRPC errors."""
    details: list[dict] = [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": reason,
                            "domain": "tix.dev", "metadata": dict(metadata or {})}]
    if field_violations:
        details.append({"@type": "type.googleapis.com/google.rpc.BadRequest", "fieldViolations": [
            {"field": name, "description": problem} for name, problem in field_violations.items()]})
    return json_dumps({"code": code_pb2.Code.Value(code), "message": message, "details": details})


def error_response(error: DomainError) -> web.Response:
    body = status_body(error.code.value, error.reason, error.message, metadata=error.metadata,
                       field_violations=error.field_violations)
    return web.Response(status=_HTTP_STATUS.get(error.code.value, 500), body=body,
                        headers={"Content-Type": "application/json", "Cache-Control": "no-store"})


@dataclass(frozen=True)
class CachePolicy:
    max_age: int
    stale_while_revalidate: int = 0

    @property
    def header(self) -> str:
        return cache_control(self.max_age, self.stale_while_revalidate)


# On seat maps: the feed position the map contains (a watch opened with ``sinceVersion`` set to it needs no map).
FEED_POSITION_HEADER = "Tix-Feed-Position"


def represent(request: web.Request, representation: Representation, policy: CachePolicy) -> web.Response:
    """The answer in the encoding the client prefers, or 304 when its copy is current."""
    headers = {"ETag": representation.etag, "Cache-Control": policy.header, "Vary": "Accept-Encoding"}
    if representation.version is not None and representation.position is not None:
        headers[FEED_POSITION_HEADER] = str(representation.position)
    if etag_matches(request.headers.get("If-None-Match"), representation.etag):
        return web.Response(status=304, headers=headers)
    encoding = negotiate(request.headers.get("Accept-Encoding"))
    if encoding != "identity":
        headers["Content-Encoding"] = encoding
    headers["Content-Type"] = "application/json"
    return web.Response(body=representation.body(encoding), headers=headers)


def _query(request: web.Request, allowed: Mapping[str, str]) -> dict[str, str]:
    """Query parameters by field name (``sectionId`` and ``section_id`` alike); unknown ones are refused, as the
    transcoder refuses them, and every value, like the path's, passes the runtime's one check of request text
    (tix.validation: the gRPC server runs the same check before its handlers)."""
    for name, value in request.match_info.items():
        if _UNDECODED.search(value):  # the router leaves a percent-escape that is not UTF-8 as it came
            raise InvalidArgument(name, "is not valid UTF-8", reason=TEXT_REASON)
        _check_text(name, value)
    try:
        urllib.parse.parse_qsl(request.query_string, keep_blank_values=True, errors="strict")
    except UnicodeDecodeError:
        raise InvalidArgument(_undecodable_parameter(request.query_string), "is not valid UTF-8",
                              reason=TEXT_REASON) from None
    out: dict[str, str] = {}
    for name, value in request.query.items():
        _check_text(name, name)
        field = allowed.get(name)
        if field is None:
            raise InvalidArgument(name[:40], "unknown query parameter", "UNKNOWN_QUERY_PARAMETER")
        _check_text(field, value)
        out[field] = value
    return out


_UNDECODED = re.compile(r"%[0-9A-Fa-f]{2}")


def _undecodable_parameter(query_string: str) -> str:
    """The field named by the first query parameter whose bytes are not UTF-8 (its camelCase name mapped back)."""
    for pair in query_string.split("&"):
        name, _, value = pair.partition("=")
        try:
            urllib.parse.unquote(value, errors="strict")
        except UnicodeDecodeError:
            plain = urllib.parse.unquote(name, errors="replace")
            return re.sub(r"(?<!^)([A-Z])", r"_\1", plain).lower()[:40] if text_problem(plain) is None else "query"
    return "query"


def _check_text(field: str, value: str) -> None:
    problem = text_problem(value)
    if problem is not None:
        raise InvalidArgument(field if text_problem(field) is None else "query", problem, reason=TEXT_REASON)


def _int(name: str, raw: str | None, default: int = 0) -> int:
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise InvalidArgument(name, "must be an integer") from None


class ReadApi:
    """The handlers (one short method per route) over the viewing use cases, the caches and the seat hub."""

    def __init__(
        self,
        viewing: EventViewing,
        cache: RepresentationCache,
        hub: SeatHub,
        settings: EventSettings,
        *,
        draining: asyncio.Event,
    ) -> None:
        self._viewing = viewing
        self._cache = cache
        self._hub = hub
        self._settings = settings
        self._draining = draining
        self._map_policy = CachePolicy(settings.seat_map_max_age_seconds,
                                       settings.seat_map_stale_while_revalidate_seconds)
        self._page_policy = CachePolicy(settings.event_page_max_age_seconds,
                                        settings.event_page_stale_while_revalidate_seconds)
        self._layout_policy = CachePolicy(settings.layout_max_age_seconds)
        self._layouts: LRUCache[str, Representation] = LRUCache(maxsize=max(4, settings.layout_cache_size))

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware], client_max_size=64 * 1024)
        app.router.add_get("/v1/events/{event_id}", self.event_page, name="event_page")
        app.router.add_get("/v1/events/{event_id}/seats", self.seat_map, name="seat_map")
        app.router.add_get("/v1/events/{event_id}/seats:watch", self.watch, name="seat_watch")
        app.router.add_get("/v1/layouts/{layout_id}", self.layout, name="layout")
        app.router.add_get("/healthz", self.health, name="health")
        return app

    @web.middleware
    async def _middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        started = time.perf_counter()
        route = request.match_info.route.name or "unknown"
        try:
            response = await handler(request)
        except DomainError as error:
            response = error_response(error)
        except web.HTTPException as error:
            reason = {404: "ROUTE_NOT_FOUND", 405: "METHOD_NOT_ALLOWED"}.get(error.status, "INVALID_REQUEST")
            code = "NOT_FOUND" if error.status == 404 else "INVALID_ARGUMENT"
            response = web.Response(status=error.status, body=status_body(code, reason, error.reason),
                                    headers={"Content-Type": "application/json"})
        except asyncio.CancelledError:
            raise
        except Exception as error:
            log.error("http_request_crashed", route=route, error=repr(error), exc_info=error)
            response = web.Response(status=500, body=status_body("INTERNAL", "INTERNAL", "internal error"),
                                    headers={"Content-Type": "application/json"})
        HTTP_REQUESTS.labels(route, str(response.status)).inc()
        HTTP_LATENCY.labels(route).observe(time.perf_counter() - started)
        return response

    # --- cacheable reads --------------------------------------------------------------------------------------------

    async def event_page(self, request: web.Request) -> web.StreamResponse:
        _query(request, {})
        event_id = require_numeric_id(request.match_info["event_id"], "event_id")

        async def build(clock: EventClock | None) -> Representation:
            page = await self._viewing.event_page(event_id)
            body = proto_json(render_event(page))
            until = page.valid_until(datetime.now(UTC))
            return encode(body, content_etag(body), clock=clock, expires_at=until.timestamp() if until else None)

        return represent(request, await self._cache.get(event_id, "page", build), self._page_policy)

    async def seat_map(self, request: web.Request) -> web.StreamResponse:
        query = _query(request, {"sectionId": "section_id", "section_id": "section_id", "view": "view",
                                 "pageSize": "page_size", "page_size": "page_size", "pageToken": "page_token",
                                 "page_token": "page_token"})
        event_id = require_numeric_id(request.match_info["event_id"], "event_id")
        view = _VIEWS.get(query.get("view", "0").upper())
        if view is None:
            raise InvalidArgument("view", f"unknown seat map view {query['view']!r}")
        section_id = query.get("section_id") or None
        page_size = min(_int("page_size", query.get("page_size")), MAX_SECTIONS_PER_PAGE)
        page_token = query.get("page_token", "")
        if view is SeatMapView.COMPACT:
            page_size, page_token = 0, ""
        variant = f"map:{view.value}:{section_id or ''}:{page_size}:{page_token}"
        return represent(request, await self.map_representation(event_id, variant, section_id, view, page_size,
                                                                page_token), self._map_policy)

    async def map_representation(
        self, event_id: int, variant: str, section_id: str | None = None, view: SeatMapView = SeatMapView.COMPACT,
        page_size: int = 0, page_token: str = "",
    ) -> Representation:
        async def build(clock: EventClock | None) -> Representation:
            source = await self._viewing.seat_map_source(
                event_id, section_id=section_id, view=view, page_size=page_size, page_token=page_token,
                not_before=self._viewing.mark_seats(),
            )

            def render() -> Representation:
                seat_map = source.build()
                body = proto_json(render_seat_map(seat_map))
                return encode(body, map_etag(seat_map.version, clock), clock=clock, version=seat_map.version)

            # Off the event loop: a stadium mid-sale takes a few hundred milliseconds of CPU to overlay, render and
            # compress, and the loop keeps answering from the cache and writing to watchers meanwhile (the
            # interpreter switches threads every few milliseconds; compression releases the lock altogether).
            return await asyncio.to_thread(render)

        return await self._cache.get(event_id, variant, build)

    async def layout(self, request: web.Request) -> web.StreamResponse:
        layout_id = request.match_info["layout_id"]
        _query(request, {})
        if not 0 < len(layout_id) <= 40:
            raise InvalidArgument("layout_id", "must be 1 to 40 characters")
        representation = self._layouts.get(layout_id)
        if representation is None:
            layout = await self._viewing.seat_layout(layout_id)
            body = proto_json(render_seat_layout(layout))
            representation = await asyncio.to_thread(encode, body, content_etag(body))
            self._layouts[layout_id] = representation
        return represent(request, representation, self._layout_policy)

    async def health(self, request: web.Request) -> web.StreamResponse:
        if self._draining.is_set():
            return web.Response(status=503, text="draining")
        return web.Response(text="serving")

    # --- live seats -------------------------------------------------------------------------------------------------

    async def watch(self, request: web.Request) -> web.StreamResponse:
        # A stream token (tix.identity) may ride along: the edge verified it before routing here; it is no input.
        query = _query(request, {"sinceVersion": "since_version", "since_version": "since_version",
                                 STREAM_TOKEN_PARAMETER: STREAM_TOKEN_PARAMETER})
        event_id = require_numeric_id(request.match_info["event_id"], "event_id")
        since = self._resume_point(request.headers.get("Last-Event-ID"), query.get("since_version"))
        fmt = StreamFormat.SSE if SSE_ACCEPT in request.headers.get("Accept", "") else StreamFormat.NDJSON
        await self._viewing.catalog_entry(event_id)  # an unknown event is a 404, before any stream starts
        transport = request.transport
        if transport is None:
            raise web.HTTPBadRequest(reason="connection closed")
        watcher = HttpWatcher(transport, fmt, max_buffer=self._settings.watch_max_buffer_bytes,
                              queue_limit=self._settings.watcher_queue_size)
        response = web.StreamResponse(headers={
            "Content-Type": fmt.content_type, "Cache-Control": "no-store", "X-Accel-Buffering": "no",
        })
        await self._hub.join(event_id, watcher)
        try:
            start = await self._start_frames(event_id, watcher, since)
            response.enable_chunked_encoding()
            await response.prepare(request)
            request.writer.send_headers()
            # Past this many unsent bytes the watcher is dropped (HttpWatcher.send), so a write never waits.
            transport.set_write_buffer_limits(high=self._settings.watch_max_buffer_bytes)
            if fmt is StreamFormat.SSE:
                watcher.write(retry_frame(self._settings.watch_retry_milliseconds))
            for frame in start:
                watcher.write(frame)
                await request.writer.drain()
            await self._serve(event_id, watcher, request)
        except ConnectionError:
            watcher.drop("CLOSED", "the connection closed")
        finally:
            self._hub.leave(event_id, watcher)
        if watcher.ended is not None and watcher.ended[0] != "CLOSED":
            # The connection is not reused after a stream the server ended; a reader that never takes the last
            # words is cut after a while.
            response.force_close()
            asyncio.get_running_loop().call_later(10, transport.abort)
        return response

    @staticmethod
    def _resume_point(last_event_id: str | None, since_version: str | None) -> int | None:
        # Last-Event-ID is the newer of the two: an EventSource reconnects to the same URL with the header added.
        for name, raw in (("Last-Event-ID", last_event_id), ("since_version", since_version)):
            if raw:
                position = _int(name, raw.strip())
                if position < 0:
                    raise InvalidArgument(name, "must not be negative")
                return position
        return None

    async def _start_frames(self, event_id: int, watcher: HttpWatcher, since: int | None) -> list[bytes]:
        """What a new stream begins with: the changes after ``since``, or a map and the changes after it. Called
        after joining the feed, so everything published from then on is in the watcher's buffer too."""
        fmt = watcher.fmt
        if since is not None:
            replay = await self._hub.resume(event_id, since)
            if replay is not None:
                watcher.started("resumed", since, replay)
                return [_changes(item, fmt) for item in replay]
        representation = await self.map_representation(event_id, "map:compact::0:")
        position = representation.position
        replay = await self._hub.resume(event_id, position) if position is not None else None
        if replay is not None and position is not None:
            frame = representation.derived.get(fmt.value)
            if frame is None:
                frame = representation.derived[fmt.value] = snapshot_frame(fmt, representation.identity, position)
            watcher.started("snapshot", position, replay)
            return [frame, *(_changes(item, fmt) for item in replay)]
        # The cached map is older than the log reaches (or the feed's store forgot the event): read one now.
        snapshot = await self._viewing.snapshot(event_id, not_before=self._viewing.mark())
        watcher.started("snapshot", None, [])
        return [_snapshot_frame(snapshot, fmt)]

    async def _serve(self, event_id: int, watcher: HttpWatcher, request: web.Request) -> None:
        """Pass on what the watcher buffered while it started, then let the hub write to it directly; send a
        heartbeat on a quiet stream; start again from a map when the hub asks; end with a reason when dropped."""
        heartbeat = self._hub.heartbeat_seconds
        while True:
            if watcher.ended is not None:
                reason, message = watcher.ended
                WATCHERS_DROPPED.labels(reason).inc()
                watcher.write(error_frame(watcher.fmt, code_pb2.UNAVAILABLE, reason, message), force=True)
                return
            if watcher.resync:
                watcher.resync = False
                watcher.pending.clear()
                snapshot = await self._viewing.snapshot(event_id, not_before=self._viewing.mark())
                watcher.write(_snapshot_frame(snapshot, watcher.fmt))
                watcher.last = None
                await request.writer.drain()
                continue
            if watcher.pending:
                watcher.send(watcher.pending.popleft())
                if watcher.buffered() > 256 * 1024:
                    await request.writer.drain()
                continue
            watcher.live = True
            watcher.wakeup.clear()
            quiet = time.monotonic() - watcher.last_write
            try:
                await asyncio.wait_for(watcher.wakeup.wait(), max(0.05, heartbeat - quiet))
            except TimeoutError:
                if time.monotonic() - watcher.last_write >= heartbeat * 0.95:
                    watcher.write(heartbeat_frame(watcher.fmt, watcher.last))


@functools.lru_cache(maxsize=16)
def _snapshot_frame(snapshot: MapSnapshot, fmt: StreamFormat) -> bytes:
    """A map read for watchers, rendered once for all who share the read."""
    position = snapshot.position if snapshot.position is not None else snapshot.seat_map.version
    return snapshot_frame(fmt, proto_json(render_seat_map(snapshot.seat_map)), position)


def _changes(item: FeedItem, fmt: StreamFormat) -> bytes:
    frame = item.frames.get(fmt)
    if frame is None:
        frame = item.frames[fmt] = changes_frame(fmt, item.message)
    return frame


def _batch_frames(batch: FeedBatch, fmt: StreamFormat) -> bytes:
    """A batch's frames, one after the other (each its own event with its own id), rendered once for everyone."""
    frames = batch.frames.get(fmt)
    if frames is None:
        frames = batch.frames[fmt] = b"".join(_changes(item, fmt) for item in batch.items)
    return frames


class HttpWatcher:
    """One HTTP seat watch as the hub sees it. Caught up (``live``), it is written to directly by the hub with
    frames shared by every watcher; otherwise changes wait in ``pending`` for its own task."""

    __slots__ = ("ended", "fmt", "last", "last_write", "limit", "live", "max_buffer", "pending", "replayed",
                 "resync", "transport", "wakeup")

    def __init__(self, transport: asyncio.Transport, fmt: StreamFormat, *, max_buffer: int, queue_limit: int) -> None:
        self.transport = transport
        self.fmt = fmt
        self.max_buffer = max_buffer
        self.limit = queue_limit
        self.live = False
        self.pending: deque[FeedItem] = deque()
        self.resync = False
        self.wakeup = asyncio.Event()
        # (reason, message) once the server decided to end the stream.
        self.ended: tuple[str, str] | None = None
        # The last version sent (None right after a map read on its own: nothing to check the next change against).
        self.last: int | None = None
        self.last_write = time.monotonic()
        # Versions the stream's start sent from the log or memory (see started).
        self.replayed: set[int] = set()

    def started(self, how: str, position: int | None, replay: list[FeedItem]) -> None:
        SEAT_WATCH_STARTS.labels(f"http_{how}").inc()
        self.last = replay[-1].version if replay else position
        sent = {item.version for item in replay}
        if sent:
            self.pending = deque(item for item in self.pending if item.version not in sent)
        # The hub may still offer some of these: a resume reads the log, which runs ahead of this process's pub/sub.
        self.replayed = sent

    # --- Sink, for the hub ------------------------------------------------------------------------------------------

    def offer(self, item: FeedItem) -> None:
        if self.replayed:
            if item.version in self.replayed:
                return  # sent with the replay
            self.replayed = set()  # publications come in order: nothing replayed follows a new one
        if self.live and not self.pending and item.prev == self.last:
            # The hot path, once per change and caught-up watcher: one write of bytes shared by all of them.
            frame = item.frames.get(self.fmt) or _changes(item, self.fmt)
            transport = self.transport
            if transport.get_write_buffer_size() + len(frame) <= self.max_buffer and not transport.is_closing():
                transport.write(frame)
                self.last = item.version
                self.last_write = item.received
                return
        if self.ended is not None or self.resync:
            return
        if self.live and not self.pending:
            self.send(item)
            return
        if len(self.pending) >= self.limit:
            self.drop("SLOW_READER", "the stream fell too far behind; reconnect to resume from your last id")
            return
        self.pending.append(item)
        self.wakeup.set()

    def offer_batch(self, batch: FeedBatch) -> None:
        if self.replayed:
            for item in batch.items:
                self.offer(item)
            return
        if self.live and not self.pending and batch.prev == self.last:
            # The hot path, once per batch and caught-up watcher: one write of bytes shared by all of them.
            frames = batch.frames.get(self.fmt) or _batch_frames(batch, self.fmt)
            transport = self.transport
            if transport.get_write_buffer_size() + len(frames) <= self.max_buffer and not transport.is_closing():
                transport.write(frames)
                self.last = batch.version
                self.last_write = batch.received
                return
        for item in batch.items:
            self.offer(item)

    def request_resync(self) -> None:
        self.live = False
        self.pending.clear()
        self.resync = True
        self.wakeup.set()

    # --- writing ----------------------------------------------------------------------------------------------------

    def send(self, item: FeedItem) -> None:
        if self.last is not None and item.prev != self.last:
            self.request_resync()  # a change this stream did not get: start again from a map
            return
        if self.write(_changes(item, self.fmt)):
            self.last = item.version

    def write(self, data: bytes, *, force: bool = False) -> bool:
        """Write without waiting; a reader this far behind is dropped instead (unless ``force``: the last words)."""
        if self.transport.is_closing():
            self.drop("CLOSED", "the connection closed")
            return False
        if force and self.ended is not None and self.ended[0] == "CLOSED":
            return False
        if not force and self.transport.get_write_buffer_size() + len(data) > self.max_buffer:
            self.drop("SLOW_READER", "the stream fell too far behind; reconnect to resume from your last id")
            return False
        self.transport.write(data)
        self.last_write = time.monotonic()
        return True

    def buffered(self) -> int:
        return self.transport.get_write_buffer_size()

    def drop(self, reason: str, message: str) -> None:
        if self.ended is None:
            self.ended = (reason, message)
            self.live = False
            self.wakeup.set()



async def start_http(api: ReadApi, host: str, port: int) -> web.AppRunner:
    """Serve ``api`` on ``host:port`` (SO_REUSEPORT, so worker processes share the port as gRPC does)."""
    # Request lines and headers as large as the edge lets through (4 KB URLs, 32 KB of headers), so a request the
    # edge accepts is never refused here (aiohttp's defaults are 8 KB each).
    runner = web.AppRunner(
        api.app(), access_log=None, handler_cancellation=True, shutdown_timeout=2.0,
        max_line_size=16 * 1024, max_field_size=64 * 1024,
    )
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_port=True, backlog=4096)
    await site.start()
    log.info("http_serving", host=host, port=port)
    return runner
