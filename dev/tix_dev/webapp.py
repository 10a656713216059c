"""The fans' web app (``web/``), built for the edge to serve on its own origin.

The app is plain ES modules, CSS and SVG: nothing to bundle, nothing fetched from a CDN. Building it is three steps,
done whenever the edge configuration is rendered (``make up``, the e2e mesh):

- every file of ``web/assets/`` is copied under a name carrying a digest of its content (``app.3f2a9c1b0d.js``),
  so browsers may keep it for a year (``immutable``) and a new version is a new URL;
- ``web/index.html`` gets an import map from the plain module names to the hashed ones (modules import each other
  by their plain names, ``./api.js``, and the map resolves them), ``modulepreload`` links for every module (no
  waterfall), the hashed stylesheet and the page's configuration (Stripe.js, sign-in) as JSON;
- each file is precompressed once, brotli (quality 11) and gzip (level 9), beside the original.

The edge (tix_dev.edge) answers the files itself with direct responses, one route per file and encoding.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import mimetypes
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import brotli

from tix.settings import DEVELOPMENT_STRIPE_API_BASE
from tix_dev.settings import REPO_ROOT

WEB_SOURCE = REPO_ROOT / "web"
ASSET_PREFIX = "/assets/"
INDEX_PATH = "/"
# Hashed files never change under their name; index.html is asked again every time (it names the current hashes).
IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "no-cache"
CONTENT_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".html": "text/html; charset=utf-8",
    ".json": "application/json",
    ".png": "image/png",
    ".ico": "image/x-icon",
}
PUBLISHABLE_KEY_PLACEHOLDER = "pk_live_CHANGE_ME"
# Encodings in the order the edge prefers them when a browser accepts several.
ENCODINGS = (("br", ".br"), ("gzip", ".gz"))


@dataclass(frozen=True)
class WebFile:
    """One file the edge serves: its URL path, where it lies, its type and cache policy, and its compressed twins."""

    url_path: str
    file: Path
    content_type: str
    cache_control: str

    def encoded(self, encoding: str) -> Path:
        suffix = dict(ENCODINGS)[encoding]
        return self.file.with_name(self.file.name + suffix)


@dataclass(frozen=True)
class WebConfig:
    """What the page needs to know about its deployment, written into index.html as JSON."""

    # Stripe.js: localstripe's stand-in locally, https://js.stripe.com/v3/ in production.
    stripe_js_url: str = "https://js.stripe.com/v3/"
    stripe_publishable_key: str = "pk_test_tix_local"
    # The development sign-in route (a name becomes a token); empty where tokens come from an identity provider.
    dev_sign_in_path: str = ""
    # Where a fan signs in when there is no development sign-in (the operator's identity provider).
    sign_in_url: str = ""

    @classmethod
    def production(cls) -> WebConfig:
        """The cluster's edge: the real Stripe.js; the operator's publishable key replaces the placeholder
        (docs/web.md), and fans sign in with the operator's identity provider."""
        return cls(stripe_js_url="https://js.stripe.com/v3/", stripe_publishable_key=PUBLISHABLE_KEY_PLACEHOLDER)

    @classmethod
    def local(cls, stripe_api_base: str = DEVELOPMENT_STRIPE_API_BASE) -> WebConfig:
        """The local mesh: localstripe's Stripe.js stand-in."""
        return cls(stripe_js_url=f"{stripe_api_base.rstrip('/')}/js.stripe.com/v3/")

    def as_json(self) -> dict[str, Any]:
        return {
            "stripeJsUrl": self.stripe_js_url,
            "stripePublishableKey": self.stripe_publishable_key,
            "devSignInPath": self.dev_sign_in_path,
            "signInUrl": self.sign_in_url,
        }


def digest_name(path: Path, content: bytes) -> str:
    """``app.js`` -> ``app.<10 hex digits of sha256>.js``."""
    return f"{path.stem}.{hashlib.sha256(content).hexdigest()[:10]}{path.suffix}"


def _content_type(path: Path) -> str:
    return CONTENT_TYPES.get(path.suffix) or mimetypes.guess_type(path.name)[0] or "application/octet-stream"


def _write_with_encodings(path: Path, content: bytes) -> None:
    path.write_bytes(content)
    path.with_name(path.name + ".br").write_bytes(brotli.compress(content, quality=11))
    path.with_name(path.name + ".gz").write_bytes(gzip.compress(content, compresslevel=9, mtime=0))


@dataclass(frozen=True)
class PlannedFile:
    """One file of a build: the URL it answers, its file name (flat: a ConfigMap holds no directories), its bytes."""

    url_path: str
    name: str
    content: bytes
    content_type: str
    cache_control: str


def plan_web(config: WebConfig, source: Path = WEB_SOURCE) -> list[PlannedFile]:
    """The files of the app, index first, without writing anything."""
    hashed: dict[str, str] = {}
    assets: list[PlannedFile] = []
    for path in sorted((source / "assets").iterdir()):
        if not path.is_file():
            continue
        content = path.read_bytes()
        name = digest_name(path, content)
        hashed[path.name] = ASSET_PREFIX + name
        assets.append(PlannedFile(ASSET_PREFIX + name, name, content, _content_type(path), IMMUTABLE))
    index = render_index((source / "index.html").read_text(), hashed, config).encode()
    return [PlannedFile(INDEX_PATH, "index.html", index, CONTENT_TYPES[".html"], REVALIDATE), *assets]


def web_files_at(directory: Path, planned: list[PlannedFile]) -> list[WebFile]:
    """Where the edge finds each planned file once it is written (or mounted) in ``directory``."""
    return [WebFile(p.url_path, directory / p.name, p.content_type, p.cache_control) for p in planned]


def build_web(out: Path, config: WebConfig | None = None, source: Path = WEB_SOURCE) -> list[WebFile]:
    """Build the app from ``source`` into ``out`` (replaced whole); the files for the edge to serve, index first."""
    planned = plan_web(config or WebConfig(), source)
    staging = out.with_name(f"{out.name}.building-{os.getpid()}")
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    for item in planned:
        _write_with_encodings(staging / item.name, item.content)
    if out.exists():
        shutil.rmtree(out)
    staging.rename(out)
    return web_files_at(out, planned)


def render_index(template: str, hashed: Mapping[str, str], config: WebConfig) -> str:
    """Fill index.html's placeholders: ``{{importmap}}``, ``{{preload}}``, ``{{config}}`` and ``{{asset:NAME}}``."""
    modules = {ASSET_PREFIX + name: url for name, url in sorted(hashed.items()) if name.endswith(".js")}
    # "</" cannot end the script element early: JSON escapes it.
    importmap = json.dumps({"imports": modules}, indent=1).replace("</", "<\\/")
    preload = "\n".join(f'<link rel="modulepreload" href="{url}">' for url in modules.values())
    text = template.replace("{{importmap}}", importmap).replace("{{preload}}", preload)
    text = text.replace("{{config}}", json.dumps(config.as_json()).replace("</", "<\\/"))
    for name, url in hashed.items():
        text = text.replace("{{asset:" + name + "}}", url)
    if "{{" in text:
        start = text.index("{{")
        raise ValueError(f"index.html names an unknown placeholder: {text[start:text.index('}}', start) + 2]}")
    return text
