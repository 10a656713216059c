"""``python -m bench queue``: the waiting room at scale, each figure beside a baseline of the same run.

- **Joins/s** of ``JoinQueue`` against the gRPC health echo on the same port, from the same client processes.
- **Watchers per process**: WatchQueue streams are opened in stages (5,000, 10,000, 20,000 by default) against one
  queue process (``TIX_WORKERS=1`` unless ``--queue-workers``): how fast they connect, the server's memory per stream,
  and, in rounds, **slot freed → last watcher**: the bench frees admitted fans' shopper slots exactly as booking does
  (entries on the admission-ends stream), the queue steps at once, every watcher's place changes, and each client
  notes when each watcher whose shown place changed (``queue_svc.domain.displayed_position``: exact for the first
  100 places, then two significant figures) heard its new place; the bench knows each fan's sequence and the
  serving counter before and after the step, so it knows which watchers are due a message and waits for each. Health checks are sent every 20 ms meanwhile; their latency is
  reported beside an idle server's.
- The same rounds for **watchers through Envoy as SSE** (2,000 by default).

The line: ``A`` shoppers admitted first fill the cap (``queue_max_active = A``); the watchers wait behind them. A
round frees 10 slots, so 10 watchers are admitted and everyone else moves up 10 places. The client processes are the
other half of the cost: 20,000 streams in Python clients take CPU too, so they are spread over several processes
(``--queue-client-procs``); on a 2-core machine clients and server share the cores.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import re
import socket
import statistics
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

from bench.catalog import create_sale_event
from bench.load import percentile
from bench.report import Report, _fmt_rate, _ms, _ratio
from bench.stack import BenchStack
from queue_svc.domain import displayed_position
from tix.admission import ADMISSION_ENDS_STREAM
from tix_dev.processes import stop_process
from tix_dev.readiness import free_port

_FREED_PER_ROUND = 10
_CHANNELS_PER_PROC = 8


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--queue-watchers", default="5000,10000,20000",
                        help="waiting-room bench: cumulative WatchQueue stream counts, comma-separated")
    parser.add_argument("--queue-sse", type=int, default=2000, help="waiting-room bench: SSE watchers through Envoy")
    parser.add_argument("--queue-joins", type=int, default=0, help="waiting-room bench: measured joins (default: "
                        "the largest watcher count)")
    parser.add_argument("--queue-rounds", type=int, default=8, help="waiting-room bench: freeing rounds per stage")
    parser.add_argument("--queue-client-procs", type=int, default=4, help="waiting-room bench: client processes")
    parser.add_argument("--queue-workers", type=int, default=1, help="waiting-room bench: queue server processes")


def queue_size(args: argparse.Namespace) -> tuple[list[int], int, int, int]:
    """(watcher stages, SSE watchers, joins, rounds) for this run."""
    stages = sorted(int(n) for n in str(args.queue_watchers).split(","))
    sse, rounds = args.queue_sse, args.queue_rounds
    if args.smoke:
        stages, sse, rounds = [40, 80], 20, 2
    elif args.quick:
        stages, sse, rounds = [1000, 3000], 500, 4
    joins = args.queue_joins or stages[-1] + sse
    return stages, sse, max(joins, stages[-1] + sse), rounds


# --- client processes ------------------------------------------------------------------------------------------------


def _user(index: int) -> str:
    return f"qfan-{index}"


def _expected(sequence: int, serving: int) -> int:
    """The place a fan is shown with the line at ``serving``; 0 once admitted."""
    return displayed_position(sequence - serving) if sequence > serving else 0


def _due(sequences: dict[int, int], watching: list[int], before: int, after: int) -> list[int]:
    """The watchers whose shown place changes when the serving counter moves from ``before`` to ``after``."""
    return [i for i in watching if i in sequences and _expected(sequences[i], before) != _expected(sequences[i], after)]


@dataclass
class _Client:
    """One client process: unary loads, and WatchQueue streams noting when each heard something."""

    target: str
    event_id: int
    channels: list[Any] = field(default_factory=list)
    heard: dict[int, float] = field(default_factory=dict)  # fan index -> last message time
    shown: dict[int, tuple[int, float]] = field(default_factory=dict)  # fan index -> (place shown, since when)
    sequences: dict[int, int] = field(default_factory=dict)
    connected: set[int] = field(default_factory=set)
    finished: set[int] = field(default_factory=set)
    errors: dict[str, int] = field(default_factory=dict)  # why streams ended early, by status code
    tasks: dict[int, asyncio.Task] = field(default_factory=dict)
    tickets: dict[int, str] = field(default_factory=dict)

    def open_channels(self) -> None:
        import grpc

        if not self.channels:
            self.channels = [
                grpc.aio.insecure_channel(self.target, options=[("grpc.use_local_subchannel_pool", 1)])
                for _ in range(_CHANNELS_PER_PROC)
            ]

    async def unary(self, kind: str, first: int, count: int, concurrency: int) -> dict[str, Any]:
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        from tixpb.v1 import queue_pb2, queue_pb2_grpc

        self.open_channels()
        queue_stubs = [queue_pb2_grpc.QueueServiceStub(c) for c in self.channels]
        health_stubs = [health_pb2_grpc.HealthStub(c) for c in self.channels]
        latencies: list[float] = []
        errors = 0
        next_index = first

        async def worker(slot: int) -> None:
            nonlocal next_index, errors
            while next_index < first + count:
                index = next_index
                next_index += 1
                started = time.perf_counter()
                try:
                    if kind == "join":
                        ticket = await queue_stubs[slot % len(queue_stubs)].JoinQueue(
                            queue_pb2.JoinQueueRequest(event_id=str(self.event_id)),
                            metadata=(("x-user-id", _user(index)),),
                        )
                        self.tickets[index] = ticket.ticket_id
                    else:
                        await health_stubs[slot % len(health_stubs)].Check(health_pb2.HealthCheckRequest())
                except Exception:  # noqa: BLE001 - counted and reported
                    errors += 1
                    continue
                latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(worker(slot) for slot in range(concurrency)))
        return {"seconds": time.perf_counter() - started, "latencies": latencies, "errors": errors,
                "tickets": dict(self.tickets) if kind == "join" else {}}

    async def watch(self, index: int, ticket_id: str, channel: Any) -> None:
        from tixpb.v1 import queue_pb2, queue_pb2_grpc

        stub = queue_pb2_grpc.QueueServiceStub(channel)
        call = stub.WatchQueue(queue_pb2.WatchQueueRequest(event_id=str(self.event_id), ticket_id=ticket_id),
                               metadata=(("x-user-id", _user(index)),))
        try:
            async for message in call:
                now = self.heard[index] = time.time()
                self.connected.add(index)
                if index not in self.shown or self.shown[index][0] != message.position:
                    self.shown[index] = (message.position, now)
                if message.state in (queue_pb2.QUEUE_TICKET_STATE_ADMITTED, queue_pb2.QUEUE_TICKET_STATE_EXPIRED):
                    break
        except Exception as error:  # noqa: BLE001 - a closed stream ends the watcher; counted as finished
            code = error.code().name if hasattr(error, "code") and callable(error.code) else type(error).__name__
            self.errors[code] = self.errors.get(code, 0) + 1
        finally:
            self.finished.add(index)

    async def open_streams(self, fans: dict[int, tuple[str, int]]) -> dict[str, Any]:
        self.open_channels()
        started = time.monotonic()
        for n, (index, (ticket_id, sequence)) in enumerate(sorted(fans.items())):
            self.sequences[index] = sequence
            channel = self.channels[n % len(self.channels)]
            self.tasks[index] = asyncio.create_task(self.watch(index, ticket_id, channel))
            if n % 200 == 199:
                await asyncio.sleep(0)
        while len(self.connected & fans.keys()) + len(self.finished & fans.keys()) < len(fans):
            if time.monotonic() - started > 180:
                break
            await asyncio.sleep(0.05)
        return {"seconds": time.monotonic() - started, "connected": len(self.connected & fans.keys()),
                "failed": len((self.finished - self.connected) & fans.keys()), "errors": dict(self.errors)}

    async def round(self, since: float, before: int, after: int, timeout: float) -> dict[str, Any]:
        """Wait until every open watcher due a new place (serving counter ``before`` -> ``after``) was shown it;
        their delays."""
        watching = [i for i in self.tasks if i not in self.finished or self.heard.get(i, 0) > since]
        due = _due(self.sequences, watching, before, after)

        def told(i: int) -> bool:
            place, at = self.shown.get(i, (-1, 0.0))
            return at > since and place == _expected(self.sequences[i], after)

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not all(told(i) for i in due):
            await asyncio.sleep(0.02)
        delays = [self.shown[i][1] - since for i in due if told(i)]
        missed: dict[str, int] = {}
        for i in due:
            if not told(i):
                place, at = self.shown.get(i, (-1, 0.0))
                expected = _expected(self.sequences[i], after)
                kind = ("nothing since the frees" if at <= since else
                        "a place behind the expected one" if place > expected else "a place ahead of it")
                missed[kind] = missed.get(kind, 0) + 1
        return {"watching": len(watching), "due": len(due), "delays": delays, "missed": missed,
                "others_heard": sum(1 for i in watching if self.heard.get(i, 0) > since) - len(delays)}

    async def close_streams(self) -> None:
        for task in self.tasks.values():
            task.cancel()
        await asyncio.gather(*self.tasks.values(), return_exceptions=True)
        self.tasks.clear()


def _client_main(connection: Any, target: str, event_id: int) -> None:
    async def main() -> None:
        client = _Client(target, event_id)
        loop = asyncio.get_running_loop()
        while True:
            command, payload = await loop.run_in_executor(None, connection.recv)
            if command == "unary":
                connection.send(await client.unary(*payload))
            elif command == "open":
                connection.send(await client.open_streams(payload))
            elif command == "round":
                connection.send(await client.round(*payload))
            elif command == "close":
                await client.close_streams()
                connection.send(True)
            elif command == "stop":
                await client.close_streams()
                connection.send(True)
                return

    asyncio.run(main())


class _Clients:
    def __init__(self, procs: int, target: str, event_id: int) -> None:
        context = mp.get_context("spawn")
        self._pipes = []
        self._processes = []
        for _ in range(procs):
            parent, child = context.Pipe()
            process = context.Process(target=_client_main, args=(child, target, event_id), daemon=True)
            process.start()
            self._pipes.append(parent)
            self._processes.append(process)

    def ask(self, command: str, payloads: list[Any]) -> list[Any]:
        for pipe, payload in zip(self._pipes, payloads, strict=True):
            pipe.send((command, payload))
        return [pipe.recv() for pipe in self._pipes]

    def ask_all(self, command: str, payload: Any = None) -> list[Any]:
        return self.ask(command, [payload] * len(self._pipes))

    def close(self) -> None:
        try:
            self.ask_all("stop")
        finally:
            for process in self._processes:
                process.join(10)
                if process.is_alive():
                    process.kill()


# --- SSE through Envoy -----------------------------------------------------------------------------------------------

_STATUS = re.compile(rb"HTTP/1\.1 (\d{3})")
_POSITION = re.compile(rb'"position":\s*"?(\d+)')


class _SseWatch(asyncio.Protocol):
    def __init__(self, swarm: _SseSwarm, index: int, request: bytes) -> None:
        self.swarm, self.index, self.request = swarm, index, request
        self.answered = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        transport.write(self.request)  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        now = time.time()
        if not self.answered:
            found = _STATUS.search(data)
            if found:
                self.answered = True
                status = int(found.group(1))
                self.swarm.statuses[status] = self.swarm.statuses.get(status, 0) + 1
                if status != 200:  # refused: not a watcher (the rounds do not wait for it)
                    self.swarm.finished.add(self.index)
                    self.swarm.heard[self.index] = now
        if b"data:" in data:
            self.swarm.heard[self.index] = now
            places = _POSITION.findall(data)
            place = 0 if b"ADMITTED" in data or not places else int(places[-1])
            if self.swarm.shown.get(self.index, (-1, 0.0))[0] != place:
                self.swarm.shown[self.index] = (place, now)
            if b"ADMITTED" in data:
                self.swarm.finished.add(self.index)

    def connection_lost(self, exc: Exception | None) -> None:
        self.swarm.finished.add(self.index)


@dataclass
class _SseSwarm:
    port: int
    heard: dict[int, float] = field(default_factory=dict)
    shown: dict[int, tuple[int, float]] = field(default_factory=dict)
    sequences: dict[int, int] = field(default_factory=dict)
    finished: set[int] = field(default_factory=set)
    statuses: dict[int, int] = field(default_factory=dict)
    watches: list[_SseWatch] = field(default_factory=list)

    async def connect(self, fans: dict[int, tuple[str, str, int]]) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        started = time.monotonic()
        for index, (path, token, sequence) in sorted(fans.items()):
            self.sequences[index] = sequence
            request = (f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\nAccept: text/event-stream\r\n"
                       f"Authorization: Bearer {token}\r\n\r\n").encode()
            sock = socket.socket()
            sock.setblocking(False)
            await loop.sock_connect(sock, ("127.0.0.1", self.port))
            _, protocol = await loop.create_connection(lambda i=index, r=request: _SseWatch(self, i, r), sock=sock)
            self.watches.append(protocol)
        while len(self.heard) < len(fans) and time.monotonic() - started < 120:
            await asyncio.sleep(0.05)
        return {"seconds": time.monotonic() - started, "connected": len(self.heard), "statuses": self.statuses}

    async def round(self, since: float, before: int, after: int, timeout: float) -> dict[str, Any]:
        watching = [w.index for w in self.watches if w.index not in self.finished or self.heard.get(w.index, 0) > since]
        due = _due(self.sequences, watching, before, after)

        def told(i: int) -> bool:
            place, at = self.shown.get(i, (-1, 0.0))
            return at > since and place == _expected(self.sequences[i], after)

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not all(told(i) for i in due):
            await asyncio.sleep(0.02)
        delays = [self.shown[i][1] - since for i in due if told(i)]
        return {"watching": len(watching), "due": len(due), "delays": delays,
                "others_heard": sum(1 for i in watching if self.heard.get(i, 0) > since) - len(delays)}


def _sse_main(connection: Any, port: int) -> None:
    async def main() -> None:
        swarm = _SseSwarm(port)
        loop = asyncio.get_running_loop()
        while True:
            command, payload = await loop.run_in_executor(None, connection.recv)
            if command == "open":
                connection.send(await swarm.connect(payload))
            elif command == "round":
                connection.send(await swarm.round(*payload))
            elif command == "stop":
                for watch in swarm.watches:
                    watch.transport.abort()  # type: ignore[attr-defined]
                connection.send(True)
                return

    asyncio.run(main())


class _SseClients(_Clients):
    def __init__(self, procs: int, port: int) -> None:
        context = mp.get_context("spawn")
        self._pipes = []
        self._processes = []
        for _ in range(procs):
            parent, child = context.Pipe()
            process = context.Process(target=_sse_main, args=(child, port), daemon=True)
            process.start()
            self._pipes.append(parent)
            self._processes.append(process)


# --- health prober ---------------------------------------------------------------------------------------------------


class _HealthProbe:
    """Health checks every 20 ms from a thread of its own; latencies by time."""

    def __init__(self, target: str) -> None:
        import grpc
        from grpc_health.v1 import health_pb2_grpc

        self._channel = grpc.insecure_channel(target)
        self._stub = health_pb2_grpc.HealthStub(self._channel)
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        from grpc_health.v1 import health_pb2

        while not self._stop.is_set():
            started = time.perf_counter()
            try:
                self._stub.Check(health_pb2.HealthCheckRequest(), timeout=10)
                self.samples.append((time.monotonic(), time.perf_counter() - started))
            except Exception:  # noqa: BLE001 - a timeout is recorded as 10 s
                self.samples.append((time.monotonic(), 10.0))
            self._stop.wait(0.02)

    def since(self, moment: float) -> list[float]:
        return [latency for at, latency in self.samples if at >= moment]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._channel.close()


# --- the scenario ----------------------------------------------------------------------------------------------------


def _rss(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            continue
    return total


def _server_pids(parent: int) -> list[int]:
    children = Path(f"/proc/{parent}/task/{parent}/children")
    try:
        kids = [int(p) for p in children.read_text().split()]
    except OSError:
        kids = []
    return [parent, *kids]


def _split(items: dict[int, Any], parts: int) -> list[dict[int, Any]]:
    out: list[dict[int, Any]] = [{} for _ in range(parts)]
    for n, (key, value) in enumerate(sorted(items.items())):
        out[n % parts][key] = value
    return out


async def _create_queue_event(dsn: str, shoppers: int) -> int:
    event = await create_sale_event(dsn, 40, "Waiting Room (bench)")
    async with await psycopg.AsyncConnection.connect(dsn) as conn:
        await conn.execute(
            "UPDATE events SET queue_enabled = true, queue_rate_per_second = 5000, queue_max_active = %s,"
            " sale_starts_at = %s WHERE event_id = %s",
            (shoppers, datetime.now(UTC) - timedelta(minutes=1), event.event_id),
        )
        await conn.commit()
    return event.event_id


def _free_slots(redis_url: str, event_id: int, count: int) -> float:
    """Free ``count`` admitted shoppers' slots as booking would (entries on the admission-ends stream); the time."""
    import redis

    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        active = client.zrange(f"tix:q:{{{event_id}}}:active", 0, count - 1)
        moment = time.time()
        with client.pipeline(transaction=False) as pipe:
            for ticket in active:
                pipe.xadd(ADMISSION_ENDS_STREAM, {"event": str(event_id), "ticket": ticket, "booking": "bench",
                                                  "end": "confirmed"})
            pipe.execute()
        return moment
    finally:
        client.close()


def _sequences(redis_url: str, event_id: int, tickets: dict[int, str]) -> dict[int, int]:
    """Each fan's place in line (its sequence), as the queue stored it."""
    import redis

    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        with client.pipeline(transaction=False) as pipe:
            for ticket in tickets.values():
                pipe.hget(f"tix:q:{{{event_id}}}:t:{ticket}", "seq")
            return {index: int(seq or 0) for index, seq in zip(tickets, pipe.execute(), strict=True)}
    finally:
        client.close()


def _serving(redis_url: str, event_id: int) -> int:
    import redis

    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        return int(client.get(f"tix:q:{{{event_id}}}:serving") or 0)
    finally:
        client.close()


@dataclass
class _Rounds:
    lasts: list[float] = field(default_factory=list)  # per step, the last due watcher's delay
    everyone: list[float] = field(default_factory=list)  # every due watcher's delay
    due: list[int] = field(default_factory=list)  # per step, watchers whose shown place changed
    others_heard: list[int] = field(default_factory=list)  # per step, watchers that heard without being due
    watching: int = 0
    missed: int = 0
    missed_kinds: dict[str, int] = field(default_factory=dict)  # what a missed watcher had been shown instead


_LAG_BUCKET = re.compile(r'^tix_event_loop_lag_seconds_bucket\{(?=[^}]*service="queue")[^}]*le="([^"]+)"[^}]*\} (\S+)$')


def _loop_lag(metrics_port: int) -> dict[float, float]:
    """The queue server's event-loop lag histogram (cumulative counts by upper bound), from its /metrics."""
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10) as reply:
        lines = reply.read().decode().splitlines()
    counts: dict[float, float] = {}
    for line in lines:
        match = _LAG_BUCKET.match(line)
        if match:
            bound = float(match.group(1))
            counts[bound] = counts.get(bound, 0.0) + float(match.group(2))
    return counts


def _bucket_p99(before: dict[float, float], after: dict[float, float]) -> float | None:
    """The upper bound of the bucket holding the 99th percentile of what was observed between the two reads."""
    deltas = sorted((bound, after.get(bound, 0.0) - before.get(bound, 0.0)) for bound in after)
    total = deltas[-1][1] if deltas else 0.0
    if total <= 0:
        return None
    return next(bound for bound, count in deltas if count >= 0.99 * total)


def _rounds(ask: Any, redis_url: str, event_id: int, rounds: int) -> _Rounds:
    """Free slots ``rounds`` times; per round the last due watcher's delay, and every due watcher's delay."""
    out = _Rounds()
    for _ in range(rounds):
        time.sleep(1.0)
        before = _serving(redis_url, event_id)
        since = _free_slots(redis_url, event_id, _FREED_PER_ROUND)
        after = before
        deadline = time.monotonic() + 10
        while after < before + _FREED_PER_ROUND and time.monotonic() < deadline:
            time.sleep(0.005)
            after = _serving(redis_url, event_id)
        replies = ask("round", (since, before, after, 15.0))
        delays = [d for reply in replies for d in reply["delays"]]
        due = sum(reply["due"] for reply in replies)
        out.watching = max(out.watching, sum(reply["watching"] for reply in replies))
        out.due.append(due)
        out.others_heard.append(sum(reply["others_heard"] for reply in replies))
        out.missed += due - len(delays)
        for reply in replies:
            for kind, n in reply.get("missed", {}).items():
                out.missed_kinds[kind] = out.missed_kinds.get(kind, 0) + n
        if delays:
            out.lasts.append(max(delays))
            out.everyone += delays
    return out


def run_queue(args: argparse.Namespace, stack: BenchStack, report: Report) -> None:
    stages, sse_count, joins, rounds = queue_size(args)
    shoppers = 50
    event_id = asyncio.run(_create_queue_event(stack.libpq_url, shoppers))
    port = free_port()
    env = stack.booking_env(workers=args.queue_workers, db_pool_size=4)
    metrics_port = free_port()
    env.update({"TIX_PORT": str(port), "TIX_METRICS_PORT": str(metrics_port), "TIX_HEARTBEAT_SECONDS": "600",
                "TIX_PRESENCE_GRACE_SECONDS": "600", "TIX_TICK_SECONDS": "0.5",
                "TIX_MAX_CONCURRENT_STREAMS": "100000"})
    server, log = stack._serve("queue", port, env)
    target = f"127.0.0.1:{port}"
    procs = 1 if args.smoke else args.queue_client_procs
    clients = _Clients(procs, target, event_id)
    probe: _HealthProbe | None = None
    print(f"waiting room: event {event_id}, queue server {args.queue_workers} process(es) on {target}, "
          f"{procs} client processes; stages {stages}, {sse_count} SSE watchers, {rounds} rounds each", flush=True)
    try:
        # Shoppers first (they fill the cap), then the measured joins beside the echo.
        per = -(-shoppers // procs)
        clients.ask("unary", [("join", joins + i * per, per, 10) for i in range(procs)])
        time.sleep(1.5)
        concurrency = 25 if not args.smoke else 4
        echo_calls = max(2000, joins // 2) if not args.smoke else 200
        share = -(-echo_calls // procs)
        echo = clients.ask("unary", [("echo", 0, share, concurrency) for _ in range(procs)])
        share = -(-joins // procs)
        joined = clients.ask("unary", [("join", i * share, min(share, joins - i * share), concurrency)
                                       for i in range(procs)])
        echo_rate = sum(len(r["latencies"]) for r in echo) / max(r["seconds"] for r in echo)
        join_rate = sum(len(r["latencies"]) for r in joined) / max(r["seconds"] for r in joined)
        join_latencies = [x for r in joined for x in r["latencies"]]
        echo_latencies = [x for r in echo for x in r["latencies"]]
        report.add(f"queue: JoinQueue/s ({procs * concurrency} concurrent)", _fmt_rate(join_rate),
                   f"gRPC health echo {_fmt_rate(echo_rate)}", _ratio(join_rate, echo_rate))
        report.add("queue: JoinQueue latency p50 / p99",
                   f"{_ms(percentile(join_latencies, 50))} / {_ms(percentile(join_latencies, 99))}",
                   f"echo {_ms(percentile(echo_latencies, 50))} / {_ms(percentile(echo_latencies, 99))}")
        errors = sum(r["errors"] for r in joined)
        if errors:
            report.notes.append(f"queue: {errors} joins failed")
        tickets: dict[int, str] = {}
        for reply in joined:
            tickets.update(reply["tickets"])

        sequences = _sequences(stack.redis_url, event_id, tickets)
        pids = _server_pids(server.pid)
        probe = _HealthProbe(target)
        time.sleep(1.0)
        idle_health = probe.since(time.monotonic() - 1.0)
        baseline_rss = _rss(pids)
        opened = 0
        for stage in stages:
            fans = {i: (tickets[i], sequences[i]) for i in range(opened, stage) if i in tickets}
            stage_started = time.monotonic()
            connects = clients.ask("open", _split(fans, procs))
            seconds = max(c["seconds"] for c in connects)
            connected = sum(c["connected"] for c in connects)
            failed = sum(c["failed"] for c in connects)
            opened = stage
            rss = _rss(pids)
            report.add(f"queue: {stage:,} watchers: {len(fans):,} new streams connected",
                       f"{connected:,} in {seconds:.1f} s ({_fmt_rate(connected / max(seconds, 1e-9))})",
                       f"{failed} failed" if failed else "")
            if failed:
                codes: dict[str, int] = {}
                for c in connects:
                    for code, n in c["errors"].items():
                        codes[code] = codes.get(code, 0) + n
                report.notes.append(f"queue: {stage:,} watchers: streams ended by the client's error, by code: {codes}")
            report.add(f"queue: {stage:,} watchers: server memory per stream",
                       f"{(rss - baseline_rss) / max(stage, 1) / 1024:,.1f} KiB",
                       f"server RSS {rss / 2**20:,.0f} MiB, idle {baseline_rss / 2**20:,.0f} MiB")
            rounds_started = time.monotonic()
            lag_before = _loop_lag(metrics_port)
            measured = _rounds(clients.ask_all, stack.redis_url, event_id, rounds)
            loop_lag = _bucket_p99(lag_before, _loop_lag(metrics_port))
            health = probe.since(stage_started)
            stepping = probe.since(rounds_started)
            _report_rounds(report, f"{stage:,} watchers", measured, rounds)
            report.add(f"queue: {stage:,} watchers: health check p99 / max, connects and steps",
                       f"{_ms(percentile(health, 99))} / {_ms(max(health))}",
                       f"idle server p99 {_ms(percentile(idle_health, 99))}",
                       _ratio(percentile(health, 99), percentile(idle_health, 99)))
            report.add(f"queue: {stage:,} watchers: health check p99 / max during the steps only",
                       f"{_ms(percentile(stepping, 99))} / {_ms(max(stepping))}",
                       f"idle server p99 {_ms(percentile(idle_health, 99))}",
                       _ratio(percentile(stepping, 99), percentile(idle_health, 99)))
            report.add(f"queue: {stage:,} watchers: the server's event-loop lag during the steps, p99",
                       f"<= {loop_lag * 1000:g} ms" if loop_lag is not None else "not exported",
                       "tix_event_loop_lag_seconds (a 100 ms timer, histogram buckets)")
        clients.ask_all("close")
        report.notes.append(
            f"queue: {args.queue_workers} queue process(es), {procs} gRPC client processes ({_CHANNELS_PER_PROC} "
            f"connections each); {_cpu_note()}; rounds free {_FREED_PER_ROUND} slots each (every watcher's position "
            "changes, and the watchers whose shown place changes are due a message); delays are measured from the moment the bench wrote the frees on the admission-ends stream to the message showing the new place"
        )
        _sse_stage(args, stack, report, port, event_id, tickets, sequences, opened, sse_count, rounds, procs)
    finally:
        if probe is not None:
            probe.close()
        clients.close()
        stop_process(server, timeout=30)
        log.close()


def _sse_stage(args: argparse.Namespace, stack: BenchStack, report: Report, port: int, event_id: int,
               tickets: dict[int, str], sequences: dict[int, int], first: int, count: int, rounds: int,
               procs: int) -> None:
    from bench.envoy_edge import start_edge_for
    from tix_dev.tokens import TokenSigner

    if count <= 0:
        return
    try:
        edge = start_edge_for(stack.work_dir, "queue", port)
    except Exception as error:  # noqa: BLE001 - report and go on
        report.notes.append(f"queue: SSE through Envoy skipped: the edge did not start ({error})")
        return
    sse: _SseClients | None = None
    try:
        signer = TokenSigner(Path(edge.private_key_path))
        fans = {
            i: (f"/v1/events/{event_id}/queue/{tickets[i]}:watch", signer.sign(_user(i)), sequences[i])
            for i in range(first, first + count) if i in tickets
        }
        sse = _SseClients(max(1, procs // 2), edge.listen_port)
        connects = sse.ask("open", _split(fans, max(1, procs // 2)))
        connected = sum(c["connected"] for c in connects)
        statuses: dict[int, int] = {}
        for c in connects:
            for status, n in c["statuses"].items():
                statuses[status] = statuses.get(status, 0) + n
        report.add(f"queue: {count:,} SSE watchers through Envoy connected",
                   f"{connected:,} in {max(c['seconds'] for c in connects):.1f} s",
                   f"HTTP statuses {statuses}")
        measured = _rounds(sse.ask_all, stack.redis_url, event_id, rounds)
        _report_rounds(report, f"{count:,} SSE watchers", measured, rounds)
    finally:
        if sse is not None:
            sse.close()
        edge.stop()


def _report_rounds(report: Report, label: str, measured: _Rounds, rounds: int) -> None:
    if measured.lasts:
        report.add(f"queue: {label}: slot freed -> last due watcher p50 / p99 ({rounds} steps)",
                   f"{_ms(statistics.median(measured.lasts))} / {_ms(percentile(measured.lasts, 99))}",
                   f"every due watcher p50 {_ms(percentile(measured.everyone, 50))}, "
                   f"p99 {_ms(percentile(measured.everyone, 99))}")
    report.add(f"queue: {label}: watchers due a new place per step (median)",
               f"{statistics.median(measured.due):,.0f} of {measured.watching:,}",
               f"others that heard something (estimate refresh) {statistics.median(measured.others_heard):,.0f}")
    if measured.missed:
        report.notes.append(f"queue: {label}: {measured.missed} due watcher-rounds were not told within 15 s "
                            f"(of {sum(measured.due)} due); shown instead: {measured.missed_kinds}")


def _cpu_note() -> str:
    return f"{os.cpu_count()} CPUs shared by the queue server, Redis, Envoy and the client processes"
