"""Prometheus metrics: the RPC metrics every service shares, and the endpoint that exposes them.

With several worker processes, prometheus_client's multiprocess mode aggregates their samples; the parent process
serves the endpoint.
"""

from __future__ import annotations

import asyncio
import os

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, multiprocess, start_http_server

RPC_HANDLED = Counter(
    "tix_grpc_server_handled_total", "RPCs completed, by method and gRPC code.", ["service", "method", "code"]
)
RPC_LATENCY = Histogram(
    "tix_grpc_server_handling_seconds",
    "Time to handle an RPC (unary) or to open a stream.",
    ["service", "method"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
RPC_IN_FLIGHT = Gauge(
    "tix_grpc_server_in_flight", "RPCs and streams being served.", ["service", "method"], multiprocess_mode="livesum"
)


EVENT_LOOP_LAG = Histogram(
    "tix_event_loop_lag_seconds",
    "How late a timer fires on the service's event loop: work that holds the loop delays every RPC of the process.",
    ["service"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
# How often the event loop's lag is sampled.
LAG_SAMPLE_SECONDS = 0.1


async def sample_event_loop_lag(service: str, interval: float = LAG_SAMPLE_SECONDS) -> None:
    """Forever: sleep ``interval`` and record how much later than asked the loop woke this task."""
    loop = asyncio.get_running_loop()
    lag = EVENT_LOOP_LAG.labels(service)
    while True:
        asked = loop.time() + interval
        await asyncio.sleep(interval)
        lag.observe(max(0.0, loop.time() - asked))


def start_metrics_server(port: int, host: str = "127.0.0.1") -> int | None:
    """Serve /metrics on ``port`` (0 disables it); returns the bound port."""
    if port <= 0:
        return None
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        server, _ = start_http_server(port, addr=host, registry=registry)
    else:
        server, _ = start_http_server(port, addr=host)
    return server.server_port
