"""``python -m bench search``: event search at a million events, every query kind, beside the gRPC health echo and
the naive ``LIKE '%…%'`` search measured in the same run.

The catalog is built once and reused: its own database, named by seed and size (``tix_bench_search_<events>_s<seed>``,
kept between runs; ``--rebuild`` starts it over), seeded with ``tix seed`` and vacuumed. Then, against a search server
(``tix serve search``, cache off):

1. one client at a time, each query kind alone: p50/p99 per kind (targets: p99 <= 20 ms, typo <= 40 ms);
2. 32 concurrent clients on the whole mix, over gRPC and the same through Envoy (REST/JSON): p50/p99 per kind and
   queries/s, beside the health echo's rate at the same concurrency (targets: p99 <= 100 ms per kind, mix >= 0.2x
   echo);
3. suggestions as a fan types (``SuggestEvents``), one client (target p99 <= 20 ms);
4. the naive search: ``LIKE '%word%'`` over the same documents, soonest first;
5. the cache on (the service's default lifetime) with a Zipf-distributed mix through Envoy: from a cold cache (a
   restart), then the same stream continued, as a running service meets it (target >= 1,000 queries/s).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import psycopg
from google.protobuf import json_format
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bench.envoy_edge import start_edge_for
from bench.load import percentile
from bench.report import Report, _fmt_rate, _ms, _ratio
from search_svc.settings import SearchSettings
from tix.db import libpq_url
from tix_dev.processes import RedisServer, stop_process
from tix_dev.readiness import free_port, grpc_serving, wait_until
from tix_dev.settings import REPO_ROOT
from tixpb.v1 import search_pb2, search_pb2_grpc

PG_BASE = os.environ.get("TIX_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432")
NEW_YORK = (40.7128, -74.0060)
GENRES = ("rock", "jazz", "pop", "comedy", "soccer", "basketball", "musical", "country", "hockey", "ballet")
KINDS = (
    "empty", "category", "word", "typo", "words", "word + city", "genre + 30 days", "radius", "radius + word",
    "performer", "venue", "city", "deep page",
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("search (python -m bench search)")
    group.add_argument("--search-events", type=int, default=1_000_000, help="events in the search catalog")
    group.add_argument("--search-seed", type=int, default=42, help="seed of the search catalog")
    group.add_argument("--search-rebuild", action="store_true", help="rebuild the search catalog database")
    group.add_argument("--search-workers", type=int, default=2, help="search server processes (TIX_WORKERS)")
    group.add_argument("--search-seconds", type=float, default=20.0, help="duration of each concurrent run")
    group.add_argument("--search-single", type=int, default=60, help="requests per kind with one client")
    group.add_argument("--search-clients", type=int, default=32, help="concurrent clients")


@dataclass
class Timings:
    by_kind: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: int = 0
    seconds: float = 0.0

    @property
    def count(self) -> int:
        return sum(len(v) for v in self.by_kind.values())

    @property
    def rate(self) -> float:
        return self.count / self.seconds if self.seconds else 0.0

    def all(self) -> list[float]:
        return [t for v in self.by_kind.values() for t in v]


# --- the catalog -------------------------------------------------------------------------------------------------


def catalog_url(events: int, seed: int) -> str:
    return f"{PG_BASE}/tix_bench_search_{events}_s{seed}"


def ensure_catalog(events: int, seed: int, rebuild: bool) -> str:
    """The seeded catalog of this size and seed, built once (a failed or partial build is started over)."""
    from tix.db import drop_database, ensure_database
    from tix.migrate import upgrade
    from tix_dev.seed import seed_catalog

    url = catalog_url(events, seed)
    if not rebuild:
        try:
            with psycopg.connect(libpq_url(url)) as conn:
                have = conn.execute("SELECT count(*) FROM search_documents").fetchone()[0]
            if have == events:
                upgrade(url)  # newer migrations since it was built
                print(f"search catalog: reusing {url.rsplit('/', 1)[1]} ({events:,} events)", flush=True)
                return url
        except psycopg.Error:
            pass
    asyncio.run(drop_database(url))
    asyncio.run(ensure_database(url))
    upgrade(url)
    started = time.perf_counter()
    print(f"search catalog: seeding {events:,} events (seed {seed}) into {url.rsplit('/', 1)[1]}", flush=True)
    report = asyncio.run(seed_catalog(url, events=events, seed=seed, progress=sys.stderr.isatty()))
    with psycopg.connect(libpq_url(url), autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE search_documents, search_terms, venues, performers")
    print(f"search catalog: built in {time.perf_counter() - started:.0f}s ({report.summary()})", flush=True)
    return url


# --- the query mix -----------------------------------------------------------------------------------------------


def _stamp(moment: datetime) -> Any:
    from google.protobuf.timestamp_pb2 import Timestamp

    out = Timestamp()
    out.FromDatetime(moment)
    return out


def build_queries(url: str, rng: random.Random, per_kind: int) -> dict[str, list[search_pb2.SearchEventsRequest]]:
    with psycopg.connect(libpq_url(url)) as conn:
        performers = [row[0] for row in conn.execute("SELECT name FROM performers ORDER BY performer_id")]
        venues = [row[0] for row in conn.execute("SELECT name FROM venues ORDER BY venue_id")]
        cities = [row[0] for row in conn.execute("SELECT DISTINCT city FROM venues ORDER BY city")]
    words = sorted({w for name in performers for w in name.lower().split() if len(w) > 4 and w.isalpha()})
    now = datetime.now(UTC)
    request = search_pb2.SearchEventsRequest

    def typo(word: str) -> str:
        i = rng.randrange(1, len(word) - 1)
        return word[:i] + word[i + 1:]

    makers: dict[str, Callable[[], search_pb2.SearchEventsRequest]] = {
        "empty": lambda: request(),
        "category": lambda: request(category=rng.randint(1, 5)),  # type: ignore[arg-type]
        "word": lambda: request(query=rng.choice(words)),
        "typo": lambda: request(query=typo(rng.choice(words))),
        "words": lambda: request(query=rng.choice(performers)),
        "word + city": lambda: request(query=rng.choice(words), city=rng.choice(cities)),
        "genre + 30 days": lambda: request(
            query=rng.choice(GENRES), start_time=_stamp(now), end_time=_stamp(now + timedelta(days=30))
        ),
        "radius": lambda: request(latitude=NEW_YORK[0], longitude=NEW_YORK[1], radius_km=50),
        "radius + word": lambda: request(
            query=rng.choice(GENRES), latitude=NEW_YORK[0], longitude=NEW_YORK[1], radius_km=50
        ),
        "performer": lambda: request(performer=rng.choice(performers)),
        "venue": lambda: request(venue=rng.choice(venues)),
        "city": lambda: request(city=rng.choice(cities)),
    }
    queries = {kind: [make() for _ in range(per_kind)] for kind, make in makers.items()}
    queries["deep page"] = []
    return queries


async def deep_pages(port: int, queries: dict[str, list[search_pb2.SearchEventsRequest]], count: int) -> None:
    """Page 10 (results 181-200) of soonest-first and category lists, by following page tokens before the clock."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = search_pb2_grpc.SearchServiceStub(channel)
        for i in range(count):
            first = search_pb2.SearchEventsRequest(category=1 + i % 5) if i % 2 else search_pb2.SearchEventsRequest()
            page, request = None, first
            for _ in range(9):
                page = await stub.SearchEvents(request)
                if not page.next_page_token:
                    break
                request = search_pb2.SearchEventsRequest()
                request.CopyFrom(first)
                request.page_token = page.next_page_token
            queries["deep page"].append(request)


def as_path(request: search_pb2.SearchEventsRequest) -> str:
    """The same request as the edge's REST route: query parameters in proto3 JSON names."""
    fields = json_format.MessageToDict(request)
    return "/v1/events:search?" + urllib.parse.urlencode({k: str(v) for k, v in fields.items()})


# --- load ----------------------------------------------------------------------------------------------------------


async def grpc_load(
    port: int, work: list[tuple[str, Any]], clients: int, seconds: float, call: str = "search"
) -> Timings:
    """``clients`` concurrent callers cycling through ``work`` (kind, request) for ``seconds`` (or once through
    ``work`` when seconds is 0)."""
    timings = Timings()
    channels = [grpc.aio.insecure_channel(f"127.0.0.1:{port}") for _ in range(min(clients, 8))]
    deadline = time.perf_counter() + seconds if seconds else float("inf")
    position = 0

    async def client(index: int) -> None:
        nonlocal position
        channel = channels[index % len(channels)]
        search = search_pb2_grpc.SearchServiceStub(channel)
        health = health_pb2_grpc.HealthStub(channel)
        while time.perf_counter() < deadline:
            if not seconds and position >= len(work):
                return
            kind, request = work[position % len(work)]
            position += 1
            started = time.perf_counter()
            try:
                if call == "health":
                    await health.Check(health_pb2.HealthCheckRequest())  # type: ignore[attr-defined]
                elif call == "suggest":
                    await search.SuggestEvents(request)
                else:
                    await search.SearchEvents(request)
            except grpc.aio.AioRpcError:
                timings.errors += 1
                continue
            timings.by_kind[kind].append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(client(i) for i in range(clients)))
    timings.seconds = time.perf_counter() - started
    for channel in channels:
        await channel.close()
    return timings


async def http_load(base_url: str, work: list[tuple[str, str]], clients: int, seconds: float) -> Timings:
    import aiohttp

    timings = Timings()
    deadline = time.perf_counter() + seconds
    position = 0
    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(base_url, connector=connector) as session:

        async def client() -> None:
            nonlocal position
            while time.perf_counter() < deadline:
                kind, path = work[position % len(work)]
                position += 1
                started = time.perf_counter()
                async with session.get(path) as reply:
                    await reply.read()
                    if reply.status != 200:
                        timings.errors += 1
                        continue
                timings.by_kind[kind].append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(clients)))
        timings.seconds = time.perf_counter() - started
    return timings


def naive_search(url: str, words: list[str], seconds: float) -> Timings:
    """The seed's bad solution: a substring scan of every document, soonest first."""
    timings = Timings()
    deadline = time.perf_counter() + seconds
    with psycopg.connect(libpq_url(url)) as conn:
        started = time.perf_counter()
        for word in words:
            if time.perf_counter() > deadline:
                break
            t = time.perf_counter()
            conn.execute(
                "SELECT event_id FROM search_documents WHERE lower(name || ' ' || venue_name || ' ' || city)"
                " LIKE %s AND starts_at >= now() ORDER BY starts_at LIMIT 20",
                (f"%{word}%",),
            ).fetchall()
            timings.by_kind["naive"].append(time.perf_counter() - t)
        timings.seconds = time.perf_counter() - started
    return timings


# --- the server ----------------------------------------------------------------------------------------------------


def serve_search(url: str, redis_url: str, work_dir: Path, *, cache_seconds: float, workers: int) -> tuple[Any, int]:
    port = free_port()
    env = {
        **os.environ,
        "TIX_ENVIRONMENT": "test",
        "TIX_DATABASE_URL": url,
        "TIX_REDIS_URL": redis_url,
        "TIX_PORT": str(port),
        "TIX_METRICS_PORT": "0",
        "TIX_WORKERS": str(workers),
        "TIX_SEARCH_CACHE_SECONDS": str(cache_seconds),
        "TIX_INDEXER_ENABLED": "false",
        "TIX_LOG_LEVEL": "WARNING",
        "TIX_VAR_DIR": str(work_dir / "var"),
    }
    log = open(work_dir / f"search-{cache_seconds:g}.log", "wb")  # noqa: SIM115 - closed with the process
    process = subprocess.Popen(
        [sys.executable, "-m", "tix.cli", "serve", "search"], cwd=REPO_ROOT, env=env,
        stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
    )
    wait_until(lambda: grpc_serving(port, "tix.v1.SearchService"), what="search server", timeout=60,
               process=process, interval=0.1)
    return process, port


# --- the run -------------------------------------------------------------------------------------------------------


def _figures(report: Report, title: str, timings: Timings, *, target_ms: Callable[[str], float]) -> list[str]:
    missed = []
    for kind in sorted(timings.by_kind, key=lambda k: KINDS.index(k) if k in KINDS else 99):
        values = timings.by_kind[kind]
        p50, p99 = percentile(values, 50), percentile(values, 99)
        target = target_ms(kind)
        verdict = "ok" if p99 * 1000 <= target else f"MISSED (target p99 <= {target:g} ms)"
        if p99 * 1000 > target:
            missed.append(f"{title} {kind}: p99 {p99 * 1000:.1f} ms > {target:g} ms")
        rate = len(values) / timings.seconds if timings.seconds else 0
        report.add(f"{title} {kind}", f"p50 {_ms(p50)}, p99 {_ms(p99)}, {_fmt_rate(rate)}", "", verdict)
    return missed


def run_search(args: argparse.Namespace, report: Report) -> list[str]:
    """Runs the scenario; returns the targets it missed."""
    events = args.search_events
    url = ensure_catalog(events, args.search_seed, args.search_rebuild)
    rng = random.Random(args.search_seed)
    work_dir = Path(tempfile.mkdtemp(prefix="tix-bench-search-"))
    missed: list[str] = []
    redis = RedisServer().start()
    server = edge = None
    try:
        server, port = serve_search(url, redis.url, work_dir, cache_seconds=0, workers=args.search_workers)
        queries = build_queries(url, rng, max(args.search_single, 20))
        asyncio.run(deep_pages(port, queries, max(4, args.search_single // 4)))
        # Warm the server's pools and PostgreSQL's cache as a running service would be.
        warm = [(k, r) for k, rs in queries.items() for r in rs[:5]]
        asyncio.run(grpc_load(port, warm, 4, 0))

        print(f"\nsearch over {events:,} events, cache off: one client per kind", flush=True)
        single = Timings()
        for kind, requests in queries.items():
            once = asyncio.run(grpc_load(port, [(kind, r) for r in requests[: args.search_single]], 1, 0))
            single.by_kind[kind] = once.by_kind[kind]
            single.seconds += once.seconds
        missed += _figures(report, "1 client", single, target_ms=lambda k: 40.0 if k == "typo" else 20.0)

        typed = []
        for name in rng.sample(queries["words"], min(len(queries["words"]), 40)):
            text = name.query.lower()
            typed += [("suggest", search_pb2.SuggestEventsRequest(query=text[:n])) for n in (2, 3, 4, 6)]
        suggest = asyncio.run(grpc_load(port, typed, 1, 0, call="suggest"))
        suggest.seconds = suggest.seconds or 1
        missed += _figures(report, "1 client", suggest, target_ms=lambda k: 20.0)

        clients, seconds = args.search_clients, args.search_seconds
        mix = [(kind, r) for kind, requests in queries.items() for r in requests]
        rng.shuffle(mix)
        print(f"\n{clients} concurrent clients, {seconds:g}s each", flush=True)
        echo = asyncio.run(grpc_load(port, [("echo", None)], clients, seconds, call="health"))
        report.add(f"{clients} clients gRPC health echo", f"{_fmt_rate(echo.rate)}, p99 {_ms(percentile(echo.all(), 99))}")
        grpc_mix = asyncio.run(grpc_load(port, mix, clients, seconds))
        missed += _figures(report, f"{clients} clients gRPC", grpc_mix, target_ms=lambda k: 100.0)
        report.add(f"{clients} clients gRPC whole mix", f"{_fmt_rate(grpc_mix.rate)}, p50 "
                   f"{_ms(percentile(grpc_mix.all(), 50))}, p99 {_ms(percentile(grpc_mix.all(), 99))}",
                   f"echo {_fmt_rate(echo.rate)}", _ratio(grpc_mix.rate, echo.rate) + " (target >= 0.20x)")
        if grpc_mix.rate < 0.2 * echo.rate:
            missed.append(f"mix {grpc_mix.rate:.0f}/s < 0.2x echo {echo.rate:.0f}/s")

        edge = start_edge_for(work_dir, "search", port)
        http_mix = [(kind, as_path(r)) for kind, r in mix]
        through_envoy = asyncio.run(http_load(edge.base_url, http_mix, clients, seconds))
        missed += _figures(report, f"{clients} clients Envoy", through_envoy, target_ms=lambda k: 100.0)
        report.add(f"{clients} clients Envoy whole mix", f"{_fmt_rate(through_envoy.rate)}, p99 "
                   f"{_ms(percentile(through_envoy.all(), 99))}, {through_envoy.errors} errors",
                   f"gRPC {_fmt_rate(grpc_mix.rate)}", _ratio(through_envoy.rate, grpc_mix.rate))

        words = [r.query for r in queries["word"]]
        naive = naive_search(url, words, min(60.0, seconds * 2))
        ours = percentile(single.by_kind["word"], 50)
        naive_p50 = percentile(naive.all(), 50)
        report.add("naive LIKE '%word%' (1 client)", f"p50 {_ms(naive_p50)}, p99 {_ms(percentile(naive.all(), 99))}"
                   f" over {naive.count} queries", f"word p50 {_ms(ours)}",
                   f"naive takes {_ratio(naive_p50, ours)} as long")

        stop_process(server, timeout=30)
        edge.stop()
        server, port = serve_search(url, redis.url, work_dir, cache_seconds=SearchSettings().search_cache_seconds,
                                    workers=args.search_workers)
        edge = start_edge_for(work_dir, "search", port)
        # Zipf: the k-th most popular query is asked in proportion to 1/k. First from a cold cache (a restart), then
        # as a running service meets it (the same stream, continued: what the cold run cached is still there).
        popular = [path for _, path in http_mix]
        weights = [1 / (k + 1) for k in range(len(popular))]
        zipf = [("cached mix", path) for path in rng.choices(popular, weights=weights, k=40_000)]
        cold = asyncio.run(http_load(edge.base_url, zipf, clients, seconds))
        report.add(f"{clients} clients Envoy, cache on, cold (Zipf mix, first {seconds:g} s)",
                   f"{_fmt_rate(cold.rate)}, p50 {_ms(percentile(cold.all(), 50))}, p99 "
                   f"{_ms(percentile(cold.all(), 99))}", f"cache off {_fmt_rate(through_envoy.rate)}",
                   _ratio(cold.rate, through_envoy.rate))
        cached = asyncio.run(http_load(edge.base_url, zipf[cold.count + cold.errors:] or zipf, clients, seconds))
        verdict = "ok" if cached.rate >= 1000 else "MISSED (target >= 1,000/s)"
        if cached.rate < 1000:
            missed.append(f"cache on through Envoy: {cached.rate:.0f}/s < 1,000/s")
        report.add(f"{clients} clients Envoy, cache on, warm (Zipf mix, next {seconds:g} s)",
                   f"{_fmt_rate(cached.rate)}, p50 {_ms(percentile(cached.all(), 50))}, p99 "
                   f"{_ms(percentile(cached.all(), 99))}", f"cache off {_fmt_rate(through_envoy.rate)}",
                   f"{_ratio(cached.rate, through_envoy.rate)}; {verdict}")
    finally:
        if edge is not None:
            edge.stop()
        if server is not None:
            stop_process(server, timeout=30)
        redis.stop()
    report.notes.append(
        f"search: {events:,} events, {args.search_workers} server processes, clients in one process on the same "
        f"{os.cpu_count()} CPUs; catalog database {url.rsplit('/', 1)[1]} kept for the next run"
    )
    for line in missed:
        report.notes.append(f"search target missed: {line}")
    return missed
