"""A real browser on another origin uses the API as the web app will: Debian's Chromium, driven by Playwright, loads a
page from a second local server and, across origins (CORS), reads an event, searches, mints a stream token and
watches its queue ticket with EventSource (which cannot send an Authorization header: the stream token rides in
the URL)."""

from __future__ import annotations

import functools
import http.server
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from search_svc.repository import rebuild_search_document
from tests.e2e.conftest import forget_catalog
from tests.factories import create_event
from tix_dev.readiness import free_port
from tix_dev.tokens import issue_token
from tix_dev.up import Mesh

pytestmark = pytest.mark.e2e

CHROMIUM = "/usr/bin/chromium"

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>cross-origin fan</title></head>
<body><pre id="log"></pre>
<script>
const params = new URLSearchParams(location.search);
const api = params.get("api"), fan = params.get("token"), eventId = params.get("event");
const results = window.results = {done: false, errors: []};
const log = (line) => { document.getElementById("log").textContent += line + "\\n"; };
const auth = {"Authorization": "Bearer " + fan, "Content-Type": "application/json"};

async function json(response) {
  const body = await response.json();
  if (!response.ok) throw new Error(response.status + " " + JSON.stringify(body));
  return body;
}

(async () => {
  try {
    const event = await json(await fetch(`${api}/v1/events/${eventId}`));
    results.eventName = event.name; log("event: " + event.name);
    const search = await json(await fetch(`${api}/v1/events:search?query=${encodeURIComponent(event.name)}`));
    results.searchIds = search.events.map((e) => e.eventId); log("search: " + results.searchIds.join(","));
    const ticket = await json(await fetch(`${api}/v1/events/${eventId}/queue:join`, {method: "POST", headers: auth, body: "{}"}));
    results.ticketId = ticket.ticketId; log("ticket: " + ticket.ticketId);
    const minted = await json(await fetch(`${api}/v1/streamTokens`, {method: "POST", headers: auth, body: "{}"}));
    const url = `${api}/v1/events/${eventId}/queue/${ticket.ticketId}:watch?access_token=${encodeURIComponent(minted.token)}`;
    const source = new EventSource(url);
    source.onmessage = (message) => {
      const update = JSON.parse(message.data);
      results.watched = {ticketId: update.ticketId, state: update.state}; log("watch: " + update.state);
      source.close(); results.done = true;
    };
    source.onerror = () => { results.errors.push("EventSource failed"); source.close(); results.done = true; };
  } catch (error) {
    results.errors.push(String(error)); results.done = true;
  }
})();
</script></body></html>
"""


@pytest.fixture
def page_origin(tmp_path: Path) -> Iterator[str]:
    """A second origin (another host name and port than the edge's) serving the page."""
    (tmp_path / "fan.html").write_text(PAGE)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://localhost:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


async def test_a_page_on_another_origin_reads_searches_and_watches_its_queue_ticket(
    mesh: Mesh, edge_url: str, db, redis_url: str, page_origin: str
):
    if shutil.which(CHROMIUM) is None:
        pytest.fail(f"no {CHROMIUM}: install Debian's chromium (`apt-get install chromium`; .ci/run does)")
    from playwright.async_api import async_playwright

    # A fresh catalog generation: event ids are reused between tests, and the event service may remember an older
    # event 1 in process memory.
    await forget_catalog(redis_url)
    event = await create_event(db, name="Cross Origin Night", queue_enabled=True)
    async with db.begin() as conn:  # the factory writes the catalog only; index it as the outbox indexer would
        await rebuild_search_document(conn, event.event_id)
    token = issue_token(mesh.var_dir, "browser-fan")
    url = f"{page_origin}/fan.html?api={edge_url}&token={token}&event={event.event_id}"
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu"]
        )
        try:
            page = await browser.new_page()
            console: list[str] = []
            page.on("console", lambda message: console.append(message.text))
            await page.goto(url)
            await page.wait_for_function("window.results && window.results.done", timeout=30_000)
            results = await page.evaluate("window.results")
        finally:
            await browser.close()
    assert results["errors"] == [], (results, console)
    assert results["eventName"] == "Cross Origin Night"
    assert results["watched"]["ticketId"] == results["ticketId"]
    assert results["watched"]["state"].startswith("QUEUE_TICKET_STATE_")
    assert str(event.event_id) in results["searchIds"]
