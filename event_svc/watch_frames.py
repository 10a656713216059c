"""The bytes of a seat watch over HTTP: Server-Sent Events for browsers, newline-delimited JSON for everyone else.

Every frame carries a ``WatchSeatsResponse`` in the proto3 JSON mapping (as the edge's transcoder would write it).
In SSE the frame's ``event:`` names the kind (``snapshot``, ``changes``, ``heartbeat``, ``error``) and ``id:`` is the
feed position the client has reached (a change's version; for a snapshot, the last publication it contains), so a
browser's ``EventSource`` reconnects with ``Last-Event-ID`` and resumes exactly there. Frames are rendered once per
change and format and shared by every watcher; the chunk framing of HTTP/1.1 is included, so a watcher's write is
one ``transport.write`` of shared bytes.
"""

from __future__ import annotations

import enum

from event_svc.representations import json_dumps
from tix import seatfeed

_STATUS_NAMES = {status: f"SEAT_STATUS_{status.upper()}" for status in seatfeed.SEAT_STATUSES}


class StreamFormat(enum.Enum):
    SSE = "sse"
    NDJSON = "ndjson"

    @property
    def content_type(self) -> str:
        return "text/event-stream; charset=utf-8" if self is StreamFormat.SSE else "application/x-ndjson"


def chunk(data: bytes) -> bytes:
    """One HTTP/1.1 chunk (Transfer-Encoding: chunked)."""
    return b"%x\r\n%s\r\n" % (len(data), data)


LAST_CHUNK = b"0\r\n\r\n"


def _frame(fmt: StreamFormat, kind: str, payload: bytes, event_id: int | None) -> bytes:
    if fmt is StreamFormat.NDJSON:
        return payload + b"\n"
    lines = [b"event: " + kind.encode()]
    if event_id is not None:
        lines.append(b"id: %d" % event_id)
    lines.append(b"data: " + payload)
    return b"\n".join(lines) + b"\n\n"


def changes_frame(fmt: StreamFormat, message: seatfeed.SeatFeedMessage) -> bytes:
    payload = json_dumps(
        {
            "version": str(message.version),
            "changes": {
                "changes": [
                    {"seatId": seat_id, "status": _STATUS_NAMES.get(status, "SEAT_STATUS_UNSPECIFIED")}
                    for seat_id, status in message.changes
                ]
            },
        }
    )
    return chunk(_frame(fmt, "changes", payload, message.version))


def snapshot_frame(fmt: StreamFormat, map_json: bytes, position: int) -> bytes:
    """A whole seat map (its proto3 JSON, rendered once per map) at feed ``position``."""
    payload = b'{"version":"%d","snapshot":%s}' % (position, map_json)
    return chunk(_frame(fmt, "snapshot", payload, position))


def heartbeat_frame(fmt: StreamFormat, position: int | None) -> bytes:
    # No id: a heartbeat moves no position, and an EventSource keeps the last change's id for its reconnect.
    payload = b'{"version":"%d","heartbeat":{}}' % (position or 0)
    return chunk(_frame(fmt, "heartbeat", payload, None))


def retry_frame(milliseconds: int) -> bytes:
    """SSE only: how long an EventSource waits before reconnecting."""
    return chunk(b"retry: %d\n\n" % milliseconds)


def error_frame(fmt: StreamFormat, code: int, reason: str, message: str) -> bytes:
    """The end of a stream that the server closes, with a google.rpc.Status saying why."""
    status = {
        "code": code,
        "message": message,
        "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": reason, "domain": "tix.dev"}],
    }
    body = json_dumps({"error": status}) if fmt is StreamFormat.NDJSON else json_dumps(status)
    return chunk(_frame(fmt, "error", body, None))
