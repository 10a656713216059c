"""The Envoy edge in front of the bench's booking server: the bootstrap ``tix_dev.edge`` renders for ``make up``, with
the bench's ports and JWKS, and its rate budgets switched off (``EdgeLimits.unlimited()``: every client of the bench
comes from one address, and a limited call would be a 429 RESOURCE_EXHAUSTED counted as a refusal); the size
limits stay. Envoy runs as a child of the bench and logs to its work directory.
"""

from __future__ import annotations

import json
import re
import subprocess
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import yaml

from tix.services import SERVICES
from tix_dev.edge import EdgeLimits, bootstrap, local_target, render_config
from tix_dev.processes import stop_process
from tix_dev.readiness import NotReady, free_port, http_status, wait_until
from tix_dev.tokens import ensure_dev_keys, ensure_dev_stream_jwks
from tix_dev.up import envoy_binary

# The rate limiters' stats, to report that they limited nothing.
RATE_LIMIT_STATS = ("edge_rate_limit", "client_rate_limit")


@dataclass
class BenchEdge:
    process: subprocess.Popen[bytes]
    listen_port: int
    admin_port: int
    var_dir: Path  # holds the dev signing key (jwt-private.pem) and jwks.json
    log_path: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.listen_port}"

    @property
    def private_key_path(self) -> Path:
        return ensure_dev_keys(self.var_dir)[0]

    def stop(self) -> None:
        stop_process(self.process, timeout=15)

    def log_tail(self, lines: int = 20) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def upstream_spread(self, booking_port: int) -> dict[int, int]:
        """Established connections to the booking port, by the server process (pid) that accepted each (one of
        them is Envoy's health check). ``ss`` from iproute2; empty when it is missing."""
        try:
            out = subprocess.run(
                ["ss", "-tnpH", "state", "established", f"( sport = :{booking_port} )"],
                capture_output=True, text=True, timeout=10, check=False,
            ).stdout
        except (OSError, subprocess.SubprocessError):
            return {}
        spread: dict[int, int] = {}
        for pid in re.findall(r"pid=(\d+)", out):
            spread[int(pid)] = spread.get(int(pid), 0) + 1
        return spread

    def stats(self, *prefixes: str) -> dict[str, int]:
        """Counters of Envoy's admin /stats whose names start with one of ``prefixes``."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.admin_port}/stats?format=json", timeout=5) as reply:
            stats = json.load(reply)["stats"]
        return {
            s["name"]: int(s["value"]) for s in stats
            if "value" in s and s["name"].startswith(prefixes)
        }


def start_edge(work_dir: Path, booking_port: int, *, upstream_streams: int = 0, timeout: float = 60.0) -> BenchEdge:
    """Render the edge for ``booking_port`` (other services on closed ports), start Envoy and wait until it is
    ready and its booking cluster is healthy.

    ``upstream_streams`` > 0 caps concurrent streams per upstream HTTP/2 connection to booking, so Envoy opens
    more connections (and SO_REUSEPORT can spread them over the server's workers); 0 keeps the edge's config, one
    connection per Envoy worker thread."""
    return start_edge_for(work_dir, "booking", booking_port, upstream_streams=upstream_streams, timeout=timeout)


def start_edge_for(
    work_dir: Path, service: str, port: int, *, read_port: int = 0, upstream_streams: int = 0, timeout: float = 60.0
) -> BenchEdge:
    """The edge in front of one service on ``port`` (others on closed ports; the event service's HTTP listener on
    ``read_port`` when given), ready and with that service's cluster healthy."""
    var_dir = work_dir / f"edge-{service}"
    _, jwks_path = ensure_dev_keys(var_dir)
    listen_port, admin_port = free_port(), free_port()
    closed = {name: free_port() for name in SERVICES if name != service}  # nothing listens: health checks fail
    target = local_target(
        listen_port=listen_port,
        admin_port=admin_port,
        service_ports={**closed, service: port},
        jwks_path=jwks_path,
        stream_jwks_path=ensure_dev_stream_jwks(var_dir),
        limits=EdgeLimits.unlimited(),
        read_port=read_port,
    )
    config_path = var_dir / "envoy.yaml"
    if upstream_streams > 0:
        config = bootstrap(target)
        for cluster in config["static_resources"]["clusters"]:
            if cluster["name"] == service:
                (options,) = cluster["typed_extension_protocol_options"].values()
                http2 = options["explicit_http_config"]["http2_protocol_options"]
                http2["max_concurrent_streams"] = upstream_streams
        config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    else:
        config_path.write_text(render_config(target))
    log_path = work_dir / f"envoy-{service}.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [envoy_binary(), "-c", str(config_path), "--log-level", "warn", "--disable-hot-restart"],
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    edge = BenchEdge(process, listen_port, admin_port, var_dir, log_path)
    try:
        _wait_ready(edge, service, port, timeout)
    except BaseException:
        edge.stop()
        raise
    return edge


def _wait_ready(edge: BenchEdge, service: str, port: int, timeout: float) -> None:
    admin = f"http://127.0.0.1:{edge.admin_port}"
    healthy = f"{service}::127.0.0.1:{port}::health_flags::healthy"

    def booking_healthy() -> bool:
        if http_status(f"{admin}/ready") != 200:
            return False
        try:
            with urllib.request.urlopen(f"{admin}/clusters", timeout=2) as reply:
                return healthy in reply.read().decode(errors="replace")
        except OSError:  # URLError and connection errors: not yet
            return False

    try:
        wait_until(booking_healthy, what=f"envoy (and {service} healthy behind it)", timeout=timeout,
                   process=edge.process, interval=0.1)
    except NotReady as error:
        raise RuntimeError(f"{error}:\n{edge.log_tail()}") from None
