"""A crowd of best-available fans through Envoy on a small event: every seat is sold once, every fan gets a clear
answer (200, 409 when no block of that size is left, or 429/503 with Retry-After when the service sheds load), never
a 500 or a 504; and afterwards Redis holds no seat that PostgreSQL does not have reserved."""

from __future__ import annotations

import asyncio
import random

import httpx
import pytest
import redis.asyncio as aioredis

from tests.integration.booking_harness import assert_never_sold_twice
from tix_dev.tokens import issue_token
from tix_dev.up import Mesh

pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=<...>':DeprecationWarning")


async def test_two_hundred_best_available_fans_through_the_edge_sell_every_seat_once(
    mesh: Mesh, edge_url: str, db, redis_url: str, catalog_event
):
    rng = random.Random(3)
    tokens = [issue_token(mesh.var_dir, f"crowd-{i}") for i in range(400)]
    statuses: list[int] = []
    shed_without_retry_after = 0
    async with httpx.AsyncClient(base_url=edge_url, timeout=30,
                                 limits=httpx.Limits(max_connections=200)) as http:

        async def fan(token: str, quantity: int) -> int:
            nonlocal shed_without_retry_after
            response = await http.post(
                "/v1/bookings:reserve", headers={"Authorization": f"Bearer {token}"},
                json={"eventId": str(catalog_event.event_id), "bestAvailable": {"quantity": quantity}},
            )
            if response.status_code in (429, 503) and not response.headers.get("retry-after"):
                shed_without_retry_after += 1
            return response.status_code

        wave = await asyncio.gather(*(fan(tokens[i], rng.randint(1, 4)) for i in range(200)))
        statuses += wave
        # Whatever was shed or is left goes to the next fans, one seat each, until the event is sold out.
        for round_ in range(10):
            start = 200 + round_ * 20
            wave = await asyncio.gather(*(fan(tokens[start + i], 1) for i in range(20)))
            statuses += wave
            if 200 not in wave and 429 not in wave and 503 not in wave:
                break

    assert not {500, 502, 504} & set(statuses), sorted(set(statuses))
    assert set(statuses) <= {200, 409, 429, 503}, sorted(set(statuses))
    assert shed_without_retry_after == 0
    owner = await assert_never_sold_twice(db, catalog_event.event_id)
    assert set(owner) == set(catalog_event.seat_ids)
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    try:
        keys = [k async for k in client.scan_iter(match=f"tix:hold:{{{catalog_event.event_id}}}:*")]
        holders = dict(zip((k.partition("}:")[2] for k in keys), await client.mget(keys), strict=True))
    finally:
        await client.aclose()
    assert holders == owner
