"""The private stores and processes one benchmark run needs: a database, a redis-server, localstripe, the booking
server. Everything is started on loopback, on free ports, and torn down at the end (even on Ctrl-C)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tix.db import drop_database, ensure_database, libpq_url
from tix.localstripe_launcher import start_localstripe, stop_localstripe
from tix.processes import stop_process
from tix.settings import REPO_ROOT

PG_BASE = os.environ.get("TIX_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432")
STRIPE_API_KEY = "sk_test_tix_local"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_port(port: int, process: subprocess.Popen, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with code {process.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on port {port} within {timeout:.0f}s")


@dataclass
class BenchStack:
    database_url: str = ""
    redis_url: str = ""
    stripe_api_base: str = ""
    booking_port: int = 0
    work_dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="tix-bench-")))
    _processes: list[subprocess.Popen] = field(default_factory=list)
    _redis: subprocess.Popen | None = None
    _localstripe: subprocess.Popen | None = None
    _booking: subprocess.Popen | None = None

    @property
    def libpq_url(self) -> str:
        return libpq_url(self.database_url)

    def start_stores(self) -> None:
        """A fresh migrated database, a private redis-server and a private localstripe."""
        from tix.migrate import upgrade

        self.database_url = f"{PG_BASE}/tix_bench_{os.getpid()}_{uuid.uuid4().hex[:6]}"
        asyncio.run(ensure_database(self.database_url))
        upgrade(self.database_url)

        redis_port = free_port()
        self._redis = subprocess.Popen(
            ["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _wait_for_port(redis_port, self._redis, "redis-server")
        self.redis_url = f"redis://127.0.0.1:{redis_port}/0"

        stripe_port = free_port()
        self._localstripe = start_localstripe(stripe_port)
        self.stripe_api_base = f"http://127.0.0.1:{stripe_port}"

    def booking_env(self, *, workers: int, db_pool_size: int) -> dict[str, str]:
        return {
            **os.environ,
            "TIX_ENVIRONMENT": "test",
            "TIX_DATABASE_URL": self.database_url,
            "TIX_REDIS_URL": self.redis_url,
            "TIX_STRIPE_API_BASE": self.stripe_api_base,
            "TIX_STRIPE_API_KEY": STRIPE_API_KEY,
            # Stripe pacing lifted for the run: we measure the service, not Stripe's test-mode quota.
            "TIX_STRIPE_REQUESTS_PER_SECOND": "1000000",
            "TIX_STRIPE_MAX_BACKLOG": "1000000",
            "TIX_VAR_DIR": str(self.work_dir / "var"),
            "TIX_LOG_LEVEL": "WARNING",
            "TIX_WORKERS": str(workers),
            "TIX_DB_POOL_SIZE": str(db_pool_size),
            "TIX_DB_MAX_OVERFLOW": "2",
            "TIX_SWEEPER_INTERVAL_SECONDS": "3600",
            "PYTHONUNBUFFERED": "1",
        }

    def start_booking_server(self, *, workers: int = 2, db_pool_size: int = 12) -> int:
        """``python -m tix.cli serve booking`` on a free port; returns the port once gRPC health says SERVING."""
        self.booking_port = free_port()
        env = self.booking_env(workers=workers, db_pool_size=db_pool_size)
        env["TIX_PORT"] = str(self.booking_port)
        env["TIX_METRICS_PORT"] = str(free_port())
        log_path = self.work_dir / "booking.log"
        self._booking_log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        self._booking = subprocess.Popen(
            [sys.executable, "-m", "tix.cli", "serve", "booking"],
            cwd=REPO_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._booking_log,
            stderr=subprocess.STDOUT,
        )
        try:
            _wait_for_port(self.booking_port, self._booking, f"booking server (log: {log_path})", timeout=60)
            asyncio.run(_wait_serving(self.booking_port))
        except BaseException:
            stop_process(self._booking)
            raise
        return self.booking_port

    def booking_log_tail(self, lines: int = 30) -> str:
        path = self.work_dir / "booking.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    def stop_booking_server(self) -> None:
        stop_process(self._booking, timeout=30)
        self._booking = None
        if getattr(self, "_booking_log", None) is not None:
            self._booking_log.close()

    def stop(self, *, keep_database: bool = False) -> None:
        """Stop every process; drop the database and the work directory (server log) unless asked to keep them."""
        self.stop_booking_server()
        if self._localstripe is not None:
            stop_localstripe(self._localstripe)
        stop_process(self._redis)
        if keep_database:
            print(f"kept database {self.database_url} and work directory {self.work_dir}", file=sys.stderr)
            return
        if self.database_url:
            asyncio.run(drop_database(self.database_url))
        shutil.rmtree(self.work_dir, ignore_errors=True)


async def _wait_serving(port: int, timeout: float = 30.0) -> None:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    deadline = time.monotonic() + timeout
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while True:
            try:
                reply = await stub.Check(health_pb2.HealthCheckRequest(service="tix.v1.BookingService"), timeout=2)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.aio.AioRpcError:
                if time.monotonic() > deadline:
                    raise
            await asyncio.sleep(0.1)


@contextlib.contextmanager
def bench_stack(*, keep_database: bool = False) -> Iterator[BenchStack]:
    stack = BenchStack()
    try:
        stack.start_stores()
        yield stack
    finally:
        stack.stop(keep_database=keep_database)
