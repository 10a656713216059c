"""Best available: adjacent seats in one row, best rank first, never stranding a single seat when avoidable."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from booking_svc.domain import pick_best_block, seat_blocks
from booking_svc.model import CatalogSeat


def _row(section: str, row: str, numbers: list[int], rank_base: int = 0) -> list[CatalogSeat]:
    return [
        CatalogSeat(f"{section}-{row}-{n}", section, row, n, 1, rank_base + n, 1000)
        for n in numbers
    ]


# A hall of up to 3 sections x 4 rows x 12 seats, each seat free or not.
halls = st.lists(
    st.tuples(st.integers(1, 3), st.integers(0, 3), st.integers(1, 12), st.integers(0, 5000)),
    min_size=0,
    max_size=150,
    unique_by=lambda t: t[:3],
).map(
    lambda seats: [
        CatalogSeat(f"S{s}-{'ABCD'[r]}-{n}", f"S{s}", "ABCD"[r], n, 1, rank, 1000) for s, r, n, rank in seats
    ]
)


@settings(max_examples=300, deadline=None)
@given(hall=halls, quantity=st.integers(1, 6))
def test_every_block_is_quantity_adjacent_free_seats_in_one_row(hall, quantity):
    free = {s.seat_id: s for s in hall}
    for block in seat_blocks(hall, quantity):
        seats = [free[seat_id] for seat_id in block.seat_ids]
        assert len(seats) == quantity
        assert len({(s.section_id, s.row_label) for s in seats}) == 1
        numbers = [s.number for s in seats]
        assert numbers == list(range(numbers[0], numbers[0] + quantity))


@settings(max_examples=300, deadline=None)
@given(hall=halls, quantity=st.integers(1, 6))
def test_the_best_block_strands_no_single_seat_when_some_block_avoids_it(hall, quantity):
    blocks = seat_blocks(hall, quantity)
    if not blocks:
        # Then no row has `quantity` consecutive free seats.
        rows: dict[tuple[str, str], set[int]] = {}
        for s in hall:
            rows.setdefault((s.section_id, s.row_label), set()).add(s.number)
        assert not any(all(n + i in numbers for i in range(quantity)) for numbers in rows.values() for n in numbers)
        return
    best = blocks[0]
    if any(not b.strands_single_seat for b in blocks):
        assert not best.strands_single_seat
    same_class = [b for b in blocks if b.strands_single_seat == best.strands_single_seat]
    assert best.rank_total == min(b.rank_total for b in same_class)


def test_a_pair_takes_a_whole_two_seat_gap_rather_than_strand_a_seat():
    # Free: 1-2 and 4-6 of one row (3 is sold). 4-5 or 5-6 would strand 6 or 4; 1-2 strands none.
    hall = _row("S1", "A", [1, 2, 4, 5, 6])
    assert pick_best_block(hall, 2, set()).seat_ids == ("S1-A-1", "S1-A-2")


def test_better_ranked_rows_win_among_blocks_that_strand_nothing():
    front = _row("S1", "A", [1, 2, 3, 4], rank_base=0)
    back = _row("S1", "B", [1, 2, 3, 4], rank_base=100)
    block = pick_best_block(front + back, 4, set())
    assert block.seat_ids == tuple(f"S1-A-{n}" for n in (1, 2, 3, 4))


def test_excluded_seats_are_never_picked():
    hall = _row("S1", "A", [1, 2, 3, 4, 5, 6])
    block = pick_best_block(hall, 2, {"S1-A-1", "S1-A-2"})
    assert block is not None
    assert not {"S1-A-1", "S1-A-2"} & set(block.seat_ids)
    assert pick_best_block(hall, 7, set()) is None
