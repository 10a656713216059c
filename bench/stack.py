"""The private stores and processes one benchmark run needs: a database, a redis-server, localstripe, the booking
server. Everything is started on loopback, on free ports, and torn down at the end (even on Ctrl-C)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from tix.db import drop_database, ensure_database, libpq_url
from tix.settings import DEVELOPMENT_STRIPE_API_KEY
from tix_dev.localstripe import start_localstripe, stop_localstripe
from tix_dev.processes import RedisServer, stop_process
from tix_dev.readiness import free_port, grpc_serving, wait_until
from tix_dev.settings import REPO_ROOT

PG_BASE = os.environ.get("TIX_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432")


@dataclass
class BenchStack:
    database_url: str = ""
    redis_url: str = ""
    stripe_api_base: str = ""
    booking_port: int = 0
    work_dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="tix-bench-")))
    _redis: RedisServer | None = None
    _localstripe: subprocess.Popen[bytes] | None = None
    _booking: subprocess.Popen[bytes] | None = None
    _booking_log: BinaryIO | None = None
    _event: subprocess.Popen[bytes] | None = None
    _event_log: BinaryIO | None = None

    @property
    def libpq_url(self) -> str:
        return libpq_url(self.database_url)

    def start_stores(self) -> None:
        """A fresh migrated database, a private redis-server and a private localstripe."""
        from tix.migrate import upgrade

        self.database_url = f"{PG_BASE}/tix_bench_{os.getpid()}_{uuid.uuid4().hex[:6]}"
        asyncio.run(ensure_database(self.database_url))
        upgrade(self.database_url)

        self._redis = RedisServer().start()
        self.redis_url = self._redis.url

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
            "TIX_STRIPE_API_KEY": DEVELOPMENT_STRIPE_API_KEY,
            # Stripe pacing lifted for the run: we measure the service, not Stripe's test-mode quota.
            "TIX_STRIPE_REQUESTS_PER_SECOND": "1000000",
            "TIX_STRIPE_MAX_BACKLOG": "1000000",
            "TIX_VAR_DIR": str(self.work_dir / "var"),
            "TIX_LOG_LEVEL": "WARNING",
            "TIX_WORKERS": str(workers),
            "TIX_DB_POOL_SIZE": str(db_pool_size),
            "TIX_SWEEPER_INTERVAL_SECONDS": "3600",
            "PYTHONUNBUFFERED": "1",
        }

    def start_booking_server(self, *, workers: int = 2, db_pool_size: int = 14) -> int:
        """``python -m tix.cli serve booking`` on a free port; returns the port once gRPC health says SERVING."""
        self.booking_port = free_port()
        env = self.booking_env(workers=workers, db_pool_size=db_pool_size)
        env["TIX_PORT"] = str(self.booking_port)
        env["TIX_METRICS_PORT"] = str(free_port())
        self._booking, self._booking_log = self._serve("booking", self.booking_port, env)
        return self.booking_port

    def start_event_server(self, *, workers: int = 1, db_pool_size: int = 10) -> tuple[int, int]:
        """``tix serve event`` with its HTTP listener on free ports; returns (gRPC port, HTTP port) once SERVING."""
        grpc_port, http_port = free_port(), free_port()
        env = self.booking_env(workers=workers, db_pool_size=db_pool_size)
        env.update({"TIX_PORT": str(grpc_port), "TIX_HTTP_PORT": str(http_port), "TIX_METRICS_PORT": "0"})
        self._event, self._event_log = self._serve("event", grpc_port, env)
        return grpc_port, http_port

    @property
    def event_pid(self) -> int | None:
        return self._event.pid if self._event is not None else None

    def stop_event_server(self) -> None:
        stop_process(self._event, timeout=30)
        self._event = None
        if self._event_log is not None:
            self._event_log.close()
            self._event_log = None

    def _serve(self, name: str, port: int, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], BinaryIO]:
        log_path = self.work_dir / f"{name}.log"
        log_file = open(log_path, "wb")  # noqa: SIM115 - closed when the server stops
        process = subprocess.Popen(
            [sys.executable, "-m", "tix.cli", "serve", name],
            cwd=REPO_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_until(
                lambda: grpc_serving(port, f"tix.v1.{name.capitalize()}Service"),
                what=f"{name} server (log: {log_path})", timeout=60, process=process, interval=0.1,
            )
        except BaseException:
            stop_process(process)
            log_file.close()
            raise
        return process, log_file

    def event_log_tail(self, lines: int = 30) -> str:
        path = self.work_dir / "event.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    def booking_log_tail(self, lines: int = 30) -> str:
        path = self.work_dir / "booking.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    def stop_booking_server(self) -> None:
        stop_process(self._booking, timeout=30)
        self._booking = None
        if self._booking_log is not None:
            self._booking_log.close()
            self._booking_log = None

    def stop(self, *, keep_database: bool = False) -> None:
        """Stop every process; drop the database and the work directory (server log) unless asked to keep them."""
        self.stop_booking_server()
        self.stop_event_server()
        if self._localstripe is not None:
            stop_localstripe(self._localstripe)
        if self._redis is not None:
            self._redis.stop()
        if keep_database:
            print(f"kept database {self.database_url} and work directory {self.work_dir}", file=sys.stderr)
            return
        if self.database_url:
            asyncio.run(drop_database(self.database_url))
        shutil.rmtree(self.work_dir, ignore_errors=True)


@contextlib.contextmanager
def bench_stack(*, keep_database: bool = False) -> Iterator[BenchStack]:
    stack = BenchStack()
    try:
        stack.start_stores()
        yield stack
    finally:
        stack.stop(keep_database=keep_database)
