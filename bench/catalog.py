"""The flash-sale catalog: one stadium-sized layout and on-sale events on it, tickets materialised up front.

Seats come in rows of 40, 25 rows per section (1,000 seats), so a stadium of N seats has N/1000 sections; fans buy
blocks of four adjacent seats (seats 1-4, 5-8, ... of a row), so blocks never partly overlap.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg

SEATS_PER_ROW = 40
ROWS_PER_SECTION = 25
BLOCK = 4
TIER_PRICES = (15000, 9500, 6000)


@dataclass(frozen=True)
class SaleEvent:
    event_id: int
    seats: int
    blocks: tuple[tuple[str, ...], ...]  # every 4-seat block, front rows first


def layout_seats(layout_id: str, seats: int) -> list[tuple]:
    if seats % SEATS_PER_ROW:
        raise ValueError(f"--seats must be a multiple of {SEATS_PER_ROW}")
    out = []
    for i in range(seats // SEATS_PER_ROW):
        section, row = divmod(i, ROWS_PER_SECTION)
        label = chr(ord("A") + row)
        for n in range(1, SEATS_PER_ROW + 1):
            tier = 1 + min(2, row * 3 // ROWS_PER_SECTION)
            rank = row * 1000 + abs(n - SEATS_PER_ROW // 2)
            out.append(
                (layout_id, f"S{section + 1}-{label}-{n}", f"S{section + 1}", f"Section {section + 1}", label, n,
                 tier, float(section * (SEATS_PER_ROW + 2) + n), float(row + 1), rank)
            )
    return out


def seat_blocks(seats: int) -> tuple[tuple[str, ...], ...]:
    blocks = []
    for i in range(seats // SEATS_PER_ROW):
        section, row = divmod(i, ROWS_PER_SECTION)
        label = chr(ord("A") + row)
        for first in range(1, SEATS_PER_ROW + 1, BLOCK):
            blocks.append(tuple(f"S{section + 1}-{label}-{n}" for n in range(first, first + BLOCK)))
    return tuple(blocks)


async def ensure_stadium(conn: psycopg.AsyncConnection, seats: int) -> str:
    layout_id = f"bench-stadium-{seats}"
    found = await (await conn.execute("SELECT 1 FROM layouts WHERE layout_id = %s", (layout_id,))).fetchone()
    if found:
        return layout_id
    await conn.execute(
        "INSERT INTO layouts (layout_id, name, kind, capacity, tier_count) VALUES (%s, %s, 'stadium', %s, 3)",
        (layout_id, f"Bench Stadium ({seats} seats)", seats),
    )
    async with conn.cursor().copy(
        "COPY layout_seats (layout_id, seat_id, section_id, section_name, row_label, number, price_tier, x, y, rank)"
        " FROM STDIN"
    ) as copy:
        for row in layout_seats(layout_id, seats):
            await copy.write_row(row)
    return layout_id


async def materialise_tickets(conn: psycopg.AsyncConnection, event_id: int) -> None:
    """The same statement the services run on first use (tix.inventory), done before the clock starts."""
    await conn.execute(
        "WITH claimed AS (UPDATE events SET tickets_ready = true WHERE event_id = %(e)s AND NOT tickets_ready"
        " RETURNING event_id, venue_id, tier_prices)"
        " INSERT INTO tickets (event_id, seat_id, section_id, status, price_minor, rank)"
        " SELECT c.event_id, s.seat_id, s.section_id, 'available',"
        " c.tier_prices[LEAST(s.price_tier, cardinality(c.tier_prices))], s.rank"
        " FROM claimed c JOIN venues v ON v.venue_id = c.venue_id JOIN layout_seats s ON s.layout_id = v.layout_id",
        {"e": event_id},
    )


async def create_sale_event(dsn: str, seats: int, name: str, *, max_seats_per_user: int = 8) -> SaleEvent:
    """An on-sale event (no waiting room) on the stadium, with its ticket rows created."""
    async with await psycopg.AsyncConnection.connect(dsn) as conn:
        layout_id = await ensure_stadium(conn, seats)
        venue_id = (await (await conn.execute(
            "INSERT INTO venues (name, city, region, country_code, latitude, longitude, time_zone, layout_id,"
            " capacity) VALUES ('Bench Stadium', 'Chicago', 'IL', 'US', 41.86, -87.62, 'America/Chicago', %s, %s)"
            " RETURNING venue_id",
            (layout_id, seats),
        )).fetchone())[0]
        performer_id = (await (await conn.execute(
            "INSERT INTO performers (name, category, genre) VALUES ('The Bench Band', 1, 'rock')"
            " RETURNING performer_id"
        )).fetchone())[0]
        event_id = (await (await conn.execute(
            "INSERT INTO events (name, description, category, venue_id, performer_id, starts_at, ends_at,"
            " sale_starts_at, currency, tier_prices, max_seats_per_user, queue_enabled)"
            " VALUES (%s, 'flash sale benchmark', 1, %s, %s, now() + interval '30 days',"
            " now() + interval '30 days 3 hours', now() - interval '1 minute', 'USD', %s, %s, false)"
            " RETURNING event_id",
            (name, venue_id, performer_id, list(TIER_PRICES), max_seats_per_user),
        )).fetchone())[0]
        await materialise_tickets(conn, event_id)
        await conn.commit()
        await conn.execute("ANALYZE tickets")
        await conn.commit()
    return SaleEvent(event_id=event_id, seats=seats, blocks=seat_blocks(seats))
