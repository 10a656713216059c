"""Redis wiring: one asyncio client per URL, shared by a process."""

from __future__ import annotations

import redis
import redis.asyncio as aioredis

# Given to every connection: without it redis-py looks its own version up in the installed package metadata for each
# new connection (milliseconds of the event loop each), so a burst that grows a pool by a hundred connections
# stalls the process for most of a second.
try:
    from redis.driver_info import DriverInfo

    CONNECTION_OPTIONS: dict[str, object] = {"driver_info": DriverInfo(lib_version=redis.__version__)}
except ImportError:  # redis-py before 7 takes the version itself
    CONNECTION_OPTIONS = {"lib_version": redis.__version__}


def create_redis(
    url: str, *, max_connections: int = 200, wait_seconds: float = 10.0, decode_responses: bool = True
) -> aioredis.Redis:
    """A client whose pool makes a burst wait for a free connection instead of failing with "Too many
    connections" (redis-py's default pool), so a stampede is queued, not turned into errors. Replies are text
    unless ``decode_responses`` is false (a client for binary values, such as compressed bodies)."""
    pool = aioredis.BlockingConnectionPool.from_url(
        url,
        decode_responses=decode_responses,
        max_connections=max_connections,
        timeout=wait_seconds,
        socket_connect_timeout=2.0,
        socket_timeout=5.0,
        health_check_interval=30,
        **CONNECTION_OPTIONS,
    )
    return aioredis.Redis(connection_pool=pool)


def as_text(reply: bytes | str) -> str:
    """A Redis reply as text. The clients of ``create_redis`` decode replies already; this also takes raw bytes, so
    callers hold one type whichever client they were given."""
    return reply.decode() if isinstance(reply, bytes) else reply


def as_optional_text(reply: bytes | str | None) -> str | None:
    return None if reply is None else as_text(reply)
