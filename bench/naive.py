"""The seed's "bad solution", as the baseline the real design is measured against: reserve and pay in one long
PostgreSQL transaction that locks the tickets with ``SELECT ... FOR UPDATE`` and keeps them locked while the
PaymentIntent is created and the fan pays, then writes the booking.

It cannot double-book (the row locks serialise buyers of a block), but every buyer of a contended block queues on
those locks for the whole checkout, each waiting fan pins a database connection, and the losers only learn they
lost after the winner has paid. Here the "fan" pays instantly; with a human paying for minutes it is far worse.
"""

from __future__ import annotations

import uuid
from typing import Any

import psycopg


class _Lost(Exception):
    """Rolls the transaction back: some seat was not available."""


class _PaymentFailed(Exception):
    pass


async def naive_reserve_and_pay(
    conn: psycopg.AsyncConnection, fans: Any, event_id: int, block: tuple[str, ...], user_id: str
) -> str:
    """One fan's whole checkout for ``block``; returns ``confirmed``, ``lost`` or ``payment failed``.

    ``conn`` is in autocommit mode (``transaction()`` is then the whole transaction); ``fans.stripe`` is an httpx
    client on localstripe and ``fans.pay`` pays a PaymentIntent as the fan would.
    """
    seats = list(block)
    try:
        async with conn.transaction():
            rows = await (await conn.execute(
                "SELECT seat_id, status, price_minor FROM tickets WHERE event_id = %s AND seat_id = ANY(%s)"
                " ORDER BY seat_id FOR UPDATE",
                (event_id, seats),
            )).fetchall()
            if len(rows) != len(seats) or any(status != "available" for _, status, _ in rows):
                raise _Lost
            booking_id = uuid.uuid4()
            prices = [price for _, _, price in rows]
            total = sum(prices)
            # Still inside the transaction: the four row locks are held across both Stripe calls.
            created = await fans.stripe.post(
                "/v1/payment_intents",
                data={
                    "amount": str(total),
                    "currency": "usd",
                    "metadata[booking_id]": str(booking_id),
                    "metadata[user_id]": user_id,
                    "metadata[event_id]": str(event_id),
                },
            )
            created.raise_for_status()
            intent = created.json()
            if not await fans.pay(intent["id"]):
                raise _PaymentFailed
            await conn.execute(
                "UPDATE tickets SET status = 'booked', booking_id = %s WHERE event_id = %s AND seat_id = ANY(%s)",
                (booking_id, event_id, seats),
            )
            await conn.execute(
                "INSERT INTO bookings (booking_id, event_id, user_id, status, seat_ids, seat_prices, total_minor,"
                " currency, expires_at, confirmed_at) VALUES (%s, %s, %s, 'confirmed', %s, %s, %s, 'USD', now(), now())",
                (booking_id, event_id, user_id, [row[0] for row in rows], prices, total),
            )
            await conn.execute(
                "INSERT INTO payments (booking_id, payment_intent_id, client_secret, amount_minor, currency, status)"
                " VALUES (%s, %s, %s, %s, 'USD', 'succeeded')",
                (booking_id, intent["id"], intent["client_secret"], total),
            )
    except _Lost:
        return "lost"
    except _PaymentFailed:
        return "payment failed"
    return "confirmed"
