"""``python -m bench read``: the on-sale read path as fans use it, through the real Envoy edge.

Who and how many: fans opening the event page and the seat map of a 69,778-seat stadium a third sold, 32 and 256 at
a time, browsers revalidating the map they hold (``If-None-Match`` → 304), the same map while a sale changes seats
every 10 ms, and 5,000 open seat watches (SSE) while one seat changes every 100 ms, which then all lose their
connection for 5 s and come back at once with ``Last-Event-ID``. Each HTTP figure is printed beside an echo through
the same edge to the same process in the same run: ``GET /v1/events/not-a-number``, refused by the event service's
HTTP listener with a 400 before any store is touched (the floor any request to it pays).

HTTP load comes from ``wrk`` when it is installed (``apt-get install wrk``: a C client, so the load generator does
not eat the two cores the edge and the service share), else from an aiohttp client (its own CPU then shows in the
figures). The watchers are raw asyncio connections in two processes that only look for ``id:`` lines.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import random
import re
import shutil
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from bench.catalog import materialise_tickets
from bench.envoy_edge import BenchEdge, start_edge_for
from bench.load import percentile
from bench.report import Report, _fmt_rate, _ms, _ratio
from bench.stack import BenchStack
from tix import seatfeed

SALE_CHANGE_SECONDS = 0.010
WATCH_CHANGE_SECONDS = 0.100
RECONNECT_GAP_SECONDS = 5.0


@dataclass(frozen=True)
class ReadSize:
    connections: tuple[int, ...]
    seconds: float
    watchers: int
    watch_seconds: float
    layout: str  # catalog template: the stadium, or the club at toy size


def read_size(args: argparse.Namespace) -> ReadSize:
    if args.smoke:
        return ReadSize((8,), 1.0, 40, 1.5, "club")
    if args.quick:
        return ReadSize((32, 256), 3.0, 1_000, 5.0, "stadium")
    return ReadSize((32, 256), 8.0, args.watchers, 15.0, "stadium")


# --- the catalog ------------------------------------------------------------------------------------------------


@dataclass
class ReadEvent:
    event_id: int
    seat_ids: list[str]
    sections: dict[str, str]  # seat -> section


async def create_read_event(dsn: str, template: str) -> ReadEvent:
    """The demo catalog's template (the real 69,778-seat stadium) with one on-sale event, its tickets materialised
    and a third of its seats sold in scattered pairs, as a sale in progress leaves a map."""
    from tix_dev.catalog_layouts import build_layouts
    from tix_dev.seed import upsert_layouts

    layout = next(layout for layout in build_layouts() if layout.kind == template)
    async with await psycopg.AsyncConnection.connect(dsn) as conn:
        await upsert_layouts(conn, [layout], progress=False)
        venue_id = (await (await conn.execute(
            "INSERT INTO venues (name, city, region, country_code, latitude, longitude, time_zone, layout_id,"
            " capacity) VALUES ('Bench Stadium', 'Chicago', 'IL', 'US', 41.86, -87.62, 'America/Chicago', %s, %s)"
            " RETURNING venue_id", (layout.layout_id, layout.capacity))).fetchone())[0]
        performer_id = (await (await conn.execute(
            "INSERT INTO performers (name, category, genre) VALUES ('The Bench Band', 1, 'rock')"
            " RETURNING performer_id")).fetchone())[0]
        event_id = (await (await conn.execute(
            "INSERT INTO events (name, description, category, venue_id, performer_id, starts_at, ends_at,"
            " sale_starts_at, currency, tier_prices, max_seats_per_user, queue_enabled)"
            " VALUES ('Read Bench Live', 'read path benchmark', 1, %s, %s, now() + interval '30 days',"
            " now() + interval '30 days 3 hours', now() - interval '1 minute', 'USD', %s, 8, false)"
            " RETURNING event_id", (venue_id, performer_id, [15000, 9500, 6000, 4000, 2500]))).fetchone())[0]
        await materialise_tickets(conn, event_id)
        seats = [seat.seat_id for seat in layout.seats]
        sold = [seat for index, seat in enumerate(seats) if index % 6 in (1, 2)]
        await conn.execute(
            f"UPDATE tickets SET status = 'booked', booking_id = gen_random_uuid(), version = {seatfeed.NEXT_VERSION}"
            " WHERE event_id = %s AND seat_id = ANY(%s)", (event_id, sold))
        await conn.commit()
        await conn.execute("ANALYZE tickets")
        await conn.commit()
    free = [seat for index, seat in enumerate(seats) if index % 6 not in (1, 2)]
    return ReadEvent(event_id, free, {seat.seat_id: seat.section_id for seat in layout.seats})


class SeatChanger:
    """Changes one free seat (reserved, then available again) every ``interval`` seconds, as booking does: one
    statement drawing a version, then the publication on the feed. Runs in a thread with its own loop."""

    def __init__(self, database_url: str, redis_url: str, event: ReadEvent, interval: float) -> None:
        self._database_url = database_url
        self._redis_url = redis_url
        self._event = event
        self._interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # (version, time.time() when the change was committed)
        self.changes: list[tuple[int, float]] = []

    def __enter__(self) -> SeatChanger:
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)

    @property
    def last_version(self) -> int:
        return self.changes[-1][0] if self.changes else 0

    async def _run(self) -> None:
        from redis.asyncio import Redis

        redis = Redis.from_url(self._redis_url, decode_responses=True)
        rng = random.Random(7)
        held: list[str] = []
        async with await psycopg.AsyncConnection.connect(self._database_url, autocommit=True) as conn:
            next_at = time.monotonic()
            while not self._stop.is_set():
                if held and (len(held) > 50 or rng.random() < 0.5):
                    seat, status, previous = held.pop(0), "available", "reserved"
                else:
                    seat, status, previous = rng.choice(self._event.seat_ids), "reserved", "available"
                    held.append(seat)
                version = (await (await conn.execute(
                    f"UPDATE tickets SET status = %s, version = {seatfeed.NEXT_VERSION},"
                    " booking_id = CASE WHEN %s = 'available' THEN NULL ELSE gen_random_uuid() END,"
                    " reserved_until = CASE WHEN %s = 'available' THEN NULL ELSE now() + interval '10 minutes' END"
                    " WHERE event_id = %s AND seat_id = %s RETURNING version",
                    (status, status, status, self._event.event_id, seat))).fetchone())[0]
                committed = time.time()
                change = seatfeed.SeatChange(seat, self._event.sections[seat], previous, status)
                await seatfeed.publish(redis, self._event.event_id, version, [change])
                self.changes.append((version, committed))
                next_at += self._interval
                await asyncio.sleep(max(0.0, next_at - time.monotonic()))
        await redis.aclose()


# --- HTTP load ----------------------------------------------------------------------------------------------------


@dataclass
class HttpLoad:
    rate: float
    p50: float  # seconds
    p99: float
    statuses: str  # what answered, for the report's notes


def http_load(url: str, connections: int, seconds: float, headers: dict[str, str]) -> HttpLoad:
    if shutil.which("wrk"):
        return _wrk(url, connections, seconds, headers)
    return asyncio.run(_aiohttp_load(url, connections, seconds, headers))


_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}


def _wrk(url: str, connections: int, seconds: float, headers: dict[str, str]) -> HttpLoad:
    argv = ["wrk", f"-t{min(2, connections)}", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency",
            "--timeout", "5s"]
    for name, value in headers.items():
        argv += ["-H", f"{name}: {value}"]
    out = subprocess.run([*argv, url], capture_output=True, text=True, timeout=seconds + 60, check=True).stdout

    def latency(label: str) -> float:
        found = re.search(rf"^\s+{label}%\s+([\d.]+)(us|ms|s|m)\s*$", out, re.MULTILINE)
        return float(found.group(1)) * _UNITS[found.group(2)] if found else float("nan")

    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    non_ok = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    statuses = (f"{non_ok.group(1)} non-2xx/3xx" if non_ok else "all 2xx/3xx") + (
        f"; socket errors {errors.group(1)}" if errors else "")
    return HttpLoad(rate, latency("50"), latency("99"), statuses)


async def _aiohttp_load(url: str, connections: int, seconds: float, headers: dict[str, str]) -> HttpLoad:
    import aiohttp

    latencies: list[float] = []
    statuses: dict[int, int] = {}
    deadline = time.monotonic() + seconds
    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=connector, auto_decompress=False) as session:

        async def client() -> None:
            while time.monotonic() < deadline:
                started = time.perf_counter()
                async with session.get(url, headers=headers) as response:
                    await response.read()
                    statuses[response.status] = statuses.get(response.status, 0) + 1
                latencies.append(time.perf_counter() - started)

        started = time.monotonic()
        await asyncio.gather(*(client() for _ in range(connections)))
        elapsed = time.monotonic() - started
    return HttpLoad(len(latencies) / elapsed, percentile(latencies, 50), percentile(latencies, 99),
                    ", ".join(f"{status}: {count}" for status, count in sorted(statuses.items())))


def _get(url: str, headers: dict[str, str]) -> tuple[int, Any, bytes]:
    """Status, headers (looked up without regard to case) and the body as it crossed the wire."""
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


# --- the HTTP figures ---------------------------------------------------------------------------------------------


BROWSER = {"Accept-Encoding": "gzip, deflate, br"}


def http_figures(report: Report, edge: BenchEdge, stack: BenchStack, event: ReadEvent, size: ReadSize) -> None:
    base = edge.base_url
    page_url = f"{base}/v1/events/{event.event_id}"
    map_url = f"{base}/v1/events/{event.event_id}/seats"
    echo_url = f"{base}/v1/events/not-a-number"
    for encoding in ("br", "gzip", "identity"):
        _, _, body = _get(map_url, {"Accept-Encoding": encoding})
        report.add(f"{size.layout} map on the wire ({encoding}, a third sold)", f"{len(body):,} bytes",
                   "target 40,000 bytes" if encoding != "identity" else "",
                   f"{len(body) / 40_000:.2f}x of target" if encoding != "identity" else "")
    for connections in size.connections:
        # The map and the page cached again (the last round's sale changed seats) and the map's current ETag:
        # "warm" and "304" measure answers from the cache, not one render every request waits for.
        status, headers, _ = _get(map_url, BROWSER)
        assert status == 200, status
        etag = headers["ETag"]
        _get(page_url, BROWSER)
        echo = http_load(echo_url, connections, size.seconds, BROWSER)
        runs: list[tuple[str, HttpLoad, float]] = []
        runs.append(("event page", http_load(page_url, connections, size.seconds, BROWSER), 0.7))
        runs.append((f"{size.layout} map warm", http_load(map_url, connections, size.seconds, BROWSER), 0.6))
        runs.append((f"{size.layout} map 304", http_load(map_url, connections, size.seconds,
                                                  BROWSER | {"If-None-Match": etag}), 0.9))
        with SeatChanger(stack.libpq_url, stack.redis_url, event, SALE_CHANGE_SECONDS) as changer:
            time.sleep(0.2)
            sale = http_load(map_url, connections, size.seconds, BROWSER)
        during = f"{size.layout} map during a sale ({len(changer.changes)} changes, one per 10 ms)"
        runs.append((during, sale, 0.0))
        echo_after = http_load(echo_url, connections, size.seconds, BROWSER)
        echo_rate = (echo.rate + echo_after.rate) / 2
        report.add(f"echo through Envoy, GET /v1/events/not-a-number -> 400 ({connections} connections)",
                   f"{_fmt_rate(echo.rate)} before, {_fmt_rate(echo_after.rate)} after",
                   f"p50 {_ms(echo.p50)}, p99 {_ms(echo.p99)}")
        for name, load, target in runs:
            report.add(
                f"{name} ({connections} connections)",
                f"{_fmt_rate(load.rate)}, p50 {_ms(load.p50)}, p99 {_ms(load.p99)}",
                f"echo {_fmt_rate(echo_rate)}" + (f"; target {target}x" if target else ""),
                _ratio(load.rate, echo_rate),
            )
            if load.statuses != "all 2xx/3xx":
                report.notes.append(f"{name} at {connections} connections answered: {load.statuses}")
        if echo.statuses != "1" and "non-2xx" not in echo.statuses and "400" not in echo.statuses:
            report.notes.append(f"echo answered: {echo.statuses}")
    report.notes.append(
        "HTTP load: " + ("wrk (2 threads)" if shutil.which("wrk") else "aiohttp (no wrk installed: the client's "
                                                                           "own CPU weighs on the figures)")
        + "; clients send Accept-Encoding: gzip, deflate, br as browsers do")


# --- watchers -----------------------------------------------------------------------------------------------------

_ID = re.compile(rb"\nid: (\d+)\n")
_STATUS = re.compile(rb"HTTP/1\.1 (\d{3})")


class _Watch(asyncio.Protocol):
    """One SSE connection that only notes the ids it sees (and whether a snapshot came)."""

    def __init__(self, swarm: _Swarm, index: int) -> None:
        self.swarm = swarm
        self.index = index
        self.tail = b""
        self.status = 0
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment] - a uvloop transport is not asyncio's class
        self.transport.write(self.swarm.request(self.index))

    def data_received(self, data: bytes) -> None:
        now = time.time()
        text = self.tail + data
        if not self.status:
            found = _STATUS.search(text)
            if found:
                self.status = int(found.group(1))
                self.swarm.answered(self.status)
        if b"event: snapshot" in text:
            self.swarm.snapshots += 1
        for match in _ID.finditer(text):
            version = int(match.group(1))
            if version != self.swarm.last_ids[self.index]:
                self.swarm.last_ids[self.index] = version
                self.swarm.seen(version, now)
        self.tail = text[-48:]

    def connection_lost(self, exc: Exception | None) -> None:
        self.swarm.lost += 1


@dataclass
class _Swarm:
    host: str
    port: int
    path: str
    count: int
    last_ids: list[int] = field(default_factory=list)
    # version -> [watchers that saw it, latest time one did]
    receipts: dict[int, list[float]] = field(default_factory=dict)
    statuses: dict[int, int] = field(default_factory=dict)
    snapshots: int = 0
    lost: int = 0
    watches: list[_Watch] = field(default_factory=list)

    def request(self, index: int) -> bytes:
        resume = f"Last-Event-ID: {self.last_ids[index]}\r\n" if self.last_ids[index] else ""
        return (f"GET {self.path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nAccept: text/event-stream\r\n"
                f"{resume}\r\n").encode()

    def answered(self, status: int) -> None:
        self.statuses[status] = self.statuses.get(status, 0) + 1

    def seen(self, version: int, when: float) -> None:
        entry = self.receipts.setdefault(version, [0, 0.0])
        entry[0] += 1
        entry[1] = max(entry[1], when)

    async def connect(self) -> float:
        loop = asyncio.get_running_loop()
        self.statuses.clear()
        self.watches = []
        started = time.monotonic()
        for start in range(0, self.count, 200):
            batch = []
            for index in range(start, min(self.count, start + 200)):
                sock = socket.socket()
                sock.setblocking(False)
                await loop.sock_connect(sock, (self.host, self.port))
                batch.append(loop.create_connection(lambda i=index: _Watch(self, i), sock=sock))
            self.watches += [protocol for _, protocol in await asyncio.gather(*batch)]
        while sum(self.statuses.values()) < self.count and time.monotonic() - started < 60:
            await asyncio.sleep(0.05)
        return time.monotonic() - started

    def drop(self) -> None:
        for watch in self.watches:
            if watch.transport is not None:
                watch.transport.abort()
        self.watches = []


def _swarm_main(connection: Any, host: str, port: int, path: str, count: int, first_id: int) -> None:
    import uvloop

    async def main() -> None:
        swarm = _Swarm(host, port, path, count, last_ids=[first_id] * count)
        loop = asyncio.get_running_loop()
        while True:
            command = await loop.run_in_executor(None, connection.recv)
            if command == "connect":
                seconds = await swarm.connect()
                connection.send({"seconds": seconds, "statuses": dict(swarm.statuses)})
            elif command == "report":
                connection.send({"receipts": {v: tuple(r) for v, r in swarm.receipts.items()},
                                 "snapshots": swarm.snapshots, "last_ids": sorted(set(swarm.last_ids))})
            elif command == "reset":
                swarm.receipts.clear()
                swarm.snapshots = 0
                connection.send(True)
            elif command == "drop":
                swarm.drop()
                connection.send(True)
            elif command == "stop":
                swarm.drop()
                connection.send(True)
                return

    uvloop.run(main())


class Watchers:
    """``count`` SSE watchers in ``procs`` processes, driven by commands."""

    def __init__(self, edge: BenchEdge, event: ReadEvent, count: int, first_id: int, procs: int = 2) -> None:
        context = mp.get_context("spawn")
        self.count = count
        self._pipes = []
        self.processes: list[Any] = []
        path = f"/v1/events/{event.event_id}/seats:watch"
        for index in range(procs):
            parent, child = context.Pipe()
            share = count // procs + (1 if index < count % procs else 0)
            process = context.Process(target=_swarm_main, args=(child, "127.0.0.1", edge.listen_port, path, share,
                                                                  first_id), daemon=True)
            process.start()
            self._pipes.append(parent)
            self.processes.append(process)

    def ask(self, command: str) -> list[Any]:
        for pipe in self._pipes:
            pipe.send(command)
        return [pipe.recv() for pipe in self._pipes]

    def close(self) -> None:
        try:
            self.ask("stop")
        finally:
            for process in self.processes:
                process.join(10)
                if process.is_alive():
                    process.kill()


def _rss(pid: int | None) -> int:
    if pid is None:
        return 0
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return 0
    return 0


def _cpu_seconds(pids: list[int]) -> float:
    """User and system CPU the processes used so far (from /proc; 0 for one that is gone)."""
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def _with_children(pid: int | None) -> list[int]:
    """``pid`` and its child processes (the service's SO_REUSEPORT workers)."""
    if pid is None:
        return []
    found = [pid]
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


class CpuMeter:
    """CPU used by the event service, Envoy and the watchers' client processes between ``start`` and ``stop``."""

    def __init__(self, groups: dict[str, list[int]]) -> None:
        self.groups = groups
        self._started: dict[str, float] = {}
        self.used: dict[str, float] = {}
        self.seconds = 0.0

    def __enter__(self) -> CpuMeter:
        self._wall = time.monotonic()
        self._started = {name: _cpu_seconds(pids) for name, pids in self.groups.items()}
        return self

    def __exit__(self, *_: object) -> None:
        self.seconds = time.monotonic() - self._wall
        self.used = {name: _cpu_seconds(pids) - self._started[name] for name, pids in self.groups.items()}

    def per(self, count: int, unit: float, suffix: str) -> str:
        return ", ".join(f"{name} {used / max(1, count) * unit:,.1f} {suffix}" for name, used in self.used.items())

    def cores(self) -> str:
        return ", ".join(f"{name} {used / max(self.seconds, 1e-9):.2f}" for name, used in self.used.items())


def _merged(reports: list[dict[str, Any]]) -> tuple[dict[int, tuple[int, float]], int]:
    receipts: dict[int, tuple[int, float]] = {}
    for part in reports:
        for version, (seen, when) in part["receipts"].items():
            count, latest = receipts.get(version, (0, 0.0))
            receipts[version] = (count + seen, max(latest, when))
    return receipts, sum(part["snapshots"] for part in reports)


def watch_figures(report: Report, edge: BenchEdge, stack: BenchStack, event: ReadEvent, size: ReadSize) -> None:
    _, headers, _ = _get(f"{edge.base_url}/v1/events/{event.event_id}/seats", BROWSER)
    position = int(headers.get("Tix-Feed-Position", "0"))
    service = _with_children(stack.event_pid)
    service_before, edge_before = sum(_rss(pid) for pid in service), _rss(edge.process.pid)
    watchers = Watchers(edge, event, size.watchers, position)
    groups = {"service": service, "Envoy": [edge.process.pid], "clients": [p.pid for p in watchers.processes]}
    try:
        watchers.ask("reset")  # the client processes are up (their start is not counted below)
        with CpuMeter(groups) as connecting:
            connected = watchers.ask("connect")
        statuses: dict[int, int] = {}
        for part in connected:
            for code, count in part["statuses"].items():
                statuses[code] = statuses.get(code, 0) + count
        report.add(f"{size.watchers:,} SSE watchers connected (resuming from the map's Tix-Feed-Position)",
                   f"{max(p['seconds'] for p in connected):.1f} s", f"answers {statuses}",
                   "CPU per watch opened: " + connecting.per(size.watchers, 1e3, "ms"))
        time.sleep(1.0)
        service_after, edge_after = sum(_rss(pid) for pid in service), _rss(edge.process.pid)
        report.add("memory per watcher: event service", f"{(service_after - service_before) / size.watchers:,.0f} B",
                   f"process RSS {service_before / 2**20:,.0f} -> {service_after / 2**20:,.0f} MiB")
        report.add("memory per watcher: Envoy", f"{(edge_after - edge_before) / size.watchers:,.0f} B",
                   f"process RSS {edge_before / 2**20:,.0f} -> {edge_after / 2**20:,.0f} MiB")
        watchers.ask("reset")
        with CpuMeter(groups) as fanning, SeatChanger(stack.libpq_url, stack.redis_url, event,
                                                       WATCH_CHANGE_SECONDS) as changer:
            time.sleep(size.watch_seconds)
        time.sleep(1.5)
        receipts, snapshots = _merged(watchers.ask("report"))
        deliveries = sum(seen for seen, _ in receipts.values())
        delays = []
        complete = 0
        for version, committed in changer.changes:
            seen, latest = receipts.get(version, (0, 0.0))
            if seen >= size.watchers:
                complete += 1
                delays.append(latest - committed)
        report.add(
            f"change -> last of {size.watchers:,} watchers (one change per 100 ms)",
            f"p50 {_ms(percentile(delays, 50))}, p99 {_ms(percentile(delays, 99))}",
            "target p99 <= 1,000 ms",
            f"{complete}/{len(changer.changes)} changes reached every watcher",
        )
        # What the fan-out costs, whatever else shares the machine: CPU per change delivered to one watcher, and
        # the cores each part used (a part short of what it needs falls behind, and the delays above grow).
        report.add(
            "CPU per change delivered to one watcher",
            fanning.per(deliveries, 1e6, "us"),
            f"{deliveries:,} deliveries; cores used: {fanning.cores()}",
        )

        # The reconnect storm: every connection lost at once, changes go on for 5 s, everyone comes back.
        watchers.ask("drop")
        watchers.ask("reset")
        back = 0
        with SeatChanger(stack.libpq_url, stack.redis_url, event, WATCH_CHANGE_SECONDS) as changer:
            time.sleep(RECONNECT_GAP_SECONDS if not size.watchers < 100 else 1.0)
            missed = len(changer.changes)
            started = time.time()
            with CpuMeter(groups) as storm:
                connected = watchers.ask("connect")
                target = changer.last_version
                caught_up = float("nan")
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline:
                    receipts, snapshots = _merged(watchers.ask("report"))
                    back = receipts.get(target, (0, 0.0))[0]
                    if back >= size.watchers:
                        caught_up = receipts[target][1] - started
                        break
                    time.sleep(0.25)
        statuses = {}
        for part in connected:
            for code, count in part["statuses"].items():
                statuses[code] = statuses.get(code, 0) + count
        report.add(
            f"reconnect storm: {size.watchers:,} watchers back with Last-Event-ID after {missed} missed changes",
            f"all caught up in {caught_up:.2f} s" if back >= size.watchers
            else f"{back:,} of {size.watchers:,} caught up within 60 s",
            f"answers {statuses}; CPU per watcher back: {storm.per(size.watchers, 1e3, 'ms')}",
            f"{snapshots} snapshot downloads (target 0)",
        )
        retried = edge.stats("cluster.event_http.upstream_rq_retry", "cluster.event_http.upstream_cx_connect_")
        if any(retried.values()):
            report.notes.append("reconnect storm, the edge's upstream retries and connect failures: " + ", ".join(
                f"{name.removeprefix('cluster.event_http.')} {value}" for name, value in sorted(retried.items())
                if value))
    finally:
        watchers.close()
    report.notes.append(
        "watchers: raw HTTP/1.1 connections through Envoy in 2 processes, without Accept-Encoding (a browser's "
        "gzip would add Envoy's per-stream compressor state to its memory per watcher)")


def run_read(args: argparse.Namespace, stack: BenchStack, report: Report) -> None:
    """The read-path scenarios on their own event, service and edge."""
    size = read_size(args)
    load_before = os.getloadavg()
    print(f"read path: {size.layout} event, {size.connections} connections, {size.watchers:,} watchers", flush=True)
    event = asyncio.run(create_read_event(stack.libpq_url, size.layout))
    grpc_port, http_port = stack.start_event_server(workers=args.event_workers)
    try:
        edge = start_edge_for(stack.work_dir, "event", grpc_port, read_port=http_port)
    except Exception:
        stack.stop_event_server()
        raise
    try:
        _get(f"{edge.base_url}/v1/events/{event.event_id}/seats", BROWSER)  # the layout into the process once
        http_figures(report, edge, stack, event, size)
        watch_figures(report, edge, stack, event, size)
        load_after = os.getloadavg()
        report.notes.append(
            f"read path: event service with TIX_WORKERS={args.event_workers}, Envoy with {mp.cpu_count()} worker "
            f"threads, load generators and stores on the same {mp.cpu_count()} cores; the machine's 1-minute load "
            f"average was {load_before[0]:.1f} before and {load_after[0]:.1f} after (anything above "
            f"{mp.cpu_count()} means other work shared the cores): compare the ratios, not the absolute figures")
    finally:
        edge.stop()
        stack.stop_event_server()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--watchers", type=int, default=5_000, help="SSE watchers of the read bench")
    parser.add_argument("--event-workers", type=int, default=1, help="event service processes (TIX_WORKERS)")

