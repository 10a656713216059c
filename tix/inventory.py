"""Tickets of an event, materialised from its venue's seat layout on first use.

A million-event catalog keeps one row per seat only for events someone has opened; both the event service (seat
map) and the booking service (holds) call ``ensure_tickets`` before touching an event's tickets.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

_MATERIALISE = text(
    """
    WITH claimed AS (
        UPDATE events SET tickets_ready = true, updated_at = now()
        WHERE event_id = :event_id AND NOT tickets_ready
        RETURNING event_id, venue_id, tier_prices
    )
    INSERT INTO tickets (event_id, seat_id, section_id, status, price_minor, rank)
    SELECT c.event_id, s.seat_id, s.section_id, 'available',
           c.tier_prices[LEAST(s.price_tier, cardinality(c.tier_prices))], s.rank
    FROM claimed c
    JOIN venues v ON v.venue_id = c.venue_id
    JOIN layout_seats s ON s.layout_id = v.layout_id
    ON CONFLICT DO NOTHING
    """
)


async def ensure_tickets(conn: AsyncConnection, event_id: int) -> None:
    """Create the event's ticket rows once. Concurrent callers serialise on the event row's update, so the loser
    waits for the winner's commit and then finds ``tickets_ready`` already true."""
    ready = await conn.scalar(text("SELECT tickets_ready FROM events WHERE event_id = :e"), {"e": event_id})
    if ready is None or ready:
        return
    await conn.execute(_MATERIALISE, {"event_id": event_id})
