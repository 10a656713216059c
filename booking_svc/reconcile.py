"""``tix bookings reconcile``: compare bookings with their Stripe PaymentIntents and repair the drift a lost
webhook or a crash can leave, so that no fan ends paid without a ticket or a refund.

- a PaymentIntent that succeeded while its booking is not confirmed: the shared settle path (confirm, rebook the same
  seats, or refund when they were resold);
- a refund owed (booking refunded, no Stripe refund recorded): refunded now;
- an open PaymentIntent of a cancelled or expired booking: cancelled, so it cannot be paid later;
- a PaymentIntent cancellation still owed (Stripe did not answer the sweeper): retried now;
- a confirmed booking whose ticket rows are not all booked for it: reported (needs a person: someone may hold the
  seat legitimately).
Exit code 0 when everything is consistent after the repairs (or, without ``apply``, when nothing needed one).

``--since DURATION`` (``90m``, ``2h``, ``7d``) limits the Stripe lookups to bookings whose booking or payment row
changed within that time: the periodic run (the ``booking-reconcile`` CronJob, every 15 minutes over the last
2 hours) stays cheap, and a run without it checks everything.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from booking_svc.domain import BookingService
from booking_svc.holds import SeatHolds
from booking_svc.model import BookingStatus, PaymentStatus, SettleOutcome
from booking_svc.payments import PaymentGateway
from booking_svc.repository import BookingRepository
from booking_svc.settings import BookingSettings
from tix.db import create_engine
from tix.errors import DomainError
from tix.logs import get_logger
from tix.redis_pool import create_redis
from tix.seatfeed import SeatFeedPublisher

log = get_logger("booking_svc.reconcile")


@dataclass
class ReconcileReport:
    checked: int = 0
    paid_not_confirmed: int = 0
    open_intents_of_ended_bookings: int = 0
    refunds_owed: int = 0
    cancellations_owed: int = 0
    repaired: int = 0
    ticket_mismatches: list[str] = field(default_factory=list)
    unresolved: list[str] = field(default_factory=list)

    @property
    def drift(self) -> int:
        return (
            self.paid_not_confirmed + self.open_intents_of_ended_bookings + self.refunds_owed
            + self.cancellations_owed + len(self.ticket_mismatches)
        )

    def consistent(self, applied: bool) -> bool:
        if not applied:
            return self.drift == 0 and not self.unresolved
        return not self.unresolved and not self.ticket_mismatches

    def summary(self) -> str:
        lines = [
            f"checked bookings with open payments: {self.checked}",
            f"paid but not confirmed: {self.paid_not_confirmed}",
            f"open payment intents of ended bookings: {self.open_intents_of_ended_bookings}",
            f"refunds owed: {self.refunds_owed}",
            f"payment cancellations owed: {self.cancellations_owed}",
            f"repaired: {self.repaired}",
            f"confirmed bookings whose tickets do not match: {len(self.ticket_mismatches)}",
        ]
        lines += [f"  mismatch: {item}" for item in self.ticket_mismatches]
        lines += [f"  unresolved: {item}" for item in self.unresolved]
        return "\n".join(lines)


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd])\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> float:
    """Seconds in ``90s``, ``15m``, ``2h`` or ``7d``; ValueError otherwise."""
    match = _DURATION.match(text)
    if match is None:
        raise ValueError(f"{text!r} is not a duration like 90s, 15m, 2h or 7d")
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]


async def reconcile_bookings(
    bookings: BookingService,
    repository: BookingRepository,
    payments: PaymentGateway,
    *,
    apply: bool,
    since_seconds: float | None = None,
) -> ReconcileReport:
    report = ReconcileReport()
    for booking_id, status, payment_intent_id in await repository.unsettled_payments(since_seconds=since_seconds):
        report.checked += 1
        try:
            intent = await payments.retrieve_payment_intent(payment_intent_id)
        except DomainError as error:
            report.unresolved.append(f"{booking_id}: cannot read {payment_intent_id}: {error.reason}")
            continue
        if intent.status == "succeeded":
            report.paid_not_confirmed += 1
            if apply:
                result = await bookings.settlement.settle_paid_booking(booking_id, intent=intent, source="reconcile")
                if result.outcome is SettleOutcome.REFUSED:
                    report.unresolved.append(f"{booking_id}: {payment_intent_id} refused ({result.refusal})")
                else:
                    report.repaired += 1
                log.info("reconciled_payment", booking_id=str(booking_id), outcome=result.outcome.value)
        elif intent.status == "canceled":
            if apply:
                await repository.set_payment_status(booking_id, PaymentStatus.CANCELED)
        elif status in (BookingStatus.CANCELLED, BookingStatus.EXPIRED) and intent.status != "processing":
            report.open_intents_of_ended_bookings += 1
            if apply:
                await bookings.cancel_payment(booking_id, payment_intent_id)
                report.repaired += 1

    owed = await repository.refunds_owed(limit=10_000)
    report.refunds_owed = len(owed)
    if apply and owed:
        report.repaired += await bookings.retry_owed_refunds()
        for booking_id, _ in await repository.refunds_owed(limit=10_000):
            report.unresolved.append(f"{booking_id}: refund still owed")

    report.cancellations_owed = await repository.cancellations_owed()
    if apply and report.cancellations_owed:
        report.repaired += await bookings.retry_owed_cancellations()
        left = await repository.cancellations_owed()
        if left:
            report.unresolved.append(f"{left} PaymentIntent cancellations still owed (Stripe did not answer)")

    for drift in await repository.confirmed_ticket_drift():
        report.ticket_mismatches.append(
            f"{drift.booking_id}: {drift.booked} of {drift.expected} seats booked for it"
        )
    return report


async def run_reconcile(settings: BookingSettings, apply: bool = True, since_seconds: float | None = None) -> int:
    """Entry point of ``tix bookings reconcile``: prints a summary; returns the exit code."""
    engine = create_engine(settings, pool_size=5)
    redis = create_redis(settings.redis_url)
    holds = SeatHolds.from_urls(
        settings.lock_urls(), drift_factor=settings.lock_drift_factor, node_timeout=settings.lock_node_timeout_seconds
    )
    payments = PaymentGateway(settings, redis)
    repository = BookingRepository(engine)
    bookings = BookingService(settings, repository, holds, payments, SeatFeedPublisher(redis, engine))
    try:
        report = await reconcile_bookings(bookings, repository, payments, apply=apply, since_seconds=since_seconds)
    finally:
        await payments.aclose()
        await holds.aclose()
        await redis.aclose()
        await engine.dispose()
    print(report.summary())
    consistent = report.consistent(apply)
    print("consistent" if consistent else "NOT consistent")
    return 0 if consistent else 1
