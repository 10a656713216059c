"""PostgreSQL wiring: async SQLAlchemy 2 engines on psycopg 3, and database creation for local runs and tests."""

from __future__ import annotations

from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine

from tix.settings import ServiceSettings, TixSettings


def async_url(url: str) -> str:
    """Accept plain ``postgresql://`` URLs too; SQLAlchemy needs the psycopg (3) driver named."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def libpq_url(url: str) -> str:
    """The same database as a libpq URL, for psycopg used directly (COPY, LISTEN)."""
    return make_url(async_url(url)).set(drivername="postgresql").render_as_string(hide_password=False)


def create_engine(settings: TixSettings, *, pool_size: int | None = None, url: str | None = None) -> AsyncEngine:
    """An engine for ``settings.database_url`` (or ``url``, e.g. a read replica's, with the same pool sizes)."""
    size = pool_size or (settings.db_pool_size if isinstance(settings, ServiceSettings) else 5)
    overflow = settings.db_max_overflow if isinstance(settings, ServiceSettings) else 5
    return create_async_engine(
        async_url(url or settings.database_url),
        pool_size=size,
        max_overflow=overflow,
        pool_pre_ping=True,
        pool_recycle=1800,
    )


def session_factory(engine: AsyncEngine) -> async_sessionmaker:
    return async_sessionmaker(engine, expire_on_commit=False)


async def ensure_database(url: str) -> bool:
    """Create the database named in ``url`` if it does not exist; True when it was created."""
    import psycopg

    target = make_url(async_url(url))
    admin = libpq_url(target.set(database="postgres").render_as_string(hide_password=False))
    async with await psycopg.AsyncConnection.connect(admin, autocommit=True) as conn:
        found = await conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (target.database,))
        if await found.fetchone():
            return False
        await conn.execute(f'CREATE DATABASE "{target.database}"')
        return True


async def drop_database(url: str) -> None:
    import psycopg

    target = make_url(async_url(url))
    admin = libpq_url(target.set(database="postgres").render_as_string(hide_password=False))
    async with await psycopg.AsyncConnection.connect(admin, autocommit=True) as conn:
        await conn.execute(f'DROP DATABASE IF EXISTS "{target.database}" WITH (FORCE)')


async def ping(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        await conn.execute(text("SELECT 1"))
