"""Alembic environment: migrations run online against the database in TIX_DATABASE_URL (psycopg 3, sync)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool

from tix.db import async_url
from tix.schema import metadata
from tix.settings import TixSettings

config = context.config
url = config.get_main_option("sqlalchemy.url") or async_url(TixSettings().database_url)

engine = create_engine(url, poolclass=pool.NullPool)
with engine.connect() as connection:
    context.configure(connection=connection, target_metadata=metadata, compare_type=True)
    with context.begin_transaction():
        context.run_migrations()
