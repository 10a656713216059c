"""Fixtures shared by every test: a private, migrated PostgreSQL database, a clean Redis database, and helpers to
run a service in-process. Tests talk to the real PostgreSQL and Redis of the machine (no mocks)."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from tix.db import create_engine, drop_database, ensure_database
from tix.migrate import upgrade
from tix.processes import die_with_parent_hook, stop_process
from tix.settings import TixSettings

PG_BASE = os.environ.get("TIX_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432")

# Tables emptied between tests; layouts are static reference data and survive.
_DATA_TABLES = (
    "idempotency_records, stripe_events, payments, tickets, bookings, search_documents, outbox, outbox_cursors, "
    "events, performers, venues"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def database_url() -> str:
    """One migrated database for the whole run, dropped at the end."""
    url = f"{PG_BASE}/tix_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    asyncio.run(ensure_database(url))
    upgrade(url)
    yield url
    asyncio.run(drop_database(url))


class RedisNode:
    """A private redis-server on a spare port: tests never share keys with each other or with `make up`."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisNode:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            # A pytest that is killed must not leave redis-servers behind.
            preexec_fn=die_with_parent_hook(),
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return self
            time.sleep(0.02)
        raise RuntimeError(f"redis-server did not start on port {self.port}")

    def stop(self) -> None:
        stop_process(self.process, 5)


@pytest.fixture(scope="session")
def redis_node() -> RedisNode:
    node = RedisNode().start()
    yield node
    node.stop()


@pytest.fixture(scope="session")
def redis_url(redis_node: RedisNode) -> str:
    return redis_node.url


@pytest.fixture(scope="session")
def localstripe_url() -> str:
    """A private localstripe (loopback only, no pickle on disk) for the whole run; the API base URL."""
    from tix.localstripe_launcher import start_localstripe, stop_localstripe

    port = free_port()
    process = start_localstripe(port)
    yield f"http://127.0.0.1:{port}"
    stop_localstripe(process)


@pytest.fixture(scope="session")
def settings_env(database_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Environment that points TIX_ settings (of this process and of children) at the test stores."""
    env = {
        "TIX_ENVIRONMENT": "test",
        "TIX_DATABASE_URL": database_url,
        "TIX_REDIS_URL": redis_url,
        "TIX_VAR_DIR": str(tmp_path_factory.mktemp("var")),
        "TIX_LOG_LEVEL": "WARNING",
    }
    os.environ.update(env)
    return env


@pytest.fixture(scope="session")
async def engine(database_url: str, settings_env: dict[str, str]) -> AsyncIterator[AsyncEngine]:
    eng = create_engine(TixSettings(), pool_size=20)
    yield eng
    await eng.dispose()


@pytest.fixture
async def db(engine: AsyncEngine) -> AsyncEngine:
    """The engine, on an empty catalog (layouts kept)."""
    for attempt in range(5):
        try:
            async with engine.begin() as conn:
                await conn.execute(text(f"TRUNCATE {_DATA_TABLES} RESTART IDENTITY CASCADE"))
            return engine
        except DBAPIError as error:
            # A server still shutting down from the previous test may be mid-query; its locks go in a moment.
            if "deadlock detected" not in str(error) or attempt == 4:
                raise
            await asyncio.sleep(0.2 * (attempt + 1))
    return engine


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    await client.flushdb()
    yield client
    await client.aclose()
