"""An operator applies a catalog file with `tix catalog apply`; fans find the new event through the Envoy edge
within a second (the outbox trigger, NOTIFY, the search service's indexer)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import httpx
import yaml

from tests.factories import TEST_LAYOUT_ID, ensure_layout
from tix_dev.up import Mesh


async def test_an_applied_event_is_found_through_the_edge_within_a_second(
    mesh: Mesh, http: httpx.AsyncClient, db, settings_env, tmp_path
):
    await ensure_layout(db)
    start = (datetime.now(UTC) + timedelta(days=20)).replace(microsecond=0)
    catalog = {
        "venues": [{"external_id": "e2e-hall", "name": "Kulturhuset", "city": "Tromsø", "country_code": "NO",
                    "latitude": 69.65, "longitude": 18.96, "time_zone": "Europe/Oslo", "layout": TEST_LAYOUT_ID}],
        "performers": [{"external_id": "e2e-act", "name": "Quillbert Vantasma", "category": "comedy"}],
        "events": [{"external_id": "e2e-show", "name": "Quillbert Vantasma Live", "venue": "e2e-hall",
                    "performer": "e2e-act", "starts_at": start.isoformat(),
                    "sale_starts_at": (start - timedelta(days=30)).isoformat(), "tier_prices": [4000, 2500]}],
    }
    # Asked before the event exists: the empty answer is now in the search cache.
    before = await http.get("/v1/events:search", params={"query": "vantasma"})
    assert before.json().get("events", []) == []
    path = tmp_path / "catalog.yaml"
    path.write_text(yaml.safe_dump(catalog, allow_unicode=True))
    applied = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "tix.cli", "catalog", "apply", str(path), "--no-progress"],
        capture_output=True, text=True, timeout=60,
    )
    assert applied.returncode == 0, applied.stderr
    committed = time.monotonic()

    found: dict = {}
    while not found:
        elapsed = time.monotonic() - committed
        assert elapsed < 3, "the applied event never became searchable"
        # The same query as before: the indexer's batch moves the cache's generation, so no stale answer is served.
        response = await http.get("/v1/events:search", params={"query": "vantasma"})
        assert response.status_code == 200, response.text
        found = next(iter(response.json().get("events", [])), {})
        if not found:
            await asyncio.sleep(0.02)
    assert time.monotonic() - committed <= 1.0
    assert found["name"] == "Quillbert Vantasma Live"
    assert found["venue"]["city"] == "Tromsø"
    assert found["performer"]["name"] == "Quillbert Vantasma"

    # A browser's query string writes a space as '+' (URLSearchParams): the edge reads it as the space it is, so a
    # fan typing "Quillbert Va" is offered the performer whose name starts so (with '+' kept, nothing matched).
    typed = await http.get("/v1/events:suggest?query=Quillbert+Va")
    assert typed.status_code == 200, typed.text
    assert [p["name"] for p in typed.json()["performers"]] == ["Quillbert Vantasma"]
