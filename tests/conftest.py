"""Fixtures shared by every test: a private, migrated PostgreSQL database, a clean Redis database, and helpers to
run a service in-process. Tests talk to the real PostgreSQL and Redis of the machine (no mocks)."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
import redis.asyncio as aioredis
from hypothesis import settings
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.factories import empty_catalog
from tix.db import create_engine, drop_database, ensure_database
from tix.migrate import upgrade
from tix.settings import TixSettings
from tix_dev.localstripe import start_localstripe, stop_localstripe
from tix_dev.processes import RedisServer
from tix_dev.readiness import free_port

PG_BASE = os.environ.get("TIX_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432")

# Property tests check rules, not speed: no per-example deadline (hypothesis's 200 ms default failed a pure unit test
# once on a CI machine busy with the rest of the suite).
settings.register_profile("tix", deadline=None)
settings.load_profile("tix")

@pytest.fixture(scope="session")
def database_url() -> str:
    """One migrated database for the whole run, dropped at the end."""
    url = f"{PG_BASE}/tix_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    asyncio.run(ensure_database(url))
    upgrade(url)
    yield url
    asyncio.run(drop_database(url))


@pytest.fixture(scope="session")
def redis_node() -> Iterator[RedisServer]:
    node = RedisServer().start()
    yield node
    node.stop()


@pytest.fixture(scope="session")
def redis_url(redis_node: RedisServer) -> str:
    return redis_node.url


@pytest.fixture(scope="session")
def localstripe_url() -> str:
    """A private localstripe (loopback only, no pickle on disk) for the whole run; the API base URL."""
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
    return await empty_catalog(engine)


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    await client.flushdb()
    yield client
    await client.aclose()
