"""The single-flight helper: one load per key at a time, shared by every concurrent caller."""

from __future__ import annotations

import asyncio

import pytest

from tix.singleflight import CachedLoads, SingleFlight


async def test_concurrent_callers_of_one_key_share_one_load_and_other_keys_load_apart():
    flights: SingleFlight[str, int] = SingleFlight()
    loads: list[str] = []

    async def load(key: str) -> int:
        loads.append(key)
        await asyncio.sleep(0.05)
        return len(key)

    results = await asyncio.gather(*(flights.run(k, lambda k=k: load(k)) for k in ["a"] * 500 + ["bb"] * 500))
    assert results == [1] * 500 + [2] * 500
    assert sorted(loads) == ["a", "bb"]
    assert not flights.in_flight("a")
    assert await flights.run("a", lambda: load("a")) == 1  # a later call loads afresh
    assert loads.count("a") == 2


async def test_a_failure_reaches_every_waiting_caller_and_the_next_call_tries_again():
    flights: SingleFlight[int, str] = SingleFlight()
    attempts = 0

    async def flaky() -> str:
        nonlocal attempts
        attempts += 1
        await asyncio.sleep(0.01)
        if attempts == 1:
            raise ConnectionError("database away")
        return "ok"

    outcomes = await asyncio.gather(*(flights.run(1, flaky) for _ in range(10)), return_exceptions=True)
    assert all(isinstance(o, ConnectionError) for o in outcomes)
    assert await flights.run(1, flaky) == "ok"
    assert attempts == 2


async def test_a_caller_that_gives_up_does_not_cancel_the_load_for_the_others():
    flights: SingleFlight[int, str] = SingleFlight()
    started = asyncio.Event()

    async def slow() -> str:
        started.set()
        await asyncio.sleep(0.1)
        return "loaded"

    impatient = asyncio.create_task(flights.run(7, slow))
    await started.wait()
    patient = asyncio.create_task(flights.run(7, slow))
    impatient.cancel()
    with pytest.raises(asyncio.CancelledError):
        await impatient
    assert await patient == "loaded"


async def test_a_caller_needing_fresh_data_never_shares_a_read_that_began_before_it_asked():
    flights: SingleFlight[str, int] = SingleFlight()
    started = asyncio.Event()
    release = asyncio.Event()
    reads = []

    async def load():
        reads.append(flights.mark())
        started.set()
        await release.wait()
        return len(reads)

    early = asyncio.create_task(flights.run("k", load, not_before=flights.mark()))
    await started.wait()
    mark = flights.mark()
    late = [asyncio.create_task(flights.run("k", load, not_before=mark)) for _ in range(20)]
    await asyncio.sleep(0.01)
    assert len(reads) == 1  # the second read waits for the first: one read of a key at a time
    release.set()
    assert await early == 1
    assert await asyncio.gather(*late) == [2] * 20
    assert reads[1] > mark


async def test_cached_loads_read_an_entry_expiring_between_two_looks_as_a_miss_never_a_key_error():
    """Each look at the clock is 0.6 s later and an entry lives 1 s: a cache read as "in" then "[]" sees the entry
    present, then gone (KeyError: INTERNAL for a join or reservation in a burst); one lookup loads again."""
    clock = [0.0]

    def ticking() -> float:
        clock[0] += 0.6
        return clock[0]

    loads: CachedLoads[int, str | None] = CachedLoads(maxsize=8, ttl=1.0, timer=ticking)
    calls = 0

    async def load() -> str | None:
        nonlocal calls
        calls += 1
        return None  # "no such event" is a value, cached like any other

    for _ in range(20):
        assert await loads.get(1, load) is None
    assert 1 <= calls < 20


async def test_cached_loads_load_once_for_concurrent_misses_and_keep_the_value():
    loads: CachedLoads[str, int] = CachedLoads(maxsize=8, ttl=60)
    calls = 0

    async def load() -> int:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.01)
        return 7

    assert await asyncio.gather(*(loads.get("k", load) for _ in range(50))) == [7] * 50
    assert await loads.get("k", load) == 7
    assert loads.peek("k") == 7
    assert loads.peek("other") is None
    assert calls == 1
