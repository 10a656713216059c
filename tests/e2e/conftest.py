"""The whole mesh for end-to-end tests: localstripe, the services as `tix serve` processes and the real Envoy, all on
free ports, against this session's private database and redis-server (tests/conftest.py)."""

from __future__ import annotations

import contextlib
import json
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import redis.asyncio as aioredis
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.factories import TestEvent, create_event, empty_catalog
from tix.catalog import CATALOG_GENERATION_KEY
from tix.services import SERVICES
from tix_dev.edge import EdgeLimits, render_config
from tix_dev.processes import stop_process
from tix_dev.readiness import free_port, http_ok, wait_until
from tix_dev.tokens import dev_stream_jwks_path, issue_token
from tix_dev.up import Mesh, MeshPorts, envoy_binary


# Package scope: the mesh (with its sweeper and outbox indexer) stops when the e2e tests end, instead of querying
# the shared test database under the integration tests that follow.
@pytest.fixture(scope="package")
def mesh(settings_env: dict[str, str]) -> Iterator[Mesh]:
    ports = MeshPorts(
        edge=free_port(),
        admin=free_port(),
        stripe=free_port(),
        services={name: free_port() for name in SERVICES},
        # No metrics listeners: the ports would only be more to find free.
        metrics=dict.fromkeys(SERVICES, 0),
        http={"event": free_port()},
    )
    env = {
        **settings_env,
        # Four services share the machine's 100 PostgreSQL connections with everyone else's tests.
        "TIX_DB_POOL_SIZE": "2",
        "TIX_DB_MAX_OVERFLOW": "2",
        "TIX_GRACE_SECONDS": "1",
        "TIX_LOG_LEVEL": "INFO",
        # Heartbeats on quiet seat watches every second, so the tests see them without waiting.
        "TIX_WATCH_HEARTBEAT_SECONDS": "1",
        # Tests reuse event ids and start the seat-map versions again (TRUNCATE ... RESTART IDENTITY, Redis flushed):
        # an event's feed kept in memory after its watchers left would remember the previous test's changes.
        "TIX_WATCH_LINGER_SECONDS": "0",
    }
    # Every test client comes from 127.0.0.1: the shared edge has its rate budgets off, and the tests of the limits
    # start an edge of their own with the budgets they mean to exhaust (second_edge).
    running = Mesh(var_dir=Path(settings_env["TIX_VAR_DIR"]), ports=ports, env=env, edge_limits=EdgeLimits.unlimited())
    running.start()
    try:
        running.wait_ready(timeout=60)
        yield running
    finally:
        running.stop(grace=10)


@pytest.fixture
async def db(engine: AsyncEngine) -> AsyncEngine:
    """An empty catalog whose ids never repeat: the mesh's services outlive each test and keep state per event id
    (the allocator's seats in Redis, the queue's admission lease, caches), and production never reuses an id."""
    return await empty_catalog(engine, restart_identity=False)


@pytest.fixture(scope="package")
def edge_url(mesh: Mesh) -> str:
    return mesh.edge_url


@pytest.fixture(scope="package")
def token(mesh: Mesh) -> str:
    return issue_token(mesh.var_dir, "e2e-alice")


@pytest.fixture
async def http(edge_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=edge_url, timeout=10) as client:
        yield client


async def forget_catalog(redis_url: str) -> None:
    """Empty Redis and start a catalog generation never used before: the tests recreate event ids (the catalog is
    truncated between tests), and the event service also keeps rendered pages and maps in process memory, keyed by
    the catalog generation, as after a reseed in production."""
    client = aioredis.Redis.from_url(redis_url)
    try:
        await client.flushdb()
        await client.set(CATALOG_GENERATION_KEY, time.time_ns())
    finally:
        await client.aclose()


@pytest.fixture
async def catalog_event(db, redis_url: str) -> TestEvent:
    """A fresh event on an empty catalog; no service serves a cached older event 1."""
    await forget_catalog(redis_url)
    return await create_event(db)


def access_log_entries(mesh: Mesh, path: str, timeout: float = 5.0) -> list[dict]:
    """Envoy's JSON access log lines for ``path`` (the log is flushed about once a second)."""
    deadline = time.monotonic() + timeout
    log_path = mesh.log_dir / "envoy.log"
    while True:
        entries = []
        for line in log_path.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                entry = json.loads(line)
                if entry.get("path") == path:
                    entries.append(entry)
        if entries or time.monotonic() > deadline:
            return entries
        time.sleep(0.2)


@contextlib.contextmanager
def second_edge(mesh: Mesh, work_dir: Path, limits: EdgeLimits) -> Iterator[str]:
    """Another Envoy, rendered like the mesh's but with ``limits``, in front of the same services; its base URL."""
    port, admin = free_port(), free_port()
    config = work_dir / f"envoy-{port}.yaml"
    config.write_text(
        render_config(
            "local",
            listen_port=port,
            admin_port=admin,
            service_ports=mesh.ports.services,
            jwks_path=mesh.var_dir / "jwks.json",
            stream_jwks_path=dev_stream_jwks_path(mesh.var_dir),
            limits=limits,
        )
    )
    envoy = subprocess.Popen(
        [envoy_binary(), "-c", str(config), "--log-level", "error", "--disable-hot-restart"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(lambda: http_ok(f"http://127.0.0.1:{admin}/ready"), what="the second edge", timeout=30)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_process(envoy, timeout=10)
