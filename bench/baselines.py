"""Raw rates of the building blocks, measured in the same run as the sale so the ratios mean something:
a 4-seat all-or-nothing ``SET NX PX`` Lua hold in Redis (one call at a time per client, and pipelined), the
4-ticket conditional UPDATE in PostgreSQL, and localstripe's own create + confirm cycle."""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from dataclasses import dataclass

import httpx
import psycopg
import redis.asyncio as aioredis
from tqdm import tqdm

from bench.catalog import seat_blocks
from bench.progress import progress_options
from tix.settings import DEVELOPMENT_STRIPE_API_KEY

# All or nothing: if any of the four seats is held, hold none.
HOLD_FOUR = """
for _, key in ipairs(KEYS) do
  if redis.call('EXISTS', key) == 1 then return 0 end
end
for _, key in ipairs(KEYS) do
  redis.call('SET', key, ARGV[1], 'NX', 'PX', ARGV[2])
end
return 1
"""

CONDITIONAL_UPDATE = (
    "UPDATE tickets SET status = 'reserved', booking_id = %s, reserved_until = now() + interval '10 minutes'"
    " WHERE event_id = %s AND seat_id = ANY(%s)"
    " AND (status = 'available' OR (status = 'reserved' AND reserved_until < now()))"
)


@dataclass
class Rate:
    name: str
    operations: int
    seconds: float
    won: int = 0

    @property
    def per_second(self) -> float:
        return self.operations / max(self.seconds, 1e-9)


async def _drive(total: int, concurrency: int, description: str, operate) -> float:
    """Run ``operate(i)`` ``total`` times from ``concurrency`` tasks; returns the elapsed seconds."""
    next_op = 0
    bar = tqdm(total=total, desc=description, unit="op", leave=False, dynamic_ncols=True,
               **progress_options())

    async def worker(slot: int) -> None:
        nonlocal next_op
        while next_op < total:
            n = next_op
            next_op += 1
            await operate(n, slot)
            if n % 100 == 0:
                bar.update(100)

    started = time.perf_counter()
    await asyncio.gather(*(worker(slot) for slot in range(concurrency)))
    elapsed = time.perf_counter() - started
    bar.close()
    return elapsed


async def redis_hold_rates(redis_url: str, seats: int, total: int, concurrency: int = 64) -> tuple[Rate, Rate]:
    blocks = seat_blocks(seats)
    rng = random.Random(7)
    client = aioredis.Redis.from_url(redis_url, max_connections=concurrency + 8)
    try:
        sha = await client.script_load(HOLD_FOUR)
        won = 0

        def keys(prefix: str) -> list[str]:
            return [f"bench:{{{prefix}}}:{seat}" for seat in rng.choice(blocks)]

        async def one(n: int, slot: int) -> None:
            nonlocal won
            won += await client.evalsha(sha, 4, *keys("single"), f"b{n}", 600_000)

        single_seconds = await _drive(total, concurrency, "redis hold, one call per round trip", one)
        single = Rate("redis 4-seat hold (unpipelined)", total, single_seconds, won)

        batch = 100
        won = 0

        async def piped(n: int, slot: int) -> None:
            nonlocal won
            pipe = client.pipeline(transaction=False)
            for i in range(batch):
                pipe.evalsha(sha, 4, *keys("piped"), f"p{n}-{i}", 600_000)
            won += sum(await pipe.execute())

        piped_seconds = await _drive(total // batch, 8, "redis hold, pipelined x100", piped)
        pipelined = Rate("redis 4-seat hold (pipelined x100)", (total // batch) * batch, piped_seconds, won)
        await client.flushdb()
        return single, pipelined
    finally:
        await client.aclose()


async def postgres_update_rate(dsn: str, event_id: int, seats: int, total: int, connections: int = 16) -> Rate:
    blocks = seat_blocks(seats)
    rng = random.Random(11)
    conns = [await psycopg.AsyncConnection.connect(dsn, autocommit=True) for _ in range(connections)]
    won = 0

    async def one(n: int, slot: int) -> None:
        nonlocal won
        conn = conns[slot]
        block = list(rng.choice(blocks))
        async with conn.transaction() as tx:
            cursor = await conn.execute(CONDITIONAL_UPDATE, (uuid.uuid4(), event_id, block))
            if cursor.rowcount == len(block):
                won += 1
            else:
                raise psycopg.Rollback(tx)

    try:
        seconds = await _drive(total, connections, "postgres 4-ticket conditional UPDATE", one)
    finally:
        for conn in conns:
            await conn.close()
    return Rate(f"postgres 4-ticket conditional UPDATE ({connections} connections)", total, seconds, won)


async def localstripe_cycle_rate(api_base: str, total: int, concurrency: int = 32) -> Rate:
    """PaymentIntents created with a test card and confirmed: the Stripe work behind one booking."""
    async with httpx.AsyncClient(
        base_url=api_base,
        headers={"Authorization": f"Bearer {DEVELOPMENT_STRIPE_API_KEY}"},
        timeout=60,
        limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency),
    ) as http:

        async def one(n: int, slot: int) -> None:
            created = await http.post(
                "/v1/payment_intents",
                data={"amount": "4000", "currency": "usd", "payment_method": "pm_card_visa",
                      "metadata[event_id]": "baseline"},
            )
            created.raise_for_status()
            confirmed = await http.post(f"/v1/payment_intents/{created.json()['id']}/confirm")
            confirmed.raise_for_status()

        seconds = await _drive(total, concurrency, "localstripe create + confirm", one)
    return Rate(f"localstripe create + confirm ({concurrency} clients)", total, seconds, total)
