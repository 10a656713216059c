"""The fans' web app through the real edge: served on the edge's own origin, precompressed, cache-busted; the
development sign-in hands out tokens the edge accepts."""

from __future__ import annotations

import re

import httpx
import pytest

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
