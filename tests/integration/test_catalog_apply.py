"""`tix catalog apply` against real PostgreSQL and Redis: rows created and updated by external id, nothing written
twice, references and existing seats checked before anything is written, audit and outbox rows in the same
transactions, the event service's caches told."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest
import yaml
from sqlalchemy import text

from tests.factories import TEST_LAYOUT_ID, ensure_layout
from tix.catalog import catalog_version_key
from tix.catalog_apply import apply_catalog
from tix.catalog_files import CatalogFileError, parse_catalog

START = (datetime.now(UTC) + timedelta(days=40)).replace(microsecond=0)


def catalog_data(events: int = 2, *, venue_name: str = "Test Hall") -> dict:
    return {
        "venues": [
            {"external_id": "hall", "name": venue_name, "city": "Oslo", "country_code": "NO", "latitude": 59.91,
             "longitude": 10.75, "time_zone": "Europe/Oslo", "layout": TEST_LAYOUT_ID},
        ],
        "performers": [{"external_id": "band", "name": "The Fjords", "category": "concert", "genre": "rock"}],
        "events": [
            {"external_id": f"show-{i}", "name": f"The Fjords Night {i}", "venue": "hall", "performer": "band",
             "starts_at": (START + timedelta(days=i)).isoformat(), "sale_starts_at": START.isoformat(),
             "tier_prices": [9000, 5000]}
            for i in range(events)
        ],
    }


def parsed(data: dict):
    return parse_catalog(yaml.safe_dump(data), "test.yaml")


async def count(db, sql: str, **params) -> int:
    async with db.connect() as conn:
        return int(await conn.scalar(text(sql), params))


@pytest.fixture
async def layout(db):
    await ensure_layout(db)


async def test_applying_a_file_creates_its_rows_and_applying_it_again_changes_nothing(db, redis, layout):
    report = await apply_catalog(db, redis, parsed(catalog_data(3)), source="test.yaml", actor="ops")
    assert report.summary() == (
        "venues: 1 created, 0 updated, 0 unchanged; performers: 1 created, 0 updated, 0 unchanged; "
        "events: 3 created, 0 updated, 0 unchanged"
    )
    row = await _event(db, "show-1")
    assert (row.name, row.category, row.venue, row.performer) == ("The Fjords Night 1", 1, "hall", "band")
    assert row.ends_at - row.starts_at == timedelta(hours=3)
    outbox = await count(db, "SELECT count(*) FROM outbox")
    assert outbox == 5
    assert await count(db, "SELECT count(*) FROM audit_log WHERE actor = 'ops'") == 3

    again = await apply_catalog(db, redis, parsed(catalog_data(3)), source="test.yaml", actor="ops")
    assert again.summary() == (
        "venues: 0 created, 0 updated, 1 unchanged; performers: 0 created, 0 updated, 1 unchanged; "
        "events: 0 created, 0 updated, 3 unchanged"
    )
    assert await count(db, "SELECT count(*) FROM outbox") == outbox
    assert await count(db, "SELECT count(*) FROM audit_log") == 3


async def test_an_edit_updates_only_what_differs_and_tells_the_caches(db, redis, layout):
    await apply_catalog(db, redis, parsed(catalog_data(2)), source="test.yaml", actor="ops")
    edited = catalog_data(2)
    edited["events"][1]["name"] = "The Fjords: Encore"
    edited["events"][1]["queue"] = {"enabled": True, "rate_per_second": 20}
    before = await count(db, "SELECT max(outbox_id) FROM outbox")
    event_id = (await _event(db, "show-1")).event_id
    other_id = (await _event(db, "show-0")).event_id
    versions = [int(await redis.get(catalog_version_key(e)) or 0) for e in (event_id, other_id)]
    report = await apply_catalog(db, redis, parsed(edited), source="test.yaml", actor="ops")
    assert str(report.events) == "0 created, 1 updated, 1 unchanged"
    row = await _event(db, "show-1")
    assert (row.name, row.queue_enabled, row.queue_rate_per_second) == ("The Fjords: Encore", True, 20)
    async with db.connect() as conn:
        rows = (await conn.execute(text("SELECT topic, aggregate_id FROM outbox WHERE outbox_id > :b"),
                                   {"b": before})).all()
    assert [tuple(r) for r in rows] == [("event", str(event_id))]
    assert int(await redis.get(catalog_version_key(event_id))) == versions[0] + 1
    assert int(await redis.get(catalog_version_key(other_id)) or 0) == versions[1]  # unchanged, not invalidated

    # A venue edit reaches the cached pages of every event there.
    await apply_catalog(db, redis, parsed(catalog_data(2, venue_name="Test Hall II")), source="t", actor="ops")
    assert int(await redis.get(catalog_version_key(other_id))) == versions[1] + 1


async def test_references_and_price_tiers_are_checked_before_anything_is_written(db, redis, layout):
    data = catalog_data(2)
    data["events"][0]["venue"] = "nowhere"
    data["events"][1]["performer"] = "nobody"
    data["events"][1]["tier_prices"] = [9000]
    data["venues"][0]["layout"] = "no-such-layout"
    with pytest.raises(CatalogFileError) as caught:
        await apply_catalog(db, redis, parsed(data), source="test.yaml", actor="ops")
    assert caught.value.problems == [
        "venues[0].layout: no seat layout 'no-such-layout'",
        "events[0].venue: no venue 'nowhere' in the file or the catalog",
        "events[1].performer: no performer 'nobody' in the file or the catalog",
    ]
    assert await count(db, "SELECT count(*) FROM venues") == 0

    data = catalog_data(1)
    data["events"][0]["tier_prices"] = [9000]
    with pytest.raises(CatalogFileError) as caught:
        await apply_catalog(db, redis, parsed(data), source="test.yaml", actor="ops")
    assert caught.value.problems == ["events[0].tier_prices: the venue's layout has 2 price tiers, 1 price(s) given"]


async def test_events_can_name_venues_and_performers_applied_earlier(db, redis, layout):
    await apply_catalog(db, redis, parsed(catalog_data(1)), source="a.yaml", actor="ops")
    later = {"events": catalog_data(3)["events"][2:]}
    report = await apply_catalog(db, redis, parsed(later), source="b.yaml", actor="ops")
    assert str(report.events) == "1 created, 0 updated, 0 unchanged"


async def test_an_event_whose_seats_exist_cannot_move_to_another_venue(db, redis, layout):
    await apply_catalog(db, redis, parsed(catalog_data(1)), source="a.yaml", actor="ops")
    async with db.begin() as conn:
        await conn.execute(text("UPDATE events SET tickets_ready = true"))
    moved = catalog_data(1)
    moved["venues"].append({**moved["venues"][0], "external_id": "hall-2", "name": "Other Hall"})
    moved["events"][0]["venue"] = "hall-2"
    with pytest.raises(CatalogFileError) as caught:
        await apply_catalog(db, redis, parsed(moved), source="a.yaml", actor="ops")
    assert caught.value.problems == ["events[0].venue: the event's seats exist at 'hall'; it cannot move"]


async def test_large_files_are_written_in_chunks_with_progress(db, redis, layout):
    done: list[int] = []
    report = await apply_catalog(
        db, redis, parsed(catalog_data(7)), source="big.yaml", actor="ops", on_progress=done.append, chunk=3
    )
    assert done == [1, 1, 3, 3, 1]
    assert report.events.created == 7
    assert await count(db, "SELECT count(*) FROM audit_log WHERE action = 'catalog.apply.events'") == 3


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "tix.cli", "catalog", "apply", *args], capture_output=True, text=True, timeout=60
    )


async def test_the_cli_applies_a_file_checks_without_writing_and_lists_problems(settings_env, db, layout, tmp_path):
    path = tmp_path / "shows.yaml"
    path.write_text(yaml.safe_dump(catalog_data(2)))
    checked = _cli(str(path), "--check")
    assert checked.returncode == 0, checked.stderr
    assert "valid (1 venues, 1 performers, 2 events)" in checked.stdout
    assert await count(db, "SELECT count(*) FROM events") == 0

    applied = _cli(str(path), "--no-progress")
    assert applied.returncode == 0, applied.stderr
    assert "events: 2 created, 0 updated, 0 unchanged" in applied.stdout
    assert await count(db, "SELECT count(*) FROM events WHERE external_id IS NOT NULL") == 2

    bad = tmp_path / "bad.json"
    bad.write_text('{"events": [{"external_id": "x"}]}')
    refused = _cli(str(bad))
    assert refused.returncode == 1
    assert "bad.json: " in refused.stderr
    assert "events[0].name: Field required" in refused.stderr


async def _event(db, external_id: str):
    async with db.connect() as conn:
        return (
            await conn.execute(
                text(
                    "SELECT e.*, v.external_id AS venue, p.external_id AS performer FROM events e "
                    "JOIN venues v USING (venue_id) JOIN performers p USING (performer_id) "
                    "WHERE e.external_id = :x"
                ),
                {"x": external_id},
            )
        ).one()
