"""ReserveSeats input rules, checked before any store is touched."""

from __future__ import annotations

import pytest

from booking_svc.domain import MAX_SEATS_PER_REQUEST, BestAvailable, SeatRequest, _validate
from tix.errors import InvalidArgument


def _request(seat_ids=(), best=None) -> SeatRequest:
    return SeatRequest(user_id="fan-1", event_id=1, seat_ids=tuple(seat_ids), best_available=best)


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (_request(), "seat_ids"),
        (_request(["S1-A-1"], BestAvailable(1)), "best_available"),
        (_request(["S1-A-1", "S1-A-1"]), "seat_ids"),
        (_request([""]), "seat_ids"),
        (_request(["x" * 41]), "seat_ids"),
        (_request([f"S-{i}" for i in range(MAX_SEATS_PER_REQUEST + 1)]), "seat_ids"),
        (_request(best=BestAvailable(0)), "best_available.quantity"),
        (_request(best=BestAvailable(MAX_SEATS_PER_REQUEST + 1)), "best_available.quantity"),
        (_request(best=BestAvailable(2, price_tier=-1)), "best_available.price_tier"),
    ],
)
def test_malformed_requests_are_invalid_arguments_naming_the_field(request_, field):
    with pytest.raises(InvalidArgument) as invalid:
        _validate(request_)
    assert invalid.value.field_violations.keys() == {field}


def test_well_formed_requests_pass():
    _validate(_request(["S1-A-1", "S1-A-2"]))
    _validate(_request(best=BestAvailable(4, section_id="S1", price_tier=2)))
