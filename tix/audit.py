"""The operators' audit trail: every change an operator makes (open a waiting room, cancel a booking, ...) is a row
in ``audit_log`` written in the same transaction as the change, and a structured log line.

Operators reach the internal admin RPCs with the ``tix`` CLI, which names them in the ``x-tix-operator`` metadata
(``TIX_OPERATOR``, else the login name); admin services are never routed on the public edge.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from tix.logs import get_logger

OPERATOR_METADATA_KEY = "x-tix-operator"

log = get_logger("tix.audit")

_RECORD = text(
    "INSERT INTO audit_log (actor, action, target, details) VALUES (:actor, :action, :target, CAST(:details AS jsonb))"
    " RETURNING audit_id"
)


async def record(
    conn: AsyncConnection, *, actor: str, action: str, target: str, details: Mapping[str, object] | None = None
) -> int:
    """Write one audit row in the caller's transaction (so it exists exactly when the change does)."""
    body = dict(details or {})
    audit_id = int(
        await conn.scalar(
            _RECORD, {"actor": actor, "action": action, "target": target, "details": json.dumps(body, default=str)}
        )
    )
    log.info("audit", audit_id=audit_id, actor=actor, action=action, target=target, **body)
    return audit_id
