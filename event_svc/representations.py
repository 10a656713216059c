"""Rendered answers of the HTTP read path: a body rendered once and compressed once (gzip and brotli), served to
every request until the data under it changes, with the validators and cache headers HTTP caches need.

Pure functions and values: no I/O. The design decision: a seat map is the same bytes for every fan of an event
until a seat changes, so it is rendered and compressed once per change (per event and per variant: a section, a
page of the full view), never per request; the edge passes the precompressed bytes through (Envoy's compressor
leaves a response that already has a ``Content-Encoding`` alone) and answers ``If-None-Match`` revalidations with
304 without a body.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import struct
import zlib
from dataclasses import dataclass, field
from typing import Any, Literal

import brotli
from google.protobuf import json_format
from google.protobuf.message import Message

from event_svc.domain import EventClock

Encoding = Literal["br", "gzip", "identity"]

# Quality chosen for on-the-fly rendering: a 70,000-seat map mid-sale compresses in a few milliseconds to ~23 KB
# (brotli) or ~25 KB (gzip); the highest settings save a few hundred bytes for ten times the time.
GZIP_LEVEL = 6
BROTLI_QUALITY = 5


@dataclass(eq=False)
class Representation:
    """One rendered answer in every encoding, and what it was rendered from."""

    etag: str
    identity: bytes
    gzip: bytes
    brotli: bytes
    # The event clock observed before the data was read (None: the store that keeps it did not answer).
    clock: EventClock | None = None
    # The seat-map version, for maps.
    version: int | None = None
    # Wall-clock time (Unix seconds) after which the answer changes by itself (a sale opens); None: never.
    expires_at: float | None = None
    # When this process rendered or loaded it (monotonic seconds), and when it was rendered (Unix seconds).
    loaded_at: float = 0.0
    rendered_at: float = 0.0
    # Derived byte strings (stream frames of a snapshot), computed once per representation.
    derived: dict[str, bytes] = field(default_factory=dict)

    def body(self, encoding: Encoding) -> bytes:
        if encoding == "br":
            return self.brotli
        if encoding == "gzip":
            return self.gzip
        return self.identity

    @property
    def position(self) -> int | None:
        """The feed position a watcher resumes after, for a snapshot served from this map."""
        return self.clock.head if self.clock is not None else None


def encode(
    body: bytes,
    etag: str,
    *,
    clock: EventClock | None = None,
    version: int | None = None,
    expires_at: float | None = None,
    loaded_at: float = 0.0,
) -> Representation:
    """Compress ``body`` once in every encoding a client may ask for."""
    return Representation(
        etag=etag,
        identity=body,
        gzip=gzip.compress(body, GZIP_LEVEL, mtime=0),
        brotli=brotli.compress(body, quality=BROTLI_QUALITY),
        clock=clock,
        version=version,
        expires_at=expires_at,
        loaded_at=loaded_at,
    )


def proto_json(message: Message) -> bytes:
    """A message in the proto3 JSON mapping, as the edge's transcoder writes it (lowerCamelCase names, every
    field, enums by name, 64-bit integers as strings), on one line."""
    return json_dumps(json_format.MessageToDict(message, always_print_fields_with_no_presence=True))


def json_dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


# --- validators --------------------------------------------------------------------------------------------------


def map_etag(version: int, clock: EventClock | None) -> str:
    """A seat map's validator: its version. Two maps can share a version: a change that drew a lower version
    committed after the map was read (the feed's head is then not the version), or the event's catalog entry was
    edited (its prices or sections); the clock the map was read under then adds a suffix, so a revalidating client
    never keeps the older of the two. (A wholesale catalog replacement, a development reseed, is left out.)"""
    late = clock is not None and clock.head not in (0, version)
    edited = clock is not None and clock.catalog.rpartition(".")[2] not in ("", "0")
    if clock is None or not (late or edited):
        return f'W/"{version}"'
    digest = hashlib.blake2b(f"{clock.head}:{clock.catalog}".encode(), digest_size=4).hexdigest()
    return f'W/"{version}.{digest}"'


def content_etag(body: bytes) -> str:
    """A validator for answers without a version of their own (event pages, layouts): a digest of the bytes."""
    return f'W/"{hashlib.blake2b(body, digest_size=10).hexdigest()}"'


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """``If-None-Match`` with weak comparison (RFC 9110, 13.1.2): any listed tag equal to ``etag``, or ``*``."""
    if not if_none_match:
        return False
    wanted = _opaque(etag)
    for candidate in if_none_match.split(","):
        tag = candidate.strip()
        if tag == "*" or _opaque(tag) == wanted:
            return True
    return False


def _opaque(tag: str) -> str:
    return tag[2:] if tag.startswith("W/") else tag


def negotiate(accept_encoding: str | None) -> Encoding:
    """The best encoding the client accepts (brotli, then gzip), honouring q-values (``gzip;q=0`` refuses)."""
    if not accept_encoding:
        return "identity"
    accepted: dict[str, float] = {}
    for item in accept_encoding.split(","):
        name, _, params = item.strip().partition(";")
        quality = 1.0
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        accepted[name.strip().lower()] = quality
    star = accepted.get("*", 0.0)
    best: Encoding = "identity"
    best_quality = 0.0
    candidates: tuple[Encoding, ...] = ("br", "gzip")
    for encoding in candidates:
        quality = accepted.get(encoding, star)
        if quality > best_quality:
            best, best_quality = encoding, quality
    return best


def cache_control(max_age: int, stale_while_revalidate: int = 0, *, immutable: bool = False) -> str:
    parts = ["public", f"max-age={max_age}"]
    if stale_while_revalidate:
        parts.append(f"stale-while-revalidate={stale_while_revalidate}")
    if immutable:
        parts.append("immutable")
    return ", ".join(parts)


# --- the form kept in Redis --------------------------------------------------------------------------------------

_HEADER = struct.Struct("!III")


def to_blob(representation: Representation) -> bytes:
    """gzip and brotli bodies with the metadata, for Redis (the identity body is the gzip one, inflated)."""
    clock = representation.clock
    meta = json_dumps(
        {
            "etag": representation.etag,
            "version": representation.version,
            "expires_at": representation.expires_at,
            "rendered_at": representation.rendered_at,
            "clock": [clock.head, clock.catalog] if clock is not None else None,
        }
    )
    return (
        _HEADER.pack(len(meta), len(representation.gzip), len(representation.brotli))
        + meta
        + representation.gzip
        + representation.brotli
    )


def from_blob(blob: bytes, *, loaded_at: float) -> Representation:
    """The inverse of :func:`to_blob`; ValueError when the blob is not one."""
    try:
        meta_size, gzip_size, brotli_size = _HEADER.unpack_from(blob)
        offset = _HEADER.size
        meta = json.loads(blob[offset: offset + meta_size])
        offset += meta_size
        gzipped = blob[offset: offset + gzip_size]
        brotlied = blob[offset + gzip_size: offset + gzip_size + brotli_size]
        if len(brotlied) != brotli_size:
            raise ValueError("truncated representation")
        identity = gzip.decompress(gzipped)
    except (struct.error, json.JSONDecodeError, OSError, EOFError, zlib.error) as error:
        raise ValueError(f"not a representation: {error}") from error
    clock = EventClock(int(meta["clock"][0]), str(meta["clock"][1])) if meta.get("clock") else None
    return Representation(
        etag=str(meta["etag"]),
        identity=identity,
        gzip=gzipped,
        brotli=brotlied,
        clock=clock,
        version=meta.get("version"),
        expires_at=meta.get("expires_at"),
        loaded_at=loaded_at,
        rendered_at=float(meta.get("rendered_at") or 0.0),
    )
