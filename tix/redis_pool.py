"""Redis wiring: one asyncio client per URL, shared by a process."""

from __future__ import annotations

import redis.asyncio as aioredis


def create_redis(url: str, *, max_connections: int = 200) -> aioredis.Redis:
    return aioredis.Redis.from_url(
        url,
        decode_responses=True,
        max_connections=max_connections,
        socket_connect_timeout=2.0,
        socket_timeout=5.0,
        health_check_interval=30,
    )
