"""Whether an event is on sale: the one rule event pages, search results and booking share.

Cancellation wins; then time: an event that has started, or whose sale an operator closed, is over for sales;
before the on-sale time it is scheduled; then stock (when the caller knows it): nothing left is sold out.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime


class SaleStatus(enum.Enum):
    SCHEDULED = "scheduled"
    ON_SALE = "on_sale"
    SOLD_OUT = "sold_out"
    ENDED = "ended"
    CANCELLED = "cancelled"


@dataclass(frozen=True)
class SaleWindow:
    """The catalog facts the rule needs."""

    starts_at: datetime
    sale_starts_at: datetime
    # Set when an operator closed the sale early; None: open until the event starts.
    sale_ends_at: datetime | None
    cancelled: bool


def sale_status(window: SaleWindow, now: datetime, *, sold_out: bool = False) -> SaleStatus:
    if window.cancelled:
        return SaleStatus.CANCELLED
    if now >= window.starts_at or (window.sale_ends_at is not None and now >= window.sale_ends_at):
        return SaleStatus.ENDED
    if now < window.sale_starts_at:
        return SaleStatus.SCHEDULED
    if sold_out:
        return SaleStatus.SOLD_OUT
    return SaleStatus.ON_SALE


def status_changes_at(window: SaleWindow, now: datetime) -> datetime | None:
    """The first moment after ``now`` at which time alone may change the status (the sale opens, an operator's
    close, the start); None when it never will (cancelled, or every moment has passed)."""
    if window.cancelled:
        return None
    later = [t for t in (window.sale_starts_at, window.sale_ends_at, window.starts_at) if t is not None and t > now]
    return min(later, default=None)
