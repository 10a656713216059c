"""An on-sale driven by an operator with the `tix` commands (the internal admin service of the running mesh), while
fans join through the edge and watch their place: admissions follow the operator's switches."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import text

from tests.e2e.conftest import forget_catalog
from tests.factories import create_event
from tix_dev.tokens import issue_token
from tix_dev.up import Mesh

pytestmark = pytest.mark.e2e

FANS = 120
# Slow enough that the line is still far from empty when the operator pauses it: between resume and pause the test
# waits 3.6 s and runs the `tix` CLI, which takes seconds when the machine is busy (at 8/s a busy CI machine once
# admitted all 120 before the pause took effect).
RATE = 4
# The queue service re-reads an event's settings every second (TIX_EVENT_CACHE_SECONDS) and ticks every 0.5 s.
SETTLE_SECONDS = 1.8


def _tix(mesh: Mesh, *args: str) -> dict:
    env = {**os.environ, "TIX_ADMIN_ADDRESS": f"127.0.0.1:{mesh.ports.services['admin']}", "TIX_OPERATOR": "ops-e2e"}
    done = subprocess.run(
        [sys.executable, "-m", "tix.cli", *args, "--json"], env=env, capture_output=True, text=True, timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _n(status: dict, field: str) -> int:
    """A count of the status as proto3 JSON writes it (int64 as a string, zero left out)."""
    return int(status.get(field, 0))


async def _status(mesh: Mesh, event_id: int) -> dict:
    return await asyncio.to_thread(_tix, mesh, "room", "status", str(event_id))


async def _watch(edge_url: str, event_id: int, ticket_id: str, token: str) -> None:
    """A fan keeping the queue page open (newline-delimited JSON through the edge) until admitted."""
    async with (
        httpx.AsyncClient(base_url=edge_url, timeout=None) as client,
        client.stream(
            "GET", f"/v1/events/{event_id}/queue/{ticket_id}:watch", headers={"Authorization": f"Bearer {token}"}
        ) as stream,
    ):
        async for line in stream.aiter_lines():
            if line and "QUEUE_TICKET_STATE_ADMITTED" in line:
                return


async def test_an_operator_opens_steers_and_pauses_the_room_and_admissions_follow(mesh: Mesh, http, db, edge_url, redis_url):
    await forget_catalog(redis_url)
    event = await create_event(db, queue_enabled=False)
    async with db.begin() as conn:
        await conn.execute(
            text("UPDATE events SET sale_starts_at = :s WHERE event_id = :e"),
            {"s": datetime.now(UTC) - timedelta(minutes=1), "e": event.event_id},
        )
    enabled = await asyncio.to_thread(_tix, mesh, "room", "enable", str(event.event_id), "--reason", "on-sale")
    assert enabled["enabled"] is True
    assert (await asyncio.to_thread(_tix, mesh, "room", "set-rate", str(event.event_id), str(RATE)))["ratePerSecond"] == RATE
    paused = await asyncio.to_thread(_tix, mesh, "room", "pause", str(event.event_id))
    assert paused["paused"] is True
    await asyncio.sleep(SETTLE_SECONDS)

    tokens = [issue_token(mesh.var_dir, f"onsale-fan-{n}") for n in range(FANS)]
    joined = await asyncio.gather(
        *(http.post(f"/v1/events/{event.event_id}/queue:join", headers={"Authorization": f"Bearer {t}"}, json={})
          for t in tokens)
    )
    assert {answer.status_code for answer in joined} == {200}
    watchers = [
        asyncio.create_task(_watch(edge_url, event.event_id, answer.json()["ticketId"], t))
        for answer, t in zip(joined, tokens, strict=True)
    ]
    try:
        await asyncio.sleep(SETTLE_SECONDS)
        status = await _status(mesh, event.event_id)
        assert (_n(status, "waiting"), _n(status, "admitted")) == (FANS, 0), status
        assert "estimatedTimeToClear" not in status, "no time to clear while nobody is admitted"

        before_resume = time.monotonic()
        await asyncio.to_thread(_tix, mesh, "room", "resume", str(event.event_id))
        resumed = time.monotonic()
        await asyncio.sleep(2 * SETTLE_SECONDS)
        asked = time.monotonic()
        running = await _status(mesh, event.event_id)
        answered = time.monotonic()
        admitted = _n(running, "admitted")
        # At the rate the operator set (the queue may take the settings cache and a tick to notice the resume).
        least, most = RATE * (asked - resumed - SETTLE_SECONDS) - 1, RATE * (answered - before_resume) + 1
        assert least <= admitted <= most, (admitted, least, most)
        assert _n(running, "waiting") == FANS - admitted
        assert running["admissionRate"] > 0

        await asyncio.to_thread(_tix, mesh, "room", "pause", str(event.event_id))
        await asyncio.sleep(SETTLE_SECONDS)
        frozen = _n(await _status(mesh, event.event_id), "admitted")
        await asyncio.sleep(SETTLE_SECONDS)
        assert _n(await _status(mesh, event.event_id), "admitted") == frozen, "admissions stop while paused"
        assert frozen < FANS

        await asyncio.to_thread(_tix, mesh, "room", "set-rate", str(event.event_id), "100")
        await asyncio.to_thread(_tix, mesh, "room", "resume", str(event.event_id))
        await asyncio.wait_for(asyncio.gather(*watchers), timeout=60)  # every fan gets in
        final = await _status(mesh, event.event_id)
        assert (_n(final, "admitted"), _n(final, "waiting")) == (FANS, 0)
    finally:
        for watcher in watchers:
            watcher.cancel()
        await asyncio.gather(*watchers, return_exceptions=True)

    async with db.connect() as conn:
        audited = (await conn.execute(text("SELECT actor, action FROM audit_log ORDER BY audit_id"))).all()
    assert [tuple(row) for row in audited] == [
        ("ops-e2e", "waiting_room.enable"), ("ops-e2e", "waiting_room.set_rate"), ("ops-e2e", "waiting_room.pause"),
        ("ops-e2e", "waiting_room.resume"), ("ops-e2e", "waiting_room.pause"), ("ops-e2e", "waiting_room.set_rate"),
        ("ops-e2e", "waiting_room.resume"),
    ]
