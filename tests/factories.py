"""Small, explicit catalog rows for tests (the demo seed is for people and benchmarks, not for assertions)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import insert, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from tix import schema

TEST_LAYOUT_ID = "test-hall"


@dataclass(frozen=True)
class TestEvent:
    event_id: int
    venue_id: int
    performer_id: int
    seat_ids: list[str]


def layout_rows(layout_id: str, sections: int, rows: int, seats_per_row: int) -> list[dict]:
    """A rectangular hall: sections side by side, rows A.. from the stage back, seats 1..N."""
    out = []
    rank = 0
    for s in range(1, sections + 1):
        for r in range(rows):
            label = chr(ord("A") + r)
            for n in range(1, seats_per_row + 1):
                rank += 1
                out.append(
                    {
                        "layout_id": layout_id,
                        "seat_id": f"S{s}-{label}-{n}",
                        "section_id": f"S{s}",
                        "section_name": f"Section {s}",
                        "row_label": label,
                        "number": n,
                        "price_tier": 1 if r < rows // 2 else 2,
                        "x": float((s - 1) * (seats_per_row + 2) + n),
                        "y": float(r + 1),
                        "rank": r * 1000 + abs(n - (seats_per_row + 1) // 2),
                    }
                )
    return out


async def ensure_layout(
    engine: AsyncEngine, layout_id: str = TEST_LAYOUT_ID, sections: int = 2, rows: int = 5, seats_per_row: int = 10
) -> None:
    async with engine.begin() as conn:
        found = await conn.scalar(select(schema.layouts.c.layout_id).where(schema.layouts.c.layout_id == layout_id))
        if found:
            return
        seats = layout_rows(layout_id, sections, rows, seats_per_row)
        await conn.execute(
            insert(schema.layouts).values(
                layout_id=layout_id, name=layout_id, kind="hall", capacity=len(seats), tier_count=2
            )
        )
        await conn.execute(insert(schema.layout_seats), seats)


async def create_event(
    engine: AsyncEngine,
    *,
    name: str = "The Test Band Live",
    layout_id: str = TEST_LAYOUT_ID,
    sections: int = 2,
    rows: int = 5,
    seats_per_row: int = 10,
    tier_prices: tuple[int, ...] = (12500, 7500),
    on_sale: bool = True,
    queue_enabled: bool = False,
    max_seats_per_user: int = 8,
    starts_in: timedelta = timedelta(days=30),
    city: str = "Chicago",
) -> TestEvent:
    """An event (with venue and performer) on a small layout; its tickets are materialised lazily by services."""
    await ensure_layout(engine, layout_id, sections, rows, seats_per_row)
    now = datetime.now(UTC)
    async with engine.begin() as conn:
        capacity = await conn.scalar(
            text("SELECT count(*) FROM layout_seats WHERE layout_id = :l"), {"l": layout_id}
        )
        venue_id = await conn.scalar(
            insert(schema.venues)
            .values(
                name="Test Hall", city=city, region="IL", country_code="US", latitude=41.88, longitude=-87.63,
                time_zone="America/Chicago", layout_id=layout_id, capacity=capacity,
            )
            .returning(schema.venues.c.venue_id)
        )
        performer_id = await conn.scalar(
            insert(schema.performers)
            .values(name="The Test Band", category=1, genre="rock")
            .returning(schema.performers.c.performer_id)
        )
        event_id = await conn.scalar(
            insert(schema.events)
            .values(
                name=name, description="A test event", category=1, venue_id=venue_id, performer_id=performer_id,
                starts_at=now + starts_in, ends_at=now + starts_in + timedelta(hours=3),
                sale_starts_at=now - timedelta(days=1) if on_sale else now + timedelta(days=1),
                currency="USD", tier_prices=list(tier_prices), max_seats_per_user=max_seats_per_user,
                queue_enabled=queue_enabled,
            )
            .returning(schema.events.c.event_id)
        )
        seat_ids = list(
            await conn.scalars(
                text("SELECT seat_id FROM layout_seats WHERE layout_id = :l ORDER BY rank, seat_id"), {"l": layout_id}
            )
        )
    return TestEvent(event_id, venue_id, performer_id, seat_ids)


# Tables emptied between tests; layouts are static reference data and survive.
_DATA_TABLES = (
    "stripe_events, payments, payment_cancellations, tickets, bookings, search_documents, outbox, outbox_cursors, "
    "events, performers, venues, audit_log"
)


async def empty_catalog(engine: AsyncEngine, *, restart_identity: bool = True) -> AsyncEngine:
    """Empty the data tables; ``restart_identity`` starts event, venue and booking ids at 1 again."""
    restart = " RESTART IDENTITY" if restart_identity else ""
    for attempt in range(5):
        try:
            async with engine.begin() as conn:
                await conn.execute(text(f"TRUNCATE {_DATA_TABLES}{restart} CASCADE"))
            return engine
        except DBAPIError as error:
            # A server still shutting down from the previous test may be mid-query; its locks go in a moment.
            if "deadlock detected" not in str(error) or attempt == 4:
                raise
            await asyncio.sleep(0.2 * (attempt + 1))
    return engine
