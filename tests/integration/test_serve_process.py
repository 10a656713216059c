"""`tix serve` as operators run it: worker processes sharing one port, Prometheus metrics, SIGTERM drain, and
`tix db upgrade` creating and migrating a database."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import grpc
import httpx
import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import text

from tests.conftest import PG_BASE
from tix.db import create_engine, drop_database
from tix.migrate import alembic_config
from tix.settings import TixSettings
from tix_dev.readiness import free_port, grpc_serving, wait_until
from tixpb.v1 import queue_pb2, queue_pb2_grpc


def _start(service: str, env: dict[str, str], port: int, metrics_port: int, workers: int) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "tix.cli", "serve", service, "--port", str(port), "--workers", str(workers)],
        env={**os.environ, **env, "TIX_METRICS_PORT": str(metrics_port), "TIX_GRACE_SECONDS": "2", "TIX_LOG_LEVEL": "INFO"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


async def _wait_serving(port: int, timeout: float = 20.0) -> None:
    await asyncio.to_thread(wait_until, lambda: grpc_serving(port), what=f"tix serve on {port}", timeout=timeout)


@pytest.mark.parametrize("workers", [1, 2])
async def test_serve_runs_workers_exposes_metrics_and_drains_on_sigterm(settings_env, workers):
    port, metrics_port = free_port(), free_port()
    process = _start("queue", settings_env, port, metrics_port, workers)
    try:
        await _wait_serving(port)
        # New connections are spread over the workers by the kernel (SO_REUSEPORT); every one answers.
        for _ in range(6):
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                stub = queue_pb2_grpc.QueueServiceStub(channel)
                with pytest.raises(grpc.aio.AioRpcError) as caught:
                    await stub.JoinQueue(queue_pb2.JoinQueueRequest(event_id="1"), timeout=5)
                assert caught.value.code() in (grpc.StatusCode.UNIMPLEMENTED, grpc.StatusCode.UNAUTHENTICATED)
        async with httpx.AsyncClient() as client:
            body = (await client.get(f"http://127.0.0.1:{metrics_port}/metrics")).text
        assert 'tix_grpc_server_handled_total{' in body
        assert 'method="JoinQueue"' in body
        handled = [
            float(line.rsplit(" ", 1)[1])
            for line in body.splitlines()
            if line.startswith("tix_grpc_server_handled_total{") and 'method="JoinQueue"' in line
        ]
        assert sum(handled) == 6

        process.send_signal(signal.SIGTERM)
        try:
            code = process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise AssertionError(f"no drain after 30 s:\n{process.stdout.read().decode()}") from None
        log = process.stdout.read().decode()
        assert code == 0, log
        assert log.count('"event": "stopped"') == workers, log
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


async def test_a_server_stopped_as_soon_as_it_serves_stops_promptly(settings_env):
    """A rolling restart can stop a worker the instant it serves, while its background loops sit in their first
    Redis reads. A cancellation lost in there (redis-py, Python 3.11's wait_for) once held the drain for its whole
    15 s bound: the runtime cancels again until its tasks end."""
    from queue_svc.server import SERVICE
    from tix.server import start_server

    slowest = 0.0
    for _ in range(15):
        running = await start_server(SERVICE, SERVICE.settings_type(port=0))
        started = time.monotonic()
        await running.stop(grace=0.2)
        slowest = max(slowest, time.monotonic() - started)
    assert slowest < 3.0, f"slowest stop {slowest:.1f} s"


async def test_db_upgrade_creates_and_migrates_a_database(settings_env):
    url = f"{PG_BASE}/tix_cli_{uuid.uuid4().hex[:8]}"
    try:
        result = subprocess.run(
            [sys.executable, "-m", "tix.cli", "db", "upgrade"],
            env={**os.environ, "TIX_DATABASE_URL": url},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        engine = create_engine(TixSettings(database_url=url), pool_size=1)
        async with engine.connect() as conn:
            head = ScriptDirectory.from_config(alembic_config(url)).get_current_head()
            assert await conn.scalar(text("SELECT version_num FROM alembic_version")) == head
            assert await conn.scalar(text("SELECT count(*) FROM tickets")) == 0
        await engine.dispose()
    finally:
        await drop_database(url)


async def test_every_call_is_logged_as_json_at_debug_level(settings_env):
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "tix.cli", "serve", "queue", "--port", str(port)],
        env={**os.environ, **settings_env, "TIX_METRICS_PORT": "0", "TIX_LOG_LEVEL": "DEBUG"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        await _wait_serving(port)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            with pytest.raises(grpc.aio.AioRpcError):
                await queue_pb2_grpc.QueueServiceStub(channel).JoinQueue(queue_pb2.JoinQueueRequest(event_id="1"))
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=15)
        lines = [json.loads(line) for line in process.stdout.read().decode().splitlines() if line.startswith("{")]
        calls = [line for line in lines if line.get("event") == "rpc"]
        assert calls
        assert calls[0]["method"] == "JoinQueue"
        assert calls[0]["code"] == "UNAUTHENTICATED"
        assert {"timestamp", "level", "service", "ms"} <= set(calls[0])
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


async def test_sigterm_while_workers_are_still_starting_drains_them_instead_of_killing_them(settings_env):
    port = free_port()
    process = _start("queue", settings_env, port, metrics_port=0, workers=2)
    try:
        # As soon as both workers exist, while they are still importing their modules, stop the service.
        children = Path(f"/proc/{process.pid}/task/{process.pid}/children")
        deadline = time.monotonic() + 20
        while len(children.read_text().split()) < 3 and time.monotonic() < deadline:  # 2 workers + the tracker
            await asyncio.sleep(0.01)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
        log = process.stdout.read().decode()
        assert log.count('"event": "serving"') == 2, log
        assert log.count('"event": "stopped"') == 2, log
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.mark.parametrize("service", ["booking", "queue"])
def test_a_production_start_with_development_secrets_fails_naming_what_to_set(settings_env, service):
    """`tix serve` in production with the repository's development secrets exits at once with a message naming the
    variables (and no traceback, no secret values); it never binds its port."""
    port = free_port()
    env = {**os.environ, **settings_env, "TIX_ENVIRONMENT": "production"}
    for name in ("TIX_ADMISSION_SECRET", "TIX_STRIPE_API_KEY", "TIX_STRIPE_WEBHOOK_SECRET"):
        env.pop(name, None)
    result = subprocess.run(
        [sys.executable, "-m", "tix.cli", "serve", service, "--port", str(port)],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "TIX_ENVIRONMENT=production refuses to start" in result.stderr
    assert "TIX_ADMISSION_SECRET" in result.stderr
    assert ("TIX_STRIPE_API_KEY" in result.stderr) == (service == "booking")
    assert ("TIX_STREAM_TOKEN_PRIVATE_KEY" in result.stderr) == (service == "queue")
    assert "Traceback" not in result.stderr
    assert "dev-admission-secret" not in result.stderr
