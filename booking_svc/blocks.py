"""The quality rules of best-available, as plain Python: which block of N adjacent seats a fan gets from a row.

The Redis allocator (``booking_svc.allocation``) runs the same rules in Lua; the database path (Redis down) runs
them here over the free seats it locked. No I/O and no imports beyond the standard library.

Rules, in order:
1. the seats are adjacent in one row (consecutive numbers; a gap in the numbering splits a row into segments);
2. rows are taken best first (the seat ``rank`` the venue layout gives, best = lowest; a row's quality is its best
   seat's rank), within the price tier or section the fan asked for;
3. a block that would leave exactly one free seat between it and the end of its run of free seats "strands" that
   seat (a single between strangers rarely sells), so a block that strands nothing wins over one that does, even
   in a slightly worse row (the next few rows are looked at), and a stranding block is taken only when none of
   those rows has one that strands nothing;
4. within a row, the block closest to the row's best seat (its centre, for a row facing the stage) wins.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

# How many rows, best first, are looked at for a block that strands no single seat before a stranding block in
# the best row is accepted. The Lua allocator uses the same number.
ROWS_LOOKED_AT = 12


class AllocationOutcome(enum.Enum):
    ALLOCATED = "allocated"
    # No row (of the tier or section asked for) has N adjacent free seats.
    NONE = "none"
    # The allocator has not loaded the event yet (or is loading it): the database path serves this time.
    COLD = "cold"
    # The allocator's store did not answer: the database path serves.
    UNAVAILABLE = "unavailable"


@dataclass(frozen=True)
class Allocation:
    outcome: AllocationOutcome
    seat_ids: tuple[str, ...] = ()


class Allocator(Protocol):
    """Best-available's allocator as the booking rules see it (``booking_svc.allocation.SeatAllocator``)."""

    async def allocate(
        self, event_id: int, quantity: int, booking_id: str, ttl_ms: int, *, section_id: str | None = None,
        price_tier: int = 0,
    ) -> Allocation: ...

    async def refused(self, event_id: int, seat_ids: Sequence[str]) -> int: ...


@dataclass(frozen=True)
class BestAvailableQuery:
    """Best-available on the database path (Redis down): the block is chosen inside the reservation."""

    quantity: int
    section_id: str | None = None
    price_tier: int = 0


@dataclass(frozen=True)
class FreeSeat:
    seat_id: str
    section_id: str
    row_label: str
    number: int
    rank: int


@dataclass(frozen=True)
class RowBlock:
    """A block inside one row segment: ``start`` is the 0-based position of its first seat."""

    start: int
    strands_single: bool
    distance: int  # twice the distance of the block's middle from the segment's best seat


def best_block_in_row(free: Sequence[bool], quantity: int, centre: int) -> RowBlock | None:
    """The best block of ``quantity`` free seats in a row segment (``free[i]``: seat i is free), or None.

    ``centre`` is the 0-based position of the segment's best seat. Non-stranding blocks first, then the one
    nearest the centre, then the leftmost."""
    best: RowBlock | None = None
    i, n = 0, len(free)
    while i < n:
        if not free[i]:
            i += 1
            continue
        run_start = i
        while i < n and free[i]:
            i += 1
        run_end = i - 1  # inclusive
        for start in range(run_start, run_end - quantity + 2):
            left, right = start - run_start, run_end - (start + quantity - 1)
            block = RowBlock(start, left == 1 or right == 1, abs(2 * start + quantity - 1 - 2 * centre))
            if best is None or (block.strands_single, block.distance) < (best.strands_single, best.distance):
                best = block
    return best


def candidate_blocks(seats: Iterable[FreeSeat], quantity: int, per_row: int = 4) -> list[list[str]]:
    """Disjoint blocks of ``quantity`` among these free seats, best first: up to ``per_row`` per row segment (the
    best, then the best of what it leaves, ...), rows in quality order, and within the first ``ROWS_LOOKED_AT``
    rows the blocks that strand no single seat first. For the database path, where concurrent fans spread over
    the first few candidates instead of all locking the very best one."""
    scored: list[tuple[int, int, bool, int, list[str]]] = []
    for rank, run in _runs(seats, quantity):
        free = [True] * len(run)
        centre = min(range(len(run)), key=lambda k: run[k].rank)
        for order in range(per_row):
            block = best_block_in_row(free, quantity, centre)
            if block is None:
                break
            for k in range(block.start, block.start + quantity):
                free[k] = False
            ids = [s.seat_id for s in run[block.start : block.start + quantity]]
            # Stranding as the row is now (the earlier candidates of this row are not taken yet).
            left, right = block.start, len(run) - block.start - quantity
            scored.append((rank, order, left == 1 or right == 1, block.distance, ids))
    scored.sort(key=lambda c: (c[0], c[1]))
    rows = sorted({c[0] for c in scored})[:ROWS_LOOKED_AT]
    head = [c for c in scored if c[0] in rows]
    tail = [c for c in scored if c[0] not in rows]
    head.sort(key=lambda c: (c[2], c[0], c[1]))
    return [c[4] for c in head + tail]


def _runs(seats: Iterable[FreeSeat], quantity: int) -> list[tuple[int, list[FreeSeat]]]:
    """Runs of adjacent free seats at least ``quantity`` long, each with its best seat's rank."""
    segments: dict[tuple[str, str], list[FreeSeat]] = {}
    for seat in seats:
        segments.setdefault((seat.section_id, seat.row_label), []).append(seat)
    out: list[tuple[int, list[FreeSeat]]] = []
    for row in segments.values():
        row.sort(key=lambda s: s.number)
        runs: list[list[FreeSeat]] = [[row[0]]]
        for seat in row[1:]:
            if seat.number == runs[-1][-1].number + 1:
                runs[-1].append(seat)
            else:
                runs.append([seat])
        out.extend((min(s.rank for s in run), run) for run in runs if len(run) >= quantity)
    return out
