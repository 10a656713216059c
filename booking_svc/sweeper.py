"""The expiry sweeper: runs in every replica of the booking service, sharing the work through
``FOR UPDATE SKIP LOCKED`` batches (see ``BookingRepository.expire_overdue``).

Each pass expires reserved bookings past their deadline (freeing their tickets, cancelling their PaymentIntents,
taking the late-payment path when Stripe says the fan paid after all) and retries refunds and PaymentIntent
cancellations still owed.
"""

from __future__ import annotations

import asyncio

from booking_svc.domain import BookingService
from tix.logs import get_logger

log = get_logger("booking_svc.sweeper")


async def sweep_once(bookings: BookingService) -> tuple[int, int, int]:
    """One pass; returns (bookings expired, refunds completed, cancellations completed)."""
    expired = await bookings.expire_overdue_bookings()
    refunded = await bookings.retry_owed_refunds()
    cancelled = await bookings.retry_owed_cancellations()
    if expired or refunded or cancelled:
        log.info("swept", expired=expired, refunded=refunded, cancelled=cancelled)
    return expired, refunded, cancelled


async def run_sweeper(bookings: BookingService, interval_seconds: float) -> None:
    """Sweep every ``interval_seconds`` until cancelled; a failed pass is logged and the next one tries again."""
    while True:
        try:
            await sweep_once(bookings)
        except asyncio.CancelledError:
            raise
        except Exception as error:  # noqa: BLE001 - the database or Stripe may be briefly away; keep sweeping
            log.warning("sweep_failed", error=repr(error))
        await asyncio.sleep(interval_seconds)
