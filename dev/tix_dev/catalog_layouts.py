"""Seat layout templates for the demo catalog: a club, a theater, an amphitheater, an arena and a stadium.

Each template is built from a little geometry so that seat maps look like the real thing: rows are arcs (or straight
lines on a club floor) around the stage or field, and seats are spaced half a metre apart along them, so outer rows
hold more seats, as they do in real bowls. Coordinates are metres from the stage (fan-shaped rooms) or from the
centre of the field or floor (bowls); y grows away from the stage.

Prices follow distance: rows are grouped into tiers by their mean distance, whole rows at a time (venues price by
section and row, never seat by seat), and ``rank`` orders every seat best-first for "best available".
Section ids contain no hyphen, so a seat id ``<section>-<row>-<number>`` splits back unambiguously.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cache

from tix.catalog import LayoutSeat

SEAT_WIDTH_M = 0.5


@dataclass(frozen=True)
class VenueLayout:
    layout_id: str
    name: str
    kind: str
    tier_count: int
    seats: tuple[LayoutSeat, ...] = field(repr=False)

    @property
    def capacity(self) -> int:
        return len(self.seats)


@dataclass
class _Row:
    section_id: str
    section_name: str
    label: str
    first_number: int
    points: list[tuple[float, float]]


def lettered_rows(count: int, *, skip: str = "IO") -> list[str]:
    """Theater-style row letters: A, B, … Z (without I and O, which read as 1 and 0), then AA, BB, …"""
    letters = [c for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ" if c not in skip]
    return [letters[i % len(letters)] * (i // len(letters) + 1) for i in range(count)]


def numbered_rows(count: int) -> list[str]:
    return [str(i + 1) for i in range(count)]


def _spaced(length: float, width: float = SEAT_WIDTH_M) -> int:
    return max(1, int(length // width))


def _straight_row(y: float, seats: int, x_centre: float = 0.0) -> list[tuple[float, float]]:
    start = x_centre - (seats - 1) * SEAT_WIDTH_M / 2
    return [(start + i * SEAT_WIDTH_M, y) for i in range(seats)]


def _fan_row(radius: float, deg_from: float, deg_to: float) -> list[tuple[float, float]]:
    """Seats on an arc of ``radius`` around the stage; angle 0 points straight out from the stage, negative to the
    left of an audience member facing it."""
    a, b = math.radians(deg_from), math.radians(deg_to)
    seats = _spaced(radius * (b - a))
    step = (b - a) / seats
    return [
        (radius * math.sin(a + (i + 0.5) * step), radius * math.cos(a + (i + 0.5) * step))
        for i in range(seats)
    ]


def _ring_row(semi_x: float, semi_y: float, deg_from: float, deg_to: float) -> list[tuple[float, float]]:
    """Seats on an elliptical ring around a field or floor, clockwise from ``deg_from`` (0 = the near sideline's
    middle, seen from the press box)."""

    def point(deg: float) -> tuple[float, float]:
        t = math.radians(deg)
        return semi_x * math.sin(t), -semi_y * math.cos(t)

    samples = [point(deg_from + (deg_to - deg_from) * k / 16) for k in range(17)]
    length = sum(math.dist(samples[k], samples[k + 1]) for k in range(16))
    seats = _spaced(length)
    step = (deg_to - deg_from) / seats
    return [point(deg_from + (i + 0.5) * step) for i in range(seats)]


def _assemble(
    layout_id: str,
    name: str,
    kind: str,
    rows: Sequence[_Row],
    tier_shares: Sequence[float],
    distance: Callable[[float, float], float],
) -> VenueLayout:
    """Number the seats, price whole rows by their mean distance and rank every seat best-first."""
    mean_distance = [sum(distance(x, y) for x, y in row.points) / len(row.points) for row in rows]
    total = sum(len(row.points) for row in rows)
    tier_of_row = [0] * len(rows)
    cumulative, seated = [], 0.0
    for share in tier_shares:
        seated += share
        cumulative.append(seated * total)
    placed = 0
    for i in sorted(range(len(rows)), key=lambda i: (mean_distance[i], rows[i].section_id, i)):
        tier = next((t for t, bound in enumerate(cumulative) if placed < bound), len(cumulative) - 1)
        tier_of_row[i] = tier + 1
        placed += len(rows[i].points)

    drafts: list[tuple[float, float, int, str, _Row, int, int, float, float]] = []
    for i, row in enumerate(rows):
        for k, (x, y) in enumerate(row.points):
            number = row.first_number + k
            drafts.append(
                (
                    distance(x, y),
                    abs(x),
                    len(drafts),
                    f"{row.section_id}-{row.label}-{number}",
                    row,
                    number,
                    tier_of_row[i],
                    round(x, 2),
                    round(y, 2),
                )
            )
    ranked = sorted(drafts, key=lambda d: d[:3])
    seats = tuple(
        LayoutSeat(seat_id, row.section_id, row.section_name, row.label, number, tier, x, y, rank)
        for rank, (_, _, _, seat_id, row, number, tier, x, y) in enumerate(ranked, start=1)
    )
    return VenueLayout(layout_id, name, kind, len(tier_shares), seats)


def club() -> VenueLayout:
    """~500 seats: a numbered flat floor in straight rows before the stage and a small curved balcony behind it."""
    rows = [
        _Row("FLR", "Floor", label, 1, _straight_row(2.5 + r * 0.9, 26))
        for r, label in enumerate(lettered_rows(13))
    ]
    rows += [
        _Row("BAL", "Balcony", label, 1, _fan_row(16.0 + r * 1.0, -28, 28))
        for r, label in enumerate(lettered_rows(5))
    ]
    return _assemble(
        "club-500", "Club (floor and balcony)", "club", rows, (0.25, 0.4, 0.35), lambda x, y: math.hypot(x, y)
    )


def theater() -> VenueLayout:
    """~2,000 seats: orchestra, mezzanine and balcony in curved rows, each split into left, centre and right
    sections by two aisles; centre seats are numbered from 101 as on Broadway."""
    rows: list[_Row] = []
    # (section prefix, level, radius of row A, rows, angular width of the level relative to the orchestra)
    levels = (
        ("ORC", "Orchestra", 6.0, 22, 1.0),
        ("MEZ", "Mezzanine", 28.0, 9, 0.7),
        ("BLC", "Balcony", 38.0, 8, 0.7),
    )
    for prefix, level, first_radius, row_count, width in levels:
        for r, label in enumerate(lettered_rows(row_count)):
            radius = first_radius + r * 0.95
            for side, name, deg_from, deg_to, first in (
                ("L", "Left", -40, -14, 1),
                ("C", "Centre", -12, 12, 101),
                ("R", "Right", 14, 40, 1),
            ):
                seats = _fan_row(radius, deg_from * width, deg_to * width)
                rows.append(_Row(f"{prefix}{side}", f"{level} {name}", label, first, seats))
    return _assemble(
        "theater-2000",
        "Theater (orchestra, mezzanine, balcony)",
        "theater",
        rows,
        (0.15, 0.3, 0.3, 0.25),
        lambda x, y: math.hypot(x, y) + 0.3 * abs(x),
    )


def amphitheater() -> VenueLayout:
    """~8,000 seats: a pit in straight rows, a lower fan of sections 101–105 and an upper fan of 201–209 (the
    lawn beyond is general admission and not part of the seat map)."""
    rows = [_Row("PIT", "Pit", str(r + 1), 1, _straight_row(4.0 + r * 0.9, 40)) for r in range(10)]
    for r, label in enumerate(numbered_rows(28)):
        for s in range(5):
            deg_from = -60 + s * 24
            seats = _fan_row(16.0 + r * 0.85, deg_from + 1, deg_from + 23)
            rows.append(_Row(f"{101 + s}", f"Section {101 + s}", label, 1, seats))
    for r, label in enumerate(numbered_rows(22)):
        for s in range(9):
            upper_from = -67.5 + s * 15
            seats = _fan_row(42.0 + r * 0.85, upper_from + 0.7, upper_from + 14.3)
            rows.append(_Row(f"{201 + s}", f"Section {201 + s}", label, 1, seats))
    return _assemble(
        "amphitheater-8000",
        "Amphitheater (pit, 100s, 200s)",
        "amphitheater",
        rows,
        (0.1, 0.25, 0.35, 0.3),
        lambda x, y: math.hypot(x, y),
    )


def _bowl(
    rows: list[_Row],
    *,
    first_section: int,
    sections: int,
    row_labels: list[str],
    semi_x: float,
    semi_y: float,
    row_depth: float = 0.85,
    gap_deg: float = 0.6,
) -> None:
    span = 360 / sections
    for s in range(sections):
        section_id = str(first_section + s)
        deg_from = -span / 2 + s * span
        for r, label in enumerate(row_labels):
            grow = r * row_depth
            rows.append(
                _Row(
                    section_id,
                    f"Section {section_id}",
                    label,
                    1,
                    _ring_row(semi_x + grow, semi_y + grow, deg_from + gap_deg, deg_from + span - gap_deg),
                )
            )


def arena() -> VenueLayout:
    """~18,000 seats: six floor sections on the court or rink, a lower bowl of sections 101–124 and an upper bowl
    of 201–228 around it."""
    rows: list[_Row] = []
    for f, letter in enumerate("ABCDEF"):
        x_centre = (f % 3 - 1) * 11.0
        for r in range(10):
            y = (-12.0 if f < 3 else 0.0) + r * 0.9
            rows.append(_Row(f"FL{letter}", f"Floor {letter}", str(r + 1), 1, _straight_row(y, 20, x_centre)))
    _bowl(
        rows,
        first_section=101,
        sections=24,
        row_labels=lettered_rows(20, skip="IO"),
        semi_x=36.0,
        semi_y=21.0,
    )
    _bowl(
        rows,
        first_section=201,
        sections=28,
        row_labels=lettered_rows(14, skip="IO"),
        semi_x=56.0,
        semi_y=41.0,
    )
    return _assemble(
        "arena-18000",
        "Arena (floor, 100s, 200s)",
        "arena",
        rows,
        (0.08, 0.17, 0.25, 0.25, 0.25),
        lambda x, y: math.hypot(x * 0.8, y),
    )


def stadium() -> VenueLayout:
    """~70,000 seats around a field: a lower ring 101–1xx, a club ring 201–2xx and an upper ring 301–3xx."""
    rows: list[_Row] = []
    _bowl(
        rows,
        first_section=101,
        sections=40,
        row_labels=numbered_rows(30),
        semi_x=66.0,
        semi_y=44.0,
        row_depth=0.8,
    )
    _bowl(
        rows,
        first_section=201,
        sections=36,
        row_labels=numbered_rows(14),
        semi_x=94.0,
        semi_y=72.0,
        row_depth=0.8,
    )
    _bowl(
        rows,
        first_section=301,
        sections=44,
        row_labels=numbered_rows(30),
        semi_x=110.0,
        semi_y=88.0,
        row_depth=0.8,
    )
    return _assemble(
        "stadium-70000",
        "Stadium (100s, 200s, 300s)",
        "stadium",
        rows,
        (0.08, 0.17, 0.25, 0.25, 0.25),
        lambda x, y: math.hypot(x * 0.7, y),
    )


# The templates, smallest first; a venue's kind picks its template.
TEMPLATES: tuple[Callable[[], VenueLayout], ...] = (club, theater, amphitheater, arena, stadium)


@cache
def _built() -> tuple[VenueLayout, ...]:
    return tuple(template() for template in TEMPLATES)


def build_layouts() -> list[VenueLayout]:
    """Every template, smallest first (built once per process: they are immutable)."""
    return list(_built())
