"""Redlock seat holds on real redis-server nodes: all or nothing per node, majority across nodes, compare-and-delete
release, and the degraded verdict when too few nodes answer."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis

from booking_svc.holds import SeatHolds, hold_key
from booking_svc.model import HoldOutcome
from tix_dev.processes import RedisServer
from tix_dev.readiness import free_port

TTL_MS = 60_000


@pytest.fixture(scope="module")
def nodes():
    started = [RedisServer().start() for _ in range(3)]
    yield started
    for node in started:
        node.stop()


@pytest.fixture
async def clients(nodes):
    made = [aioredis.Redis.from_url(n.url, decode_responses=True) for n in nodes]
    for client in made:
        await client.flushall()
    yield made
    for client in made:
        await client.aclose()


async def test_one_node_holds_all_seats_or_none(clients):
    holds = SeatHolds(clients[:1])
    won = await holds.hold(7, ["A-1", "A-2"], "booking-1", TTL_MS)
    assert won.outcome is HoldOutcome.WON
    assert 0 < won.validity_ms <= TTL_MS

    lost = await holds.hold(7, ["A-3", "A-2"], "booking-2", TTL_MS)
    assert lost.outcome is HoldOutcome.LOST
    assert lost.taken_seat_ids == ("A-2",)
    assert await clients[0].get(hold_key(7, "A-3")) is None  # all or nothing
    assert 0 < await clients[0].pttl(hold_key(7, "A-1")) <= TTL_MS


async def test_the_same_booking_holding_again_is_not_its_own_rival(clients):
    holds = SeatHolds(clients[:1])
    assert (await holds.hold(7, ["A-1"], "booking-1", TTL_MS)).outcome is HoldOutcome.WON
    assert (await holds.hold(7, ["A-1", "A-2"], "booking-1", TTL_MS)).outcome is HoldOutcome.WON


async def test_release_deletes_only_this_bookings_keys(clients):
    holds = SeatHolds(clients[:1])
    await holds.hold(7, ["A-1"], "booking-1", TTL_MS)
    await holds.hold(7, ["A-2"], "booking-2", TTL_MS)
    assert await holds.release(7, ["A-1", "A-2"], "booking-1") == 1
    assert await clients[0].get(hold_key(7, "A-1")) is None
    assert await clients[0].get(hold_key(7, "A-2")) == "booking-2"


async def test_a_majority_of_three_nodes_wins_and_a_minority_is_released(clients):
    holds = SeatHolds(clients)
    # Another booking holds the seat on two nodes: a majority says no, and the one grant is given back.
    for client in clients[:2]:
        await client.set(hold_key(7, "A-1"), "rival", px=TTL_MS)
    lost = await holds.hold(7, ["A-1"], "booking-1", TTL_MS)
    assert lost.outcome is HoldOutcome.LOST
    assert await clients[2].get(hold_key(7, "A-1")) is None

    # Held on one node only (a minority, say a node that lost its data): the other two grant, the hold is won.
    await clients[1].delete(hold_key(7, "A-1"))
    await clients[0].set(hold_key(7, "A-2"), "rival", px=TTL_MS)
    won = await holds.hold(7, ["A-2"], "booking-1", TTL_MS)
    assert won.outcome is HoldOutcome.WON
    assert [await c.get(hold_key(7, "A-2")) for c in clients] == ["rival", "booking-1", "booking-1"]


async def test_a_hold_whose_validity_ran_out_is_not_won_and_is_released(clients):
    # A drift allowance as long as the TTL leaves no validity however fast the nodes grant: Redlock must not claim
    # the lock. The keys were granted with a minute to live, so only the release can have removed them.
    holds = SeatHolds(clients, drift_factor=1.0)
    result = await holds.hold(7, ["A-9"], "booking-1", TTL_MS)
    assert result.outcome is HoldOutcome.LOST
    assert [await c.get(hold_key(7, "A-9")) for c in clients] == [None, None, None]
    # A rival's hold of the same seat is not what gets released.
    await clients[0].set(hold_key(7, "A-8"), "rival", px=TTL_MS)
    assert (await holds.hold(7, ["A-8"], "booking-1", TTL_MS)).outcome is HoldOutcome.LOST
    assert await clients[0].get(hold_key(7, "A-8")) == "rival"


async def test_one_dead_node_of_three_still_decides_two_dead_nodes_degrade():
    live = RedisServer().start()
    dead = [f"redis://127.0.0.1:{free_port()}/0" for _ in range(2)]
    holds = SeatHolds.from_urls([live.url, dead[0], dead[1]])
    two_live = [RedisServer().start() for _ in range(2)]
    majority = SeatHolds.from_urls([two_live[0].url, two_live[1].url, dead[0]])
    try:
        assert (await majority.hold(7, ["A-1"], "booking-1", TTL_MS)).outcome is HoldOutcome.WON
        assert (await majority.hold(7, ["A-1"], "booking-2", TTL_MS)).outcome is HoldOutcome.LOST
        degraded = await holds.hold(7, ["A-1"], "booking-1", TTL_MS)
        assert degraded.outcome is HoldOutcome.DEGRADED
        # The single grant on the live node was released: nothing lingers for a hold that was not won.
        assert (await holds.holders(7, ["A-1"]))[0]["A-1"] is None
    finally:
        await holds.aclose()
        await majority.aclose()
        for node in (live, *two_live):
            node.stop()
