"""The operators' audit trail: a row exactly when the change commits."""

from __future__ import annotations

from sqlalchemy import text

from tix import audit


async def test_an_audit_row_exists_only_if_the_change_commits(db):
    async with db.begin() as conn:
        await audit.record(conn, actor="ops-ana", action="waiting_room.pause", target="event:7", details={"why": "x"})
    async with db.connect() as conn:
        transaction = await conn.begin()
        await audit.record(conn, actor="ops-ana", action="booking.refund", target="booking:1")
        await transaction.rollback()  # the change it belonged to failed
    async with db.connect() as conn:
        rows = (await conn.execute(text("SELECT actor, action, target, details FROM audit_log"))).all()
    assert [tuple(r) for r in rows] == [("ops-ana", "waiting_room.pause", "event:7", {"why": "x"})]
