"""Availability bands: what a fan is told about an event's stock without counting seats (on sale, few left, sold
out). One rule, used by booking (which records band changes for the search index), the event page and the web app.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass

# "Few left" from this share of the event's seats down to the last one.
FEW_LEFT_SHARE = 0.10


class AvailabilityBand(enum.Enum):
    AVAILABLE = "available"
    FEW_LEFT = "few_left"
    SOLD_OUT = "sold_out"


def availability_band(available: int, total: int) -> AvailabilityBand:
    if available <= 0:
        return AvailabilityBand.SOLD_OUT
    if available <= total * FEW_LEFT_SHARE:
        return AvailabilityBand.FEW_LEFT
    return AvailabilityBand.AVAILABLE


@dataclass(frozen=True)
class AvailabilityCounts:
    """An event's taken seats per section and in all, its total, and the band last published for it."""

    total: int
    taken: int
    taken_by_section: Mapping[str, int]
    band: AvailabilityBand

    @property
    def available(self) -> int:
        return max(0, self.total - self.taken)

    @property
    def current_band(self) -> AvailabilityBand:
        return availability_band(self.available, self.total)
