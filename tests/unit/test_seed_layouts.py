"""The demo catalog's seat layouts and generated events, without a database."""

from __future__ import annotations

import itertools
from collections import defaultdict
from datetime import UTC, datetime

import pytest

from tix_dev.catalog_layouts import build_layouts
from tix_dev.seed import COMEDY, CONCERT, FAMILY, SPORTS, THEATER, EventGenerator, plan_catalog

DOCUMENTED_CAPACITY = {
    "club-500": 500,
    "theater-2000": 2_000,
    "amphitheater-8000": 8_000,
    "arena-18000": 18_000,
    "stadium-70000": 70_000,
}
ANCHOR = datetime(2027, 3, 1, tzinfo=UTC)

LAYOUTS = {layout.layout_id: layout for layout in build_layouts()}


def test_every_documented_template_exists_with_its_capacity_within_ten_percent():
    assert set(LAYOUTS) == set(DOCUMENTED_CAPACITY)
    for layout_id, documented in DOCUMENTED_CAPACITY.items():
        assert abs(LAYOUTS[layout_id].capacity - documented) <= documented * 0.10, layout_id


@pytest.mark.parametrize("layout_id", sorted(DOCUMENTED_CAPACITY))
def test_seat_ids_are_unique_and_spell_section_row_and_number(layout_id):
    seats = LAYOUTS[layout_id].seats
    assert len({s.seat_id for s in seats}) == len(seats)
    for s in seats:
        assert s.seat_id == f"{s.section_id}-{s.row_label}-{s.number}"
        assert "-" not in s.section_id
        assert "-" not in s.row_label
        assert len(s.seat_id) <= 40
        assert len(s.section_id) <= 20
        assert len(s.row_label) <= 8
        assert s.section_name


@pytest.mark.parametrize("layout_id", sorted(DOCUMENTED_CAPACITY))
def test_seats_of_a_row_are_numbered_consecutively_in_one_tier(layout_id):
    rows = defaultdict(list)
    for s in LAYOUTS[layout_id].seats:
        rows[(s.section_id, s.row_label)].append(s)
    for key, seats in rows.items():
        numbers = sorted(s.number for s in seats)
        assert numbers == list(range(numbers[0], numbers[0] + len(numbers))), key
        assert len({s.price_tier for s in seats}) == 1, key
        # Consecutive numbers are neighbours on the drawing, half a metre apart.
        ordered = sorted(seats, key=lambda s: s.number)
        for a, b in itertools.pairwise(ordered):
            assert 0.3 < ((a.x - b.x) ** 2 + (a.y - b.y) ** 2) ** 0.5 < 0.7, key


@pytest.mark.parametrize("layout_id", sorted(DOCUMENTED_CAPACITY))
def test_three_to_five_tiers_priced_by_distance_and_ranks_best_first(layout_id):
    layout = LAYOUTS[layout_id]
    assert 3 <= layout.tier_count <= 5
    tiers = {s.price_tier for s in layout.seats}
    assert tiers == set(range(1, layout.tier_count + 1))
    ranks = sorted(s.rank for s in layout.seats)
    assert ranks == list(range(1, layout.capacity + 1))
    mean_rank = {
        t: sum(s.rank for s in layout.seats if s.price_tier == t)
        / sum(1 for s in layout.seats if s.price_tier == t)
        for t in tiers
    }
    assert [mean_rank[t] for t in sorted(tiers)] == sorted(mean_rank.values())
    best = min(layout.seats, key=lambda s: s.rank)
    assert best.price_tier == 1


def test_bowls_have_the_usual_section_numbering():
    stadium = {s.section_id for s in LAYOUTS["stadium-70000"].seats}
    for level in (100, 200, 300):
        assert str(level + 1) in stadium
        assert str(level + 20) in stadium
    arena = {s.section_id for s in LAYOUTS["arena-18000"].seats}
    assert {"101", "124", "201", "228"} <= arena
    assert any(section.startswith("FL") for section in arena)
    theater = {s.section_name for s in LAYOUTS["theater-2000"].seats}
    assert {"Orchestra Centre", "Mezzanine Left", "Balcony Right"} <= theater


def test_the_same_seed_plans_the_same_catalog_and_another_seed_does_not():
    first, again, other = (plan_catalog(seed, 2_000, ANCHOR) for seed in (42, 42, 7))
    assert [p.name for p in first.performers] == [p.name for p in again.performers]
    assert [v.name for v in first.venues] == [v.name for v in again.venues]
    assert [p.name for p in first.performers] != [p.name for p in other.performers]
    rows = [list(EventGenerator(plan, 42, ANCHOR).rows(300)) for plan in (first, again)]
    assert rows[0] == rows[1]


def test_generated_events_are_plausible():
    plan = plan_catalog(42, 5_000, ANCHOR)
    venues = {v.venue_id: v for v in plan.venues}
    performers = {p.performer_id: p for p in plan.performers}
    assert len(plan.cities) >= 200
    assert len(performers) >= 1_500
    assert len({p.name for p in performers.values()}) == len(performers)
    allowed = {
        "stadium": {SPORTS, CONCERT, FAMILY},
        "arena": {SPORTS, CONCERT, COMEDY, FAMILY},
        "amphitheater": {CONCERT},
        "theater": {CONCERT, THEATER, COMEDY, FAMILY},
        "club": {CONCERT, COMEDY},
    }
    counts = defaultdict(int)
    for line in EventGenerator(plan, 42, ANCHOR).rows(5_000):
        (
            _,
            name,
            description,
            category,
            venue_id,
            performer_id,
            starts,
            ends,
            sale,
            currency,
            prices,
            _limit,
            queued,
            _,
            _,
        ) = line.rstrip("\n").split("\t")
        venue, performer = venues[int(venue_id)], performers[int(performer_id)]
        category = int(category)
        assert category == performer.category
        assert category in allowed[venue.kind]
        starts_at, ends_at, sale_at = (datetime.fromisoformat(t) for t in (starts, ends, sale))
        assert sale_at < starts_at < ends_at
        tier_prices = [int(p) for p in prices.strip("{}").split(",")]
        assert len(tier_prices) == venue.layout.tier_count
        assert tier_prices == sorted(
            tier_prices, reverse=True
        )
        assert name
        assert description
        assert currency == venue.city.currency
        if category == SPORTS:
            home, away = name.split(" vs ")
            assert home == performer.name
            assert away != home
        counts["past"] += starts_at < ANCHOR
        counts["scheduled"] += sale_at > ANCHOR
        counts["queued"] += queued == "t"
        counts[f"category {category}"] += 1
    assert 0 < counts["past"] < 250
    assert 500 < counts["scheduled"] < 2_500
    assert 0 < counts["queued"] < 250
    assert all(counts[f"category {c}"] > 200 for c in (CONCERT, SPORTS, THEATER, COMEDY, FAMILY))
