"""After a sale has settled, prove it sold no seat twice and took no fan's money without a ticket.

Checks, for one event:
1. no seat is held by two live bookings (confirmed or reserved), and no ticket row is duplicated;
2. every succeeded PaymentIntent of the event (listed from Stripe/localstripe by its ``event_id`` metadata) belongs
   to a confirmed booking that records it, or has been refunded;
3. every ticket's state matches its booking: booked ⇔ a confirmed booking listing the seat, reserved ⇒ a reserved
   booking listing it, and every confirmed booking's seats are booked by it.

Usable from tests: ``await check_sale(libpq_dsn, event_id, stripe_api_base)`` returns a ``SaleCheck``; ``ok`` is
True when ``violations`` is empty.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import httpx
import psycopg

from tix.settings import DEVELOPMENT_STRIPE_API_KEY

_MAX_LISTED = 20  # violations listed per kind; the counts are always complete


@dataclass
class SaleCheck:
    event_id: int
    seats_booked: int = 0
    seats_reserved: int = 0
    bookings_by_status: dict[str, int] = field(default_factory=dict)
    payments_succeeded: int = 0
    payments_refunded: int = 0
    violations: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    violation_counts: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    @property
    def ok(self) -> bool:
        return not self.violation_counts

    def violate(self, kind: str, detail: str) -> None:
        self.violation_counts[kind] += 1
        if len(self.violations[kind]) < _MAX_LISTED:
            self.violations[kind].append(detail)

    def summary(self) -> str:
        head = (
            f"event {self.event_id}: {self.seats_booked} seats booked, {self.seats_reserved} reserved; bookings "
            f"{dict(sorted(self.bookings_by_status.items()))}; {self.payments_succeeded} payments succeeded, "
            f"{self.payments_refunded} refunded"
        )
        if self.ok:
            return f"OK   {head}"
        lines = [f"FAIL {head}"]
        for kind, count in self.violation_counts.items():
            lines.append(f"  {kind}: {count}, e.g. {'; '.join(self.violations[kind][:3])}")
        return "\n".join(lines)


async def list_stripe(api_base: str, resource: str, *, api_key: str = DEVELOPMENT_STRIPE_API_KEY) -> list[dict]:
    """Every object of a list endpoint (``payment_intents``, ``refunds``), following ``has_more`` pages."""
    out: list[dict] = []
    params: dict[str, str | int] = {"limit": 1000}
    async with httpx.AsyncClient(
        base_url=api_base, headers={"Authorization": f"Bearer {api_key}"}, timeout=120
    ) as http:
        while True:
            response = await http.get(f"/v1/{resource}", params=params)
            response.raise_for_status()
            page = response.json()
            out.extend(page["data"])
            if not page.get("has_more") or not page["data"]:
                return out
            params["starting_after"] = page["data"][-1]["id"]


async def check_sale(dsn: str, event_id: int, stripe_api_base: str, *, api_key: str = DEVELOPMENT_STRIPE_API_KEY) -> SaleCheck:
    report = SaleCheck(event_id)
    async with await psycopg.AsyncConnection.connect(dsn) as conn:
        tickets = await (await conn.execute(
            "SELECT seat_id, status, booking_id::text FROM tickets WHERE event_id = %s", (event_id,)
        )).fetchall()
        bookings = await (await conn.execute(
            "SELECT b.booking_id::text, b.status, b.seat_ids, p.payment_intent_id, p.refund_id"
            " FROM bookings b LEFT JOIN payments p ON p.booking_id = b.booking_id WHERE b.event_id = %s",
            (event_id,),
        )).fetchall()

    # 1. one row per seat, and no seat in two live bookings.
    seen_seats: set[str] = set()
    for seat_id, _, _ in tickets:
        if seat_id in seen_seats:
            report.violate("duplicate_ticket_row", seat_id)
        seen_seats.add(seat_id)
    by_status: dict[str, int] = defaultdict(int)
    live_holder: dict[str, str] = {}
    booking_by_id: dict[str, tuple[str, set[str], str | None, str | None]] = {}
    for booking_id, status, seat_ids, intent_id, refund_id in bookings:
        by_status[status] += 1
        booking_by_id[booking_id] = (status, set(seat_ids), intent_id, refund_id)
        if status in ("confirmed", "reserved"):
            for seat in seat_ids:
                if seat in live_holder:
                    report.violate("seat_sold_twice", f"{seat}: {live_holder[seat]} and {booking_id}")
                else:
                    live_holder[seat] = booking_id
    report.bookings_by_status = dict(by_status)

    # 3. tickets agree with bookings, both ways.
    booked_by: dict[str, str] = {}
    for seat_id, status, booking_id in tickets:
        if status == "booked":
            report.seats_booked += 1
            booked_by[seat_id] = booking_id
            holder = booking_by_id.get(booking_id)
            if holder is None or holder[0] != "confirmed" or seat_id not in holder[1]:
                state = holder[0] if holder else "missing"
                report.violate("booked_ticket_without_confirmed_booking", f"{seat_id} -> {booking_id} ({state})")
        elif status == "reserved":
            report.seats_reserved += 1
            holder = booking_by_id.get(booking_id)
            if holder is None or holder[0] != "reserved" or seat_id not in holder[1]:
                state = holder[0] if holder else "missing"
                report.violate("reserved_ticket_without_reserved_booking", f"{seat_id} -> {booking_id} ({state})")
        elif booking_id is not None:
            report.violate("available_ticket_with_holder", f"{seat_id} -> {booking_id}")
    for booking_id, (status, seat_ids, _, _) in booking_by_id.items():
        if status == "confirmed":
            for seat in seat_ids:
                if booked_by.get(seat) != booking_id:
                    report.violate("confirmed_booking_seat_not_booked", f"{booking_id}: {seat}")

    # 2. no money taken without a ticket.
    intents = [
        pi for pi in await list_stripe(stripe_api_base, "payment_intents", api_key=api_key)
        if str((pi.get("metadata") or {}).get("event_id")) == str(event_id)
    ]
    refunded_intents = {
        r["payment_intent"] for r in await list_stripe(stripe_api_base, "refunds", api_key=api_key)
        if r.get("payment_intent")
    }
    for pi in intents:
        if pi["status"] != "succeeded":
            continue
        report.payments_succeeded += 1
        if pi["id"] in refunded_intents:
            report.payments_refunded += 1
            continue
        booking_id = (pi.get("metadata") or {}).get("booking_id")
        holder = booking_by_id.get(booking_id or "")
        if holder is None or holder[0] != "confirmed" or holder[2] != pi["id"]:
            state = holder[0] if holder else "no booking"
            report.violate("paid_without_ticket_or_refund", f"{pi['id']} (booking {booking_id}: {state})")
    return report
