"""Event viewing rules without stores: sale status, seat-map encoding, and load coalescing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from event_svc.domain import (
    EventCatalogEntry,
    LayoutSeat,
    Performer,
    SaleStatus,
    SeatMapView,
    SeatState,
    SeatStatus,
    SectionPrice,
    Venue,
    WaitingRoom,
    build_layout,
    build_seat_map,
    natural_key,
    sale_status,
)
from event_svc.repository import decode_entry, encode_entry

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def entry(**changes) -> EventCatalogEntry:
    fields = {
        "event_id": 7,
        "name": "Night Show",
        "description": "",
        "category": 1,
        "starts_at": NOW + timedelta(days=10),
        "ends_at": NOW + timedelta(days=10, hours=3),
        "sale_starts_at": NOW - timedelta(days=1),
        "sale_ends_at": None,
        "cancelled": False,
        "currency": "EUR",
        "tier_prices": (9000, 4000),
        "max_seats_per_user": 6,
        "waiting_room": WaitingRoom(False, 50, 1000),
        "venue": Venue(3, "Hall", "Lyon", "", "FR", 45.76, 4.83, "Europe/Paris", 6, "hall", "Hall"),
        "performer": Performer(4, "Band", 1, "rock"),
        "sections": (
            SectionPrice("P1", "Parterre", 2, 4000, 9000, 4),
            SectionPrice("P2", "Balcony", 2, 4000, 4000, 2),
        ),
    }
    fields.update(changes)
    return EventCatalogEntry(**fields)


def test_sale_status_prefers_cancellation_then_time_then_stock():
    assert sale_status(entry(cancelled=True), 10, NOW) is SaleStatus.CANCELLED
    assert sale_status(entry(starts_at=NOW - timedelta(minutes=1)), 10, NOW) is SaleStatus.ENDED
    assert sale_status(entry(sale_starts_at=NOW + timedelta(hours=1)), 10, NOW) is SaleStatus.SCHEDULED
    assert sale_status(entry(), 0, NOW) is SaleStatus.SOLD_OUT
    assert sale_status(entry(), 1, NOW) is SaleStatus.ON_SALE


def test_prices_come_from_tiers_and_tiers_beyond_the_list_cost_the_last_price():
    event = entry()
    assert (event.price_of_tier(1), event.price_of_tier(2), event.price_of_tier(5)) == (9000, 4000, 4000)
    assert (event.min_price_minor, event.max_price_minor, event.total_count) == (4000, 9000, 6)


def test_rows_and_sections_sort_as_printed_on_a_plan():
    labels = ["B", "AA", "A", "Z", "10", "2"]
    assert sorted(labels, key=natural_key) == ["2", "A", "B", "Z", "10", "AA"]


def seats() -> list[LayoutSeat]:
    out = []
    for section, rows in (("P1", ("A", "B")), ("P2", ("A",))):
        for row in rows:
            for number in (3, 4) if section == "P1" else (1, 2):
                tier = 1 if (section, row) == ("P1", "A") else 2
                out.append(LayoutSeat(f"{section}-{row}-{number}", section, section, row, number, tier, number, 1.0, number))
    return list(reversed(out))  # the order rows arrive in must not matter


def test_compact_map_marks_taken_seats_in_seat_number_order():
    layout = build_layout("hall", seats())
    state = SeatState(7, 12, {"P1-A-4": SeatStatus.BOOKED, "P2-A-1": SeatStatus.RESERVED, "gone": SeatStatus.BOOKED})
    seat_map = build_seat_map(entry(), layout, state)
    assert seat_map.version == 12
    p1, p2 = seat_map.sections
    assert [(r.row_label, r.first_seat_number, r.status_codes) for r in p1.rows] == [("A", 3, "AB"), ("B", 3, "AA")]
    assert [r.status_codes for r in p2.rows] == ["RA"]
    assert (p1.available_count, p2.available_count) == (3, 1)
    assert not p1.rows[0].seats


def test_full_map_carries_each_seat_with_its_price_and_status():
    layout = build_layout("hall", seats())
    state = SeatState(7, 0, {"P1-A-4": SeatStatus.BOOKED})
    seat_map = build_seat_map(entry(), layout, state, section_id="P1", view=SeatMapView.FULL)
    assert [s.section.section_id for s in seat_map.sections] == ["P1"]
    first_row = seat_map.sections[0].rows[0].seats
    assert [(s.seat_id, s.status, s.price_minor, s.x) for s in first_row] == [
        ("P1-A-3", SeatStatus.AVAILABLE, 9000, 3.0),
        ("P1-A-4", SeatStatus.BOOKED, 9000, 4.0),
    ]


def test_cached_catalog_entries_round_trip_through_json():
    original = entry()
    assert decode_entry(encode_entry(original)) == original


@st.composite
def layouts_with_taken_seats(draw):
    sections = draw(st.integers(1, 4))
    seats = []
    for s in range(1, sections + 1):
        for r in range(draw(st.integers(1, 6))):
            first = draw(st.integers(1, 20))
            for n in range(first, first + draw(st.integers(1, 15))):
                seats.append(LayoutSeat(f"{s}-{r}-{n}", f"S{s}", f"Section {s}", str(r + 1), n, 1, n, r, n))
    taken = draw(
        st.dictionaries(st.sampled_from([seat.seat_id for seat in seats]), st.sampled_from(
            [SeatStatus.RESERVED, SeatStatus.BOOKED]
        ))
    )
    return draw(st.permutations(seats)), taken


@settings(max_examples=150, deadline=None)
@given(layouts_with_taken_seats())
def test_the_compact_map_decodes_back_to_exactly_the_taken_seats(layout_and_taken):
    seats, taken = layout_and_taken
    layout = build_layout("random", seats)
    sections = tuple(SectionPrice(s.section_id, s.name, 1, 100, 100, s.size) for s in layout.sections)
    seat_map = build_seat_map(entry(sections=sections), layout, SeatState(7, 1, taken))
    by_place = {(seat.section_id, seat.row_label, seat.number): seat.seat_id for seat in seats}
    decoded = {}
    for section in seat_map.sections:
        codes_total = 0
        for row in section.rows:
            codes_total += len(row.status_codes)
            for offset, code in enumerate(row.status_codes):
                if code != "A":
                    seat_id = by_place[(section.section.section_id, row.row_label, row.first_seat_number + offset)]
                    decoded[seat_id] = SeatStatus.RESERVED if code == "R" else SeatStatus.BOOKED
        assert section.available_count == codes_total - sum(1 for c in "".join(r.status_codes for r in section.rows)
                                                            if c != "A")
    assert decoded == taken
    assert sum(len(row.status_codes) for s in seat_map.sections for row in s.rows) == len(seats)
