"""The shared sale rule and availability bands (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from tix.availability import AvailabilityBand, availability_band
from tix.sales import SaleStatus, SaleWindow, sale_status

NOW = datetime(2026, 11, 30, 12, tzinfo=UTC)


def window(**changes: object) -> SaleWindow:
    fields: dict[str, object] = {
        "starts_at": NOW + timedelta(days=3),
        "sale_starts_at": NOW - timedelta(days=1),
        "sale_ends_at": None,
        "cancelled": False,
    }
    fields.update(changes)
    return SaleWindow(**fields)  # type: ignore[arg-type]


def test_cancellation_wins_then_time_then_opening_then_stock():
    assert sale_status(window(cancelled=True, starts_at=NOW - timedelta(hours=1)), NOW) is SaleStatus.CANCELLED
    assert sale_status(window(starts_at=NOW), NOW) is SaleStatus.ENDED
    assert sale_status(window(sale_starts_at=NOW + timedelta(seconds=1)), NOW) is SaleStatus.SCHEDULED
    assert sale_status(window(), NOW, sold_out=True) is SaleStatus.SOLD_OUT
    assert sale_status(window(), NOW) is SaleStatus.ON_SALE


def test_an_operator_closed_sale_has_ended_from_its_closing_time():
    closes = NOW + timedelta(minutes=5)
    assert sale_status(window(sale_ends_at=closes), NOW) is SaleStatus.ON_SALE
    assert sale_status(window(sale_ends_at=closes), closes) is SaleStatus.ENDED


def test_bands_at_their_edges():
    assert availability_band(0, 100) is AvailabilityBand.SOLD_OUT
    assert availability_band(10, 100) is AvailabilityBand.FEW_LEFT
    assert availability_band(11, 100) is AvailabilityBand.AVAILABLE
    assert availability_band(1, 1) is AvailabilityBand.AVAILABLE


@given(st.integers(min_value=1, max_value=100_000), st.data())
def test_fewer_seats_never_means_a_better_band(total, data):
    order = [AvailabilityBand.SOLD_OUT, AvailabilityBand.FEW_LEFT, AvailabilityBand.AVAILABLE]
    more = data.draw(st.integers(min_value=0, max_value=total))
    less = data.draw(st.integers(min_value=0, max_value=more))
    assert order.index(availability_band(less, total)) <= order.index(availability_band(more, total))
