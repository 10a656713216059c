"""Best available's quality rules (booking_svc.blocks): adjacent seats in one row, best rows first, never stranding a
single seat when avoidable, nearest the row's best seat."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from booking_svc.blocks import ROWS_LOOKED_AT, FreeSeat, best_block_in_row, candidate_blocks


def _strands(free: list[bool], start: int, quantity: int) -> bool:
    left = 0
    while start - left - 1 >= 0 and free[start - left - 1]:
        left += 1
    right = 0
    end = start + quantity - 1
    while end + right + 1 < len(free) and free[end + right + 1]:
        right += 1
    return left == 1 or right == 1


def _blocks(free: list[bool], quantity: int) -> list[int]:
    return [s for s in range(len(free) - quantity + 1) if all(free[s : s + quantity])]


rows = st.lists(st.booleans(), min_size=1, max_size=40)


@settings(max_examples=500, deadline=None)
@given(free=rows, quantity=st.integers(1, 8), data=st.data())
def test_the_block_of_a_row_is_free_adjacent_and_strands_a_single_only_when_every_block_does(free, quantity, data):
    centre = data.draw(st.integers(0, len(free) - 1))
    block = best_block_in_row(free, quantity, centre)
    possible = _blocks(free, quantity)
    if not possible:
        assert block is None
        return
    assert block is not None
    assert block.start in possible
    assert block.strands_single == _strands(free, block.start, quantity)
    if block.strands_single:
        assert all(_strands(free, s, quantity) for s in possible)
    # Nearest the best seat among the blocks of the same kind.
    same_kind = [s for s in possible if _strands(free, s, quantity) == block.strands_single]
    assert block.distance == min(abs(2 * s + quantity - 1 - 2 * centre) for s in same_kind)


def test_a_run_of_three_for_two_fans_is_left_for_a_run_where_no_single_is_stranded():
    #          run of 3        run of 4
    free = [True, True, True, False, True, True, True, True]
    block = best_block_in_row(free, 2, centre=1)
    assert block is not None
    assert not block.strands_single
    assert block.start in (4, 6)  # the ends of the run of 4: taking its middle would leave two singles


# A hall of up to 3 sections x 4 rows x 12 seats, each seat free or not; rank grows with the row.
halls = st.lists(
    st.tuples(st.integers(1, 3), st.integers(0, 3), st.integers(1, 12)),
    min_size=0,
    max_size=150,
    unique_by=lambda t: t,
).map(
    lambda seats: [
        FreeSeat(f"S{s}-{'ABCD'[r]}-{n}", f"S{s}", "ABCD"[r], n, r * 100 + abs(n - 6) * 3 + s) for s, r, n in seats
    ]
)


@settings(max_examples=300, deadline=None)
@given(hall=halls, quantity=st.integers(1, 6))
def test_candidate_blocks_are_disjoint_adjacent_free_seats_in_one_row(hall, quantity):
    by_id = {s.seat_id: s for s in hall}
    used: set[str] = set()
    for block in candidate_blocks(hall, quantity):
        seats = [by_id[seat_id] for seat_id in block]
        assert len(seats) == quantity
        assert len({(s.section_id, s.row_label) for s in seats}) == 1
        numbers = [s.number for s in seats]
        assert numbers == list(range(numbers[0], numbers[0] + quantity))
        assert not used & set(block)
        used |= set(block)


@settings(max_examples=300, deadline=None)
@given(hall=halls, quantity=st.integers(1, 6))
def test_the_first_candidate_comes_from_the_best_rows_and_strands_no_single_when_avoidable(hall, quantity):
    blocks = candidate_blocks(hall, quantity)
    if not blocks:
        return
    first = blocks[0]
    rows: dict[tuple[str, str], list[FreeSeat]] = {}
    for seat in hall:
        rows.setdefault((seat.section_id, seat.row_label), []).append(seat)

    def strands(block: list[str]) -> bool:
        seat = next(s for s in hall if s.seat_id == block[0])
        numbers = {s.number for s in rows[(seat.section_id, seat.row_label)]}
        lo, hi = seat.number, seat.number + quantity - 1
        left = 0
        while lo - left - 1 in numbers:
            left += 1
        right = 0
        while hi + right + 1 in numbers:
            right += 1
        return left == 1 or right == 1

    runs = []
    for row in rows.values():
        numbers = sorted(s.number for s in row)
        run = 1
        for a, b in zip(numbers, [*numbers[1:], None], strict=True):
            if b == a + 1:
                run += 1
            else:
                runs.append(run)
                run = 1
    runs = [r for r in runs if r >= quantity]
    if len(runs) <= ROWS_LOOKED_AT and any(r == quantity or r >= quantity + 2 for r in runs):
        # Some row has a block that strands nothing, among the rows looked at: the first candidate is one.
        assert not strands(first)
