"""Settlement: the one place a payment turns a booking into a sale (or a refund).

Every path that learns of a payment ends here: the Stripe webhook, ``ConfirmBooking``, the sweeper finding a paid
intent while cancelling it, and reconcile. The rule is the same for all of them:

- the PaymentIntent is **retrieved from Stripe** (a webhook body is only a hint of which intent to look at; its
  status, amount and metadata are never believed), and it settles the booking only when it is the booking's own
  intent (the one stored when the booking was reserved; metadata naming the booking does not count), succeeded,
  for the booking's amount in the booking's currency (:func:`booking_svc.model.payment_refusal`);
- anything else is refused: nothing changes, a ``settlement_refused`` log line says why, and
  ``tix_booking_settlement_refused_total{reason,source}`` counts it;
- a succeeded intent that pays for no booking (its booking is gone, or it is not the intent of the booking its
  metadata names) is refunded, so nobody ends paid without a ticket or their money back;
- a succeeded payment for a booking whose hold ended takes the late-payment path: the same seats booked again if
  they are still free, else the booking is refunded (owed until Stripe confirms; the sweeper retries).

Cancelling a PaymentIntent (its booking's hold ended, or it lost the race to be attached) is durable: when Stripe
does not answer, the cancellation is stored as owed (``payment_cancellations``) and every sweeper pass retries the
due ones, with exponential backoff, until Stripe answers. ``tix bookings reconcile`` (a CronJob) is the net below.

The admission-slot seam: :meth:`Settlement.settled` is where a settled booking's state change is announced (seat
feed, Redis markers, the waiting room's ``AdmissionEnd.CONFIRMED``); the domain's ``_after_release`` and
``_admission_ended`` are the same for cancel and expiry.

Pure: no redis, sqlalchemy, stripe or grpc here; the stores come in through ``booking_svc.ports``.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable

from prometheus_client import Counter, Gauge

from booking_svc.model import (
    BookingRecord,
    BookingStatus,
    PaymentIntentInfo,
    PaymentStatus,
    SettlementRefusal,
    SettleOutcome,
    SettleResult,
    StripeEventRecord,
    payment_refusal,
)
from booking_svc.ports import BookingStore, PaymentProvider, SeatFeed, SeatHoldStore
from tix.admission_tokens import AdmissionEnd
from tix.errors import DomainError, InvalidArgument, NotFound, Unavailable
from tix.logs import get_logger

log = get_logger("booking_svc.settlement")

BOOKINGS = Counter("tix_booking_bookings_total", "Booking state changes, by outcome.", ["outcome"])
SETTLEMENT_REFUSED = Counter(
    "tix_booking_settlement_refused_total",
    "Payments that did not settle a booking, by reason (foreign_intent, not_succeeded, amount_mismatch, "
    "currency_mismatch, no_booking, unknown_intent) and source (webhook, confirm, sweeper, reconcile).",
    ["reason", "source"],
)
CANCELLATIONS_OWED = Gauge(
    "tix_booking_payment_cancellations_owed",
    "PaymentIntent cancellations Stripe has not answered yet (retried by the sweeper).",
    multiprocess_mode="max",
)
ORPHAN_REFUNDS = Counter(
    "tix_booking_orphan_refunds_total", "Succeeded payments that paid for no booking, refunded."
)

_SETTLED_METRIC = {
    SettleOutcome.CONFIRMED: "confirmed",
    SettleOutcome.REBOOKED: "rebooked",
    SettleOutcome.REFUND_OWED: "refunded",
}


class Settlement:
    """Webhook, confirm, late payment, refund and cancellation of payments; one instance per process."""

    def __init__(
        self,
        repository: BookingStore,
        holds: SeatHoldStore,
        payments: PaymentProvider,
        seat_feed: SeatFeed,
        sold_marker_ttl_ms: Callable[[int], Awaitable[int]],
        admission_ended: Callable[[SettleResult, AdmissionEnd], Awaitable[None]] | None = None,
    ) -> None:
        self._repository = repository
        self._holds = holds
        self._payments = payments
        self._seat_feed = seat_feed
        self._sold_marker_ttl_ms = sold_marker_ttl_ms
        self._admission_ended = admission_ended

    # --- the webhook ----------------------------------------------------------------------------------------

    async def handle_webhook(self, payload: bytes, signature: str) -> None:
        if not signature:
            raise InvalidArgument("stripe-signature", "is required", reason="WEBHOOK_SIGNATURE_INVALID")
        event = self._payments.parse_webhook(payload, signature)
        record = StripeEventRecord(event.event_id, event.type)
        hint = event.payment_intent
        if hint is None:  # not about a PaymentIntent: nothing to do but remember it
            await self._repository.record_stripe_event(record)
            return
        # Only the intent stored with a booking counts; the body's metadata is not looked at.
        booking_id = await self._repository.booking_id_for_payment_intent(hint.payment_intent_id)
        if event.type == "payment_intent.succeeded":
            try:
                intent = await self._payments.retrieve_payment_intent(hint.payment_intent_id)
            except NotFound:
                self._refused(SettlementRefusal.UNKNOWN_INTENT, "webhook", booking_id, hint.payment_intent_id)
                await self._repository.record_stripe_event(record)
                return
            if booking_id is None:
                await self._settle_orphan(intent, record)
                return
            result = await self.settle_paid_booking(booking_id, intent=intent, stripe_event=record, source="webhook")
            log.info("stripe_webhook", type=event.type, booking_id=str(booking_id), outcome=result.outcome.value)
            return
        # Anything else only informs the payment status shown to the fan; no seat changes hands.
        status = PaymentStatus.of_stripe(hint.status)
        if event.type == "payment_intent.payment_failed":
            # The hold stays until it expires: the fan may try another card.
            status = PaymentStatus.FAILED
        if status is PaymentStatus.SUCCEEDED:  # only settlement may say so
            status = PaymentStatus.PROCESSING
        fresh = await self._repository.record_payment_update(booking_id, status, stripe_event=record)
        log.info("stripe_webhook", type=event.type, booking_id=str(booking_id), duplicate=not fresh)

    async def _settle_orphan(self, intent: PaymentIntentInfo, record: StripeEventRecord) -> None:
        """A PaymentIntent no booking stores. If it took money, give the money back: whatever its metadata says, it
        pays for no seat. (Its event is remembered only once the refund is made, so a failed refund is retried by
        Stripe's next delivery.)"""
        claimed = _uuid(intent.metadata.get("booking_id", ""))
        existing = await self._repository.get_booking(claimed, with_seats=False) if claimed else None
        reason = SettlementRefusal.FOREIGN_INTENT if existing is not None else SettlementRefusal.NO_BOOKING
        self._refused(reason, "webhook", claimed, intent.payment_intent_id, intent=intent)
        if intent.status == "succeeded":
            try:
                refund_id = await self._payments.refund_payment(
                    intent.payment_intent_id, booking_id=str(claimed or ""),
                    reason="this payment pays for no booking",
                )
            except DomainError as error:
                log.warning("orphan_refund_failed", payment_intent_id=intent.payment_intent_id, error=repr(error))
                raise Unavailable("PAYMENTS_UNAVAILABLE", "the refund could not be made yet") from error
            ORPHAN_REFUNDS.inc()
            log.info("orphan_refunded", payment_intent_id=intent.payment_intent_id, refund_id=refund_id,
                     claimed_booking_id=str(claimed) if claimed else None)
        await self._repository.record_stripe_event(record)

    # --- settling a booking ---------------------------------------------------------------------------------

    async def settle_paid_booking(
        self,
        booking_id: uuid.UUID,
        *,
        intent: PaymentIntentInfo | None = None,
        stripe_event: StripeEventRecord | None = None,
        source: str = "reconcile",
    ) -> SettleResult:
        """The one path a payment takes to a booking: check ``intent`` (retrieved from Stripe here when not given;
        callers pass only what Stripe itself returned) against the booking, then confirm, or rebook the same seats
        after a late payment, or refund when they were resold. A refused intent changes nothing (REFUSED)."""
        record = await self._repository.get_booking(booking_id, with_seats=False)
        if record is None:
            if stripe_event is not None:
                await self._repository.record_stripe_event(stripe_event)
            return SettleResult(SettleOutcome.UNKNOWN_BOOKING, booking_id)
        if intent is None:
            if not record.payment_intent_id:
                return self._refusal(record, SettlementRefusal.FOREIGN_INTENT, source, None)
            intent = await self._payments.retrieve_payment_intent(record.payment_intent_id)
        refusal = payment_refusal(record, intent)
        if refusal is not None:
            if stripe_event is not None:
                await self._repository.record_stripe_event(stripe_event)
            return self._refusal(record, refusal, source, intent)
        result = await self._repository.settle_payment(booking_id, stripe_event=stripe_event)
        await self.settled(result)
        return result

    async def settled(self, result: SettleResult) -> None:
        """After the database settled a booking: Redis, watchers, the refund owed. The one place a confirmed,
        rebooked or refunded booking is announced."""
        if result.outcome not in _SETTLED_METRIC or result.booking_id is None:
            return
        booking_id = result.booking_id
        BOOKINGS.labels(_SETTLED_METRIC[result.outcome]).inc()
        if result.outcome is SettleOutcome.REFUND_OWED:
            # The seats were someone else's by then: this booking's keys (if any are left) go.
            await self._holds.release(result.event_id, result.seat_ids, str(booking_id))
        else:
            await self._holds.mark_sold(
                result.event_id, result.seat_ids, str(booking_id), await self._sold_marker_ttl_ms(result.event_id)
            )
        await self._seat_feed.publish(result.event_id, result.version, result.seat_changes)
        if self._admission_ended is not None:  # the waiting room frees the fan's shopper slot
            await self._admission_ended(result, AdmissionEnd.CONFIRMED)
        if result.outcome is SettleOutcome.REFUND_OWED:
            await self.refund(booking_id)

    def _refusal(
        self, record: BookingRecord, refusal: SettlementRefusal, source: str, intent: PaymentIntentInfo | None
    ) -> SettleResult:
        self._refused(refusal, source, record.booking_id, intent.payment_intent_id if intent else None,
                      intent=intent, record=record)
        return SettleResult(
            SettleOutcome.REFUSED, record.booking_id, record.event_id, record.seat_ids, refusal=refusal
        )

    @staticmethod
    def _refused(
        reason: SettlementRefusal,
        source: str,
        booking_id: uuid.UUID | None,
        payment_intent_id: str | None,
        *,
        intent: PaymentIntentInfo | None = None,
        record: BookingRecord | None = None,
    ) -> None:
        SETTLEMENT_REFUSED.labels(reason.value, source).inc()
        log.warning(
            "settlement_refused",
            reason=reason.value,
            source=source,
            booking_id=str(booking_id) if booking_id else None,
            payment_intent_id=payment_intent_id,
            booking_payment_intent_id=record.payment_intent_id if record else None,
            intent_status=intent.status if intent else None,
            intent_amount_minor=intent.amount_minor if intent else None,
            intent_currency=intent.currency if intent else None,
            booking_amount_minor=record.total_minor if record else None,
            booking_currency=record.currency if record else None,
        )

    # --- refunds and cancellations --------------------------------------------------------------------------

    async def refund(self, booking_id: uuid.UUID) -> str | None:
        """Refund a booking marked refunded; on failure the refund stays owed and the sweeper retries it."""
        record = await self._repository.get_booking(booking_id, with_seats=False)
        if (
            record is None or record.status is not BookingStatus.REFUNDED or not record.payment_intent_id
            or record.refund_id
        ):
            return record.refund_id if record else None
        try:
            refund_id = await self._payments.refund_payment(
                record.payment_intent_id, booking_id=str(booking_id), reason=record.status_reason
            )
        except DomainError as error:
            log.warning("refund_failed", booking_id=str(booking_id), error=repr(error))
            return None
        await self._repository.record_refund(booking_id, refund_id)
        log.info("refunded", booking_id=str(booking_id), refund_id=refund_id)
        return refund_id

    async def retry_owed_refunds(self) -> int:
        done = 0
        for booking_id, _ in await self._repository.refunds_owed():
            if await self.refund(booking_id):
                done += 1
        return done

    async def cancel_payment(self, booking_id: uuid.UUID, payment_intent_id: str, *, source: str = "sweeper") -> bool:
        """Stop the PaymentIntent of a booking whose hold ended; if the fan paid in the meantime, settle it (the
        late-payment path). True when Stripe answered (the intent is cancelled, or settled); False when it could
        not be reached: the cancellation is then owed (``payment_cancellations``) and the sweeper retries it."""
        try:
            intent = await self._payments.cancel_payment_intent(payment_intent_id)
        except DomainError as error:
            log.warning("payment_cancel_failed", booking_id=str(booking_id), error=repr(error))
            await self._repository.owe_cancellation(payment_intent_id, booking_id, repr(error))
            return False
        await self._cancelled(booking_id, intent, source)
        return True

    async def _cancelled(self, booking_id: uuid.UUID | None, intent: PaymentIntentInfo, source: str) -> None:
        """Stripe's answer to a cancellation: a succeeded intent was paid after all (settle it, or refund it when
        it pays for no booking); a canceled one can never take money."""
        if intent.status == "succeeded":
            if booking_id is not None and (await self.settle_paid_booking(
                booking_id, intent=intent, source=source
            )).outcome is not SettleOutcome.REFUSED:
                return
            if await self._repository.booking_id_for_payment_intent(intent.payment_intent_id) is None:
                await self._payments.refund_payment(
                    intent.payment_intent_id, booking_id=str(booking_id or ""),
                    reason="this payment pays for no booking",
                )
                ORPHAN_REFUNDS.inc()
        elif intent.status == "canceled" and booking_id is not None:
            await self._repository.set_payment_status(booking_id, PaymentStatus.CANCELED)

    async def retry_owed_cancellations(self, limit: int = 100) -> int:
        """Retry cancellations Stripe did not answer before (each replica's sweeper takes its own share); returns
        how many are done."""
        done = 0
        for owed in await self._repository.claim_due_cancellations(limit, lease_seconds=60):
            try:
                intent = await self._payments.cancel_payment_intent(owed.payment_intent_id)
                await self._cancelled(owed.booking_id, intent, "sweeper")
            except DomainError as error:
                log.warning("payment_cancel_retry_failed", payment_intent_id=owed.payment_intent_id,
                            attempts=owed.attempts + 1, error=repr(error))
                await self._repository.cancellation_failed(owed.payment_intent_id, repr(error))
                continue
            await self._repository.cancellation_done(owed.payment_intent_id)
            log.info("payment_cancel_retried", payment_intent_id=owed.payment_intent_id, status=intent.status,
                     attempts=owed.attempts + 1)
            done += 1
        CANCELLATIONS_OWED.set(await self._repository.cancellations_owed())
        return done

    async def cancel_stray_intent(self, payment_intent_id: str, booking_id: uuid.UUID) -> None:
        """Cancel an intent that no booking stores (it lost the race to be attached): nobody holds its client
        secret, and cancelling makes sure nobody ever can pay it."""
        try:
            intent = await self._payments.cancel_payment_intent(payment_intent_id)
        except DomainError as error:
            log.warning("stray_intent_cancel_failed", payment_intent_id=payment_intent_id, error=repr(error))
            await self._repository.owe_cancellation(payment_intent_id, booking_id, repr(error))
            return
        log.info("stray_intent_cancelled", payment_intent_id=payment_intent_id, booking_id=str(booking_id),
                 status=intent.status)


def _uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None
