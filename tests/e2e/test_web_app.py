"""The fans' web app through the real edge: served on the edge's own origin, precompressed, cache-busted; the
development sign-in hands out tokens the edge accepts."""

from __future__ import annotations

import itertools
import os
import re
import shutil
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from sqlalchemy import text

from search_svc.repository import rebuild_search_document
from tests.e2e.conftest import forget_catalog
from tests.factories import create_event
from tix_dev.catalog_layouts import stadium
from tix_dev.seed import upsert_layouts
from tix_dev.tokens import issue_token
from tix_dev.up import Mesh

pytestmark = pytest.mark.e2e


async def test_the_page_and_its_assets_come_from_the_edge_compressed_and_cache_busted(mesh: Mesh, http: httpx.AsyncClient):
    page = await http.get("/", headers={"Accept-Encoding": "br"})
    assert page.status_code == 200
    assert page.headers["content-encoding"] == "br"
    assert page.headers["cache-control"] == "no-cache"
    assert page.headers["content-type"].startswith("text/html")
    html = page.text  # httpx decodes brotli (the brotli package is installed)
    assert "<script type=\"importmap\">" in html
    modules = re.findall(r'href="(/assets/[a-z]+\.[0-9a-f]{10}\.js)"', html)
    assert any(m.startswith("/assets/main.") for m in modules)
    for path in modules:
        asset = await http.get(path, headers={"Accept-Encoding": "gzip"})
        assert asset.status_code == 200, path
        assert asset.headers["content-encoding"] == "gzip"
        assert asset.headers["cache-control"] == "public, max-age=31536000, immutable"
        assert asset.headers["content-type"].startswith("text/javascript")
    plain = await http.get(modules[0], headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers
    assert plain.status_code == 200
    # A name that is not the current hash is not served (no stale module under a new page).
    assert (await http.get("/assets/main.js")).status_code == 404


async def test_the_development_sign_in_gives_a_token_the_edge_accepts(mesh: Mesh, http: httpx.AsyncClient):
    signed_in = await http.post("/dev/signin", json={"name": "web-fan"})
    assert signed_in.status_code == 200, signed_in.text
    token = signed_in.json()["token"]
    minted = await http.post("/v1/streamTokens", json={}, headers={"Authorization": f"Bearer {token}"})
    assert minted.status_code == 200, minted.text
    refused = await http.post("/dev/signin", json={"name": "two words"})
    assert refused.status_code == 400
    assert refused.json()["details"][0]["reason"] == "INVALID_ARGUMENT"


async def test_my_bookings_is_a_fans_route_through_the_edge(mesh: Mesh, http: httpx.AsyncClient, token: str):
    assert (await http.get("/v1/bookings")).status_code == 401
    listed = await http.get("/v1/bookings", params={"pageSize": 5}, headers={"Authorization": f"Bearer {token}"})
    assert listed.status_code == 200, listed.text
    assert listed.json()["bookings"] == []
    assert listed.json()["nextPageToken"] == ""


# --- the app in a real browser: Debian's Chromium driven by Playwright ---------------------------------------------

CHROMIUM = "/usr/bin/chromium"
# Generous but bounded: the machine running the tests may be a loaded two-core box.
WAIT_MS = 45_000
PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True, "device_scale_factor": 2}
DESKTOP = {"viewport": {"width": 1280, "height": 900}}
# Where screenshots of each page go: TIX_WEB_SCREENSHOTS=docs/web refreshes the README's pictures.
SCREENSHOTS = os.environ.get("TIX_WEB_SCREENSHOTS", "")


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    if shutil.which(CHROMIUM) is None:
        pytest.fail(f"no {CHROMIUM}: install Debian's chromium (`apt-get install chromium`; .ci/run does)")
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu"]
        )
        try:
            yield launched
        finally:
            await launched.close()


class PageLog:
    """What the page said: uncaught errors fail the test; console lines help read a failure."""

    def __init__(self, page: Any) -> None:
        self.errors: list[str] = []
        self.console: list[str] = []
        page.on("pageerror", lambda error: self.errors.append(str(error)))
        page.on("console", lambda message: self.console.append(f"{message.type}: {message.text}"))


async def _screenshot(page: Any, name: str, tmp_path: Path) -> None:
    target = Path(SCREENSHOTS) if SCREENSHOTS else tmp_path
    target.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(target / f"{name}.png"), full_page=False)


async def _sign_in(page: Any, edge_url: str, name: str) -> None:
    await page.goto(f"{edge_url}/#/signin")
    await page.fill("#signin-name", name)
    await page.click("form button[type=submit]")
    await page.wait_for_selector("[data-testid=user]", timeout=WAIT_MS)


# Event ids of this module's events: apart from the ids other tests reuse (the catalog is truncated between tests),
# which the services' in-process caches of an event's rules and seats may still remember.
_EVENT_IDS = itertools.count(900_000)


async def _indexed_event(db: Any, redis_url: str, **fields: Any) -> Any:
    await forget_catalog(redis_url)
    async with db.begin() as conn:
        await conn.execute(text("SELECT setval(pg_get_serial_sequence('events', 'event_id'), :id)"),
                           {"id": next(_EVENT_IDS)})
    event = await create_event(db, **fields)
    async with db.begin() as conn:  # the factory writes the catalog only; index it as the outbox indexer would
        await rebuild_search_document(conn, event.event_id)
    return event


async def _reach_checkout(page: Any) -> None:
    """Wait for the checkout page; an error notice instead fails at once with its words."""
    await page.wait_for_selector("[data-testid=pay], #notice:not(:empty)", timeout=WAIT_MS)
    notice = (await page.text_content("#notice")) or ""
    assert notice == "", notice
    await page.wait_for_selector("[data-testid=pay]", timeout=WAIT_MS)


async def _pay(page: Any, card: str) -> None:
    await page.fill("#card-number", card)
    await page.fill("#card-expiry", "12/34")
    await page.fill("#card-cvc", "123")
    await page.click("[data-testid=pay]")


async def test_a_fan_finds_an_event_with_a_typo_watches_the_map_live_and_buys_seats(
    mesh: Mesh, edge_url: str, db: Any, redis_url: str, browser: Any, tmp_path: Path
):
    event = await _indexed_event(db, redis_url, name="Huskies Homecoming", rows=8, seats_per_row=12)
    page = await browser.new_page(**DESKTOP)
    log = PageLog(page)
    transferred: list[int] = []

    async def count(response: Any) -> None:
        sizes = await response.request.sizes()
        transferred.append(sizes["responseBodySize"] + sizes["responseHeadersSize"])

    page.on("response", count)
    await page.goto(f"{edge_url}/")
    await page.wait_for_selector("#q", timeout=WAIT_MS)
    await page.wait_for_load_state("networkidle")
    first_load = sum(transferred)
    page.remove_listener("response", count)
    print(f"\nfirst load: {len(transferred)} responses, {first_load / 1024:.1f} KB on the wire")
    assert first_load <= 200 * 1024

    await _sign_in(page, edge_url, "web-alice")
    await page.goto(f"{edge_url}/#/")
    # Suggestions as the fan types, then a typo-tolerant search.
    await page.type("#q", "Test Ba", delay=40)
    await page.wait_for_selector("#suggestions li", timeout=WAIT_MS)
    assert "The Test Band" in await page.text_content("#suggestions")  # the event's performer
    await page.fill("#q", "huskis homecomng")
    await page.press("#q", "Escape")
    await page.click("form[role=search] button[type=submit]")
    result = page.locator("[data-testid=result]", has_text="Huskies Homecoming")
    await result.wait_for(timeout=WAIT_MS)
    await _screenshot(page, "search", tmp_path)
    await result.click()

    # The event page: the map drawn, the live stream open.
    await page.wait_for_function("window.tixMetrics && window.tixMetrics.draws.length > 0", timeout=WAIT_MS)
    await page.wait_for_function("window.tixMetrics.watchFrames > 0", timeout=WAIT_MS)
    seat = await page.evaluate("document.querySelector('.seat.available').dataset.seatId")

    # Another fan holds a seat: it turns "reserved" on this page without a reload.
    other = issue_token(mesh.var_dir, "web-bob")
    async with httpx.AsyncClient(base_url=edge_url, timeout=20) as http:
        started = time.time() * 1000
        held = await http.post(
            "/v1/bookings:reserve", json={"eventId": str(event.event_id), "seatIds": [seat]},
            headers={"Authorization": f"Bearer {other}"},
        )
        answered = time.time() * 1000
    assert held.status_code == 200, held.text
    await page.wait_for_function(f"window.tixMetrics.seatChanges[{seat!r}]", timeout=WAIT_MS)
    seen = await page.evaluate(f"window.tixMetrics.seatChanges[{seat!r}]")
    print(f"live update: on the page {seen - started:.0f} ms after the other fan's request started "
          f"(its answer took {answered - started:.0f} ms)")
    assert "reserved" in (await page.get_attribute(f"[data-seat-id='{seat}']", "class"))
    assert "Reserved" in (await page.get_attribute(f"[data-seat-id='{seat}']", "aria-label") or "").title()
    await _screenshot(page, "event", tmp_path)

    # Best available two: the hold, its countdown, the card form.
    await page.select_option("#quantity", "2")
    await page.click("[data-testid=best-available]")
    await _reach_checkout(page)
    await page.wait_for_selector("#card-number", timeout=WAIT_MS)
    assert await page.locator("[data-testid=held-seat]").count() == 2
    countdown = await page.text_content("[data-testid=countdown]")
    assert countdown
    assert ":" in countdown
    await _screenshot(page, "checkout", tmp_path)

    # A declined card says so and what to do; a good one pays and confirms.
    await _pay(page, "4000 0000 0000 0002")
    await page.wait_for_selector("#notice:has-text('payment failed')", timeout=WAIT_MS)
    assert "another card" in (await page.text_content("#notice")).lower()
    await _pay(page, "4242 4242 4242 4242")
    await page.wait_for_selector("[data-testid=booking-status]:has-text('confirmed')", timeout=WAIT_MS)
    await _screenshot(page, "confirmation", tmp_path)

    await page.click("nav a[href='#/bookings']")
    row = page.locator("[data-testid=booking]", has_text="Huskies Homecoming")
    await row.wait_for(timeout=WAIT_MS)
    assert "Confirmed" in await row.text_content()
    await _screenshot(page, "bookings", tmp_path)
    assert log.errors == [], log.console


async def test_a_waiting_room_fan_joins_is_admitted_and_reserves_on_a_phone(
    mesh: Mesh, edge_url: str, db: Any, redis_url: str, browser: Any, tmp_path: Path
):
    event = await _indexed_event(db, redis_url, name="Queue Night", queue_enabled=True)
    page = await browser.new_page(**PHONE)
    log = PageLog(page)
    await _sign_in(page, edge_url, "web-carol")
    await page.goto(f"{edge_url}/#/events/{event.event_id}")
    await page.click("[data-testid=join-queue]", timeout=WAIT_MS)
    await page.wait_for_selector("[data-testid=queue-position]", timeout=WAIT_MS)
    await _screenshot(page, "waiting-room", tmp_path)
    # Admission continues to the seat map by itself, which now offers seats.
    await page.wait_for_selector("[data-testid=best-available]", timeout=WAIT_MS)
    # A phone: nothing wider than the screen.
    assert await page.evaluate("document.documentElement.scrollWidth") <= 390
    await _screenshot(page, "event-phone", tmp_path)
    await page.click("[data-testid=best-available]")
    await _reach_checkout(page)
    assert await page.locator("[data-testid=held-seat]").count() == 2
    assert log.errors == [], log.console


async def test_seats_are_picked_with_the_keyboard_and_labelled_for_screen_readers(
    mesh: Mesh, edge_url: str, db: Any, redis_url: str, browser: Any
):
    event = await _indexed_event(db, redis_url, name="Keyboard Gala")
    page = await browser.new_page(**DESKTOP)
    log = PageLog(page)
    await _sign_in(page, edge_url, "web-dana")
    await page.goto(f"{edge_url}/#/events/{event.event_id}")
    first = page.locator(".seat[tabindex='0']")
    await first.wait_for(timeout=WAIT_MS)
    label = await first.get_attribute("aria-label")
    assert label
    assert "available" in label
    assert "Row A seat 1" in label
    await first.focus()
    await page.keyboard.press("Enter")
    await page.keyboard.press("ArrowRight")
    await page.keyboard.press("Space")
    picked = page.locator(".seat[aria-pressed='true']")
    assert await picked.count() == 2
    assert "Picked:" in await page.text_content("[data-testid=picked]")
    await page.click("text=Reserve 2 picked seats")
    await _reach_checkout(page)
    assert await page.locator("[data-testid=held-seat]").count() == 2
    assert log.errors == [], log.console


async def test_the_stadium_map_draws_within_half_a_second(
    mesh: Mesh, edge_url: str, db: Any, redis_url: str, database_url: str, browser: Any, tmp_path: Path
):
    layout = stadium()
    async with await psycopg.AsyncConnection.connect(database_url.replace("+psycopg", "")) as conn:
        await upsert_layouts(conn, [layout], progress=False)
    event = await _indexed_event(db, redis_url, name="Stadium Finals", layout_id=layout.layout_id)
    page = await browser.new_page(**DESKTOP)
    log = PageLog(page)
    await page.goto(f"{edge_url}/#/events/{event.event_id}")
    await page.wait_for_function("window.tixMetrics && window.tixMetrics.draws.length > 0", timeout=WAIT_MS)
    first = await page.evaluate("window.tixMetrics.draws[0]")
    redraws = await page.evaluate("[0, 1, 2, 3, 4].map(() => window.tixMetrics.drawAgain())")
    print(f"\nstadium map: {first['seats']:,} seats, first draw {first['drawMs']:.0f} ms, "
          f"redraws {sorted(redraws)[len(redraws) // 2]:.0f} ms (median), page ready {first['sincePageMs']:.0f} ms")
    assert first["seats"] == layout.capacity
    assert first["drawMs"] <= 500
    await _screenshot(page, "stadium", tmp_path)
    assert log.errors == [], log.console
