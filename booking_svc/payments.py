"""The payment gateway: Stripe PaymentIntents and refunds for bookings, paced under Stripe's rate limit.

Stripe limits each account (documented defaults: 100 operations/s live, 25/s in test mode; 429 past it). A flash
sale would blow through that, so the gateway:

* paces every call through one token bucket per Stripe account, kept in Redis (:class:`SharedStripeBudget`, one
  Lua script that refills, takes a token and tells the wait, atomically, on Redis's clock), so all processes of all
  replicas together stay within ``stripe_requests_per_second``, however many the autoscaler runs;
* with Redis unreachable, falls back to a bucket per process (:class:`StripePacer`) at ``stripe_rate_per_process()``
  (``stripe_max_requests_per_second / workers`` when set), and goes back to the shared one when Redis answers;
* retries 429, 409, 5xx and connection errors with exponential backoff and full jitter, honouring ``Retry-After``
  and ``Stripe-Should-Retry`` (the SDK's own retries are off so every attempt passes through the bucket);
* never lets the reserve hot path queue behind an unbounded backlog: when more than ``stripe_max_backlog`` calls
  are already waiting for a token, or the wait would exceed ``stripe_max_wait_seconds``, it fails fast with
  ``Unavailable(reason="PAYMENTS_BUSY")``.

Idempotency keys are derived from the booking id (plus the operation) as Stripe recommends, but localstripe ignores
them, so correctness never depends on them: the booking service stores the intent id, refunds look for an existing
refund first, and concurrent calls for one booking in this process share a single request (single-flight).

Settings: the ``stripe_*`` fields of :class:`~booking_svc.settings.BookingSettings`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar, cast

import stripe
from cachetools import LRUCache
from prometheus_client import Counter, Gauge, Histogram
from redis.asyncio import Redis
from redis.exceptions import RedisError
from stripe.params import PaymentIntentCreateParams

from booking_svc.model import PaymentIntentInfo, WebhookEvent
from booking_svc.settings import BookingSettings
from tix.errors import FailedPrecondition, InvalidArgument, NotFound, Unavailable
from tix.logs import get_logger
from tix.singleflight import SingleFlight

T = TypeVar("T")

log = get_logger(__name__)

STRIPE_CALLS = Counter(
    "tix_stripe_calls_total",
    "Stripe API calls by operation and outcome (ok, retried, rate_limited, busy, error).",
    ["operation", "outcome"],
)
STRIPE_CALL_LATENCY = Histogram(
    "tix_stripe_call_seconds",
    "Time of one Stripe HTTP call, pacing excluded.",
    ["operation"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
STRIPE_PACING_WAIT = Histogram(
    "tix_stripe_pacing_wait_seconds",
    "Time a Stripe call waited for a token of the rate limiter.",
    buckets=(0.0, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0),
)
STRIPE_BACKLOG = Gauge(
    "tix_stripe_backlog", "Stripe calls waiting for a rate-limiter token.", multiprocess_mode="livesum"
)

BUSY_REASON = "PAYMENTS_BUSY"
_RETRYABLE_STATUS = frozenset({409, 429})
_COMPLETED_CACHE_SIZE = 10_000


class StripePacer:
    """A token bucket with reservations: each caller takes the next free slot, FIFO, in O(1).

    Tokens may go negative: a negative balance is the queue of callers already promised a future slot, so the
    wait of a new caller is known before it starts waiting and can be refused up front.
    """

    def __init__(
        self, rate: float, burst: float, max_backlog: int, max_wait: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = rate
        self.burst = max(1.0, burst)
        self.max_backlog = max_backlog
        self.max_wait = max_wait
        self._clock = clock
        self._tokens = self.burst
        self._updated = clock()
        self.waiting = 0

    @property
    def unlimited(self) -> bool:
        return self.rate <= 0

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate)
        self._updated = now

    async def acquire(self, operation: str) -> float:
        """Wait for this call's slot; returns the seconds waited. Raises PAYMENTS_BUSY instead of queueing too long."""
        if self.unlimited:
            return 0.0
        self._refill()
        if self._tokens >= 1:
            self._tokens -= 1
            STRIPE_PACING_WAIT.observe(0.0)
            return 0.0
        wait = (1 - self._tokens) / self.rate
        if self.waiting >= self.max_backlog or wait > self.max_wait:
            _busy(operation, self.waiting, wait)
        self._tokens -= 1
        self.waiting += 1
        STRIPE_BACKLOG.inc()
        try:
            await asyncio.sleep(wait)
        except asyncio.CancelledError:
            self._tokens += 1  # give the slot back to the callers behind
            raise
        finally:
            self.waiting -= 1
            STRIPE_BACKLOG.dec()
        STRIPE_PACING_WAIT.observe(wait)
        return wait


# KEYS[1]: the account's bucket; ARGV: rate per second, burst, longest wait accepted (s). Refill by Redis's clock, then
# take a token (the balance may go negative: callers promised future slots) unless the wait would be longer than
# accepted. Returns {1 granted / 0 refused, the wait in seconds as text}.
_TAKE_TOKEN = """
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) + tonumber(now_parts[2]) / 1000000
local rate, burst, max_wait = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'updated')
local tokens = tonumber(state[1]) or burst
local updated = tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - updated) * rate)
local wait = 0
if tokens < 1 then wait = (1 - tokens) / rate end
if wait > max_wait then
  redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'updated', tostring(now))
  return {0, tostring(wait)}
end
tokens = tokens - 1
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'updated', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil((burst - tokens) / rate * 1000) + 60000)
return {1, tostring(wait)}
"""

# A caller that gave up waiting hands its slot back (capped at the burst).
_GIVE_BACK = """
local tokens = tonumber(redis.call('HGET', KEYS[1], 'tokens'))
if tokens then redis.call('HSET', KEYS[1], 'tokens', tostring(math.min(tonumber(ARGV[1]), tokens + 1))) end
return 1
"""


def budget_key(api_key: str) -> str:
    """The Redis key of an account's bucket: named by a digest of the key, never the key itself."""
    return f"tix:stripe:budget:{hashlib.sha256(api_key.encode()).hexdigest()[:16]}"


class SharedStripeBudget:
    """The account's token bucket in Redis, shared by every process using the account; see the module docstring.

    Waiting happens in the caller's process (the script only says how long), and ``max_backlog`` bounds this
    process's waiters. When Redis fails, ``fallback`` (this process's own bucket) paces instead.
    """

    def __init__(
        self, redis: Redis, key: str, *, rate: float, burst: float, max_backlog: int, max_wait: float,
        fallback: StripePacer,
    ) -> None:
        self._redis = redis
        self._key = key
        self.rate = rate
        self.burst = max(1.0, burst)
        self.max_backlog = max_backlog
        self.max_wait = max_wait
        self._fallback = fallback
        self._take = redis.register_script(_TAKE_TOKEN)
        self._give_back = redis.register_script(_GIVE_BACK)
        self.waiting = 0
        self._degraded = False

    async def acquire(self, operation: str) -> float:
        if self.rate <= 0:
            return 0.0
        if self.waiting >= self.max_backlog:
            _busy(operation, self.waiting, self.max_wait)
        try:
            granted, wait_text = await self._take(keys=[self._key], args=[self.rate, self.burst, self.max_wait])
        except (RedisError, OSError, TimeoutError) as error:
            if not self._degraded:
                log.warning("stripe_budget_degraded", error=repr(error))
                self._degraded = True
            return await self._fallback.acquire(operation)
        if self._degraded:
            log.info("stripe_budget_restored")
            self._degraded = False
        wait = float(wait_text)
        if not int(granted):
            _busy(operation, self.waiting, wait)
        if wait <= 0:
            STRIPE_PACING_WAIT.observe(0.0)
            return 0.0
        self.waiting += 1
        STRIPE_BACKLOG.inc()
        try:
            await asyncio.sleep(wait)
        except asyncio.CancelledError:
            with contextlib.suppress(RedisError, OSError, TimeoutError):
                await asyncio.shield(self._give_back(keys=[self._key], args=[self.burst]))
            raise
        finally:
            self.waiting -= 1
            STRIPE_BACKLOG.dec()
        STRIPE_PACING_WAIT.observe(wait)
        return wait


def _busy(operation: str, waiting: int, wait: float) -> None:
    STRIPE_CALLS.labels(operation, "busy").inc()
    raise Unavailable(
        BUSY_REASON, "payments are busy, try again shortly", waiting=waiting, retry_after_seconds=f"{wait:.2f}"
    )


def _header(headers: Mapping[str, str] | None, name: str) -> str | None:
    if not headers:
        return None
    for key, value in headers.items():
        if key.lower() == name:
            return value
    return None


def _info(intent: Any) -> PaymentIntentInfo:
    data = intent.to_dict() if hasattr(intent, "to_dict") else dict(intent)
    return PaymentIntentInfo(
        payment_intent_id=data["id"],
        client_secret=data.get("client_secret") or "",
        status=data["status"],
        amount_minor=int(data["amount"]),
        currency=str(data["currency"]),
        metadata={str(k): str(v) for k, v in (data.get("metadata") or {}).items()},
    )


class PaymentGateway:
    """Stripe (or localstripe) behind the few calls booking needs; see the module docstring for the guarantees."""

    def __init__(self, settings: BookingSettings, redis: Redis | None = None) -> None:
        """``redis``: where the account's shared budget lives; without it, this process paces alone."""
        self._api_key = settings.stripe_api_key
        self._api_base = settings.stripe_api_base.rstrip("/")
        self._webhook_secret = settings.stripe_webhook_secret
        rate = settings.stripe_rate_per_process()
        self.pacer = StripePacer(
            rate=rate,
            burst=settings.stripe_burst if settings.stripe_burst is not None else max(rate, 1.0),
            max_backlog=settings.stripe_max_backlog,
            max_wait=settings.stripe_max_wait_seconds,
        )
        account_rate = settings.stripe_requests_per_second
        self.budget: StripePacer | SharedStripeBudget = self.pacer
        if redis is not None:
            self.budget = SharedStripeBudget(
                redis, budget_key(self._api_key), rate=account_rate,
                burst=settings.stripe_burst if settings.stripe_burst is not None else max(account_rate, 1.0),
                max_backlog=settings.stripe_max_backlog, max_wait=settings.stripe_max_wait_seconds,
                fallback=self.pacer,
            )
        self._max_retries = settings.stripe_max_retries
        self._backoff_base = settings.stripe_backoff_base_seconds
        self._backoff_cap = settings.stripe_backoff_cap_seconds
        self._http = stripe.HTTPXClient(timeout=settings.stripe_timeout_seconds)
        self._client = stripe.StripeClient(
            self._api_key,
            base_addresses={"api": self._api_base},
            http_client=self._http,
            max_network_retries=0,  # retried here, so that every attempt is paced
        )
        # Single-flight per (operation, booking) and a bounded memory of completed answers, so a duplicate call in
        # this process replays the first answer even though localstripe ignores idempotency keys.
        self._in_flight: SingleFlight[tuple[str, str], Any] = SingleFlight()
        self._completed: LRUCache[tuple[str, str], Any] = LRUCache(maxsize=_COMPLETED_CACHE_SIZE)

    # -- the calls booking makes -------------------------------------------------------------------------------------

    async def create_payment_intent(
        self, *, booking_id: str, amount_minor: int, currency: str, user_id: str, event_id: int
    ) -> PaymentIntentInfo:
        """A PaymentIntent for the booking (automatic capture); the fan confirms it with the client secret."""
        params: PaymentIntentCreateParams = {
            "amount": amount_minor,
            "currency": currency.lower(),
            "metadata": {"booking_id": booking_id, "user_id": user_id, "event_id": str(event_id)},
        }
        options: stripe.RequestOptions = {"idempotency_key": f"{booking_id}:create"}

        async def create() -> PaymentIntentInfo:
            intent = await self._call(
                "create_payment_intent", lambda: self._client.v1.payment_intents.create_async(params, options)
            )
            return _info(intent)

        return await self._once(("create", booking_id), create)

    async def retrieve_payment_intent(self, payment_intent_id: str) -> PaymentIntentInfo:
        intent = await self._call(
            "retrieve_payment_intent", lambda: self._client.v1.payment_intents.retrieve_async(payment_intent_id)
        )
        return _info(intent)

    async def cancel_payment_intent(self, payment_intent_id: str) -> PaymentIntentInfo:
        """Cancel the intent. If Stripe refuses because it is past cancelling (already canceled, or succeeded,
        or processing), the intent is returned as it stands without error: check ``status`` (``succeeded`` means
        the fan paid and the caller owes a refund)."""
        try:
            intent = await self._call(
                "cancel_payment_intent",
                lambda: self._client.v1.payment_intents.cancel_async(
                    payment_intent_id, options={"idempotency_key": f"{payment_intent_id}:cancel"}
                ),
            )
        except FailedPrecondition:
            current = await self.retrieve_payment_intent(payment_intent_id)
            if current.status in ("canceled", "succeeded", "processing"):
                return current
            raise
        return _info(intent)

    async def refund_payment(self, payment_intent_id: str, *, booking_id: str, reason: str) -> str:
        """Refund the whole payment of the booking; returns the refund id. Calling it again for the same booking
        (here or in another process) finds the first refund instead of refunding twice."""

        async def refund() -> str:
            existing = await self._existing_refund(payment_intent_id)
            if existing:
                return existing
            try:
                created = await self._call(
                    "refund_payment",
                    lambda: self._client.v1.refunds.create_async(
                        {
                            "payment_intent": payment_intent_id,
                            # Stripe's own `reason` is an enum; ours is free text, so it travels as metadata.
                            "metadata": {"booking_id": booking_id, "reason": reason},
                        },
                        {"idempotency_key": f"{payment_intent_id}:refund"},
                    ),
                )
            except FailedPrecondition:
                existing = await self._existing_refund(payment_intent_id)  # e.g. charge_already_refunded
                if existing:
                    return existing
                raise
            return str(created["id"])

        # Keyed by the intent: one refund per payment, whichever booking (or none) it was meant for.
        return await self._once(("refund", payment_intent_id), refund)

    def parse_webhook(self, payload: bytes, signature_header: str) -> WebhookEvent:
        """Verify the ``Stripe-Signature`` header, then decode the event. A signed body that is not a Stripe event
        (not JSON, not an object, no id or type) is refused as such: it cannot come from Stripe."""
        try:
            # Stripe's default tolerance (5 minutes): a replay of an old delivery fails like a forgery.
            stripe.WebhookSignature.verify_header(
                payload, signature_header, self._webhook_secret, tolerance=stripe.Webhook.DEFAULT_TOLERANCE
            )
        except stripe.SignatureVerificationError as error:
            raise InvalidArgument(
                "stripe-signature", "does not match the payload", reason="WEBHOOK_SIGNATURE_INVALID"
            ) from error
        except UnicodeDecodeError:  # the SDK decodes the body before it checks the signature
            raise InvalidArgument("payload", "is not a Stripe event", reason="WEBHOOK_PAYLOAD_INVALID") from None
        try:
            data = json.loads(payload)
        except ValueError:  # not UTF-8 or not JSON
            data = None
        if not (isinstance(data, dict) and isinstance(data.get("id"), str) and isinstance(data.get("type"), str)):
            raise InvalidArgument("payload", "is not a Stripe event", reason="WEBHOOK_PAYLOAD_INVALID")
        body = data.get("data")
        obj = body.get("object") if isinstance(body, dict) else None
        intent = None
        if isinstance(obj, dict) and obj.get("object") == "payment_intent":
            try:
                intent = _info(obj)
            except (KeyError, TypeError, ValueError, AttributeError):
                raise InvalidArgument(
                    "payload", "carries a malformed payment_intent", reason="WEBHOOK_PAYLOAD_INVALID"
                ) from None
        return WebhookEvent(event_id=data["id"], type=data["type"], payment_intent=intent)

    async def aclose(self) -> None:
        await self._http.close_async()

    # -- machinery ---------------------------------------------------------------------------------------------------

    async def _existing_refund(self, payment_intent_id: str) -> str | None:
        refunds = await self._call(
            "list_refunds",
            lambda: self._client.v1.refunds.list_async({"payment_intent": payment_intent_id, "limit": 1}),
        )
        data = refunds.to_dict().get("data") or []
        return str(data[0]["id"]) if data else None

    async def _once(self, key: tuple[str, str], run: Callable[[], Awaitable[T]]) -> T:
        """One request per (operation, booking) in this process: concurrent callers share it, and a finished
        answer is remembered, so a retried reservation never creates a second PaymentIntent here."""
        if key in self._completed:
            return cast("T", self._completed[key])
        return cast("T", await self._in_flight.run(key, lambda: self._remember(key, run)))

    async def _remember(self, key: tuple[str, str], run: Callable[[], Awaitable[T]]) -> T:
        result = await run()
        self._completed[key] = result
        return result

    def _backoff(self, attempt: int, error: stripe.StripeError | None) -> float:
        retry_after = _header(getattr(error, "headers", None), "retry-after")
        if retry_after:
            try:
                return min(float(retry_after), self._backoff_cap * 4)
            except ValueError:
                pass
        return random.uniform(0, min(self._backoff_cap, self._backoff_base * 2**attempt))

    @staticmethod
    def _retryable(error: stripe.StripeError) -> bool:
        should_retry = _header(error.headers, "stripe-should-retry")
        if should_retry in ("true", "false"):
            return should_retry == "true"
        if isinstance(error, stripe.APIConnectionError):
            return True
        status = error.http_status or 0
        return status in _RETRYABLE_STATUS or status >= 500

    async def _call(self, operation: str, send: Callable[[], Awaitable[T]]) -> T:
        attempt = 0
        while True:
            await self.budget.acquire(operation)
            started = time.perf_counter()
            try:
                result = await send()
            except stripe.StripeError as error:
                STRIPE_CALL_LATENCY.labels(operation).observe(time.perf_counter() - started)
                if self._retryable(error) and attempt < self._max_retries:
                    outcome = "rate_limited" if error.http_status == 429 else "retried"
                    STRIPE_CALLS.labels(operation, outcome).inc()
                    delay = self._backoff(attempt, error)
                    log.info("stripe call retried", operation=operation, status=error.http_status, delay=delay)
                    attempt += 1
                    await asyncio.sleep(delay)
                    continue
                STRIPE_CALLS.labels(operation, "error").inc()
                raise self._domain_error(operation, error) from error
            STRIPE_CALL_LATENCY.labels(operation).observe(time.perf_counter() - started)
            STRIPE_CALLS.labels(operation, "ok").inc()
            return result

    @staticmethod
    def _domain_error(operation: str, error: stripe.StripeError) -> Exception:
        status = error.http_status or 0
        detail = error.user_message or str(error) or type(error).__name__
        if isinstance(error, stripe.InvalidRequestError) and status == 404:
            return NotFound("PAYMENT_NOT_FOUND", f"{operation}: {detail}", operation=operation)
        if isinstance(error, (stripe.InvalidRequestError, stripe.CardError, stripe.IdempotencyError)):
            return FailedPrecondition(
                "PAYMENT_REJECTED", f"{operation}: {detail}", operation=operation, stripe_code=error.code or ""
            )
        return Unavailable("PAYMENTS_UNAVAILABLE", f"{operation}: {detail}", operation=operation, status=status)
