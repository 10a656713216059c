"""Settings of the booking service (env prefix ``TIX_``, like every service)."""

from __future__ import annotations

from pydantic import Field

from tix.settings import (
    DEVELOPMENT_STRIPE_API_BASE,
    DEVELOPMENT_STRIPE_API_KEY,
    DEVELOPMENT_STRIPE_WEBHOOK_SECRET,
    AdmissionSettings,
    env_name,
    secret_problem,
)

# Stripe's test-mode keys take no money: a production process with one would hand out tickets for nothing.
_TEST_MODE_KEY_PREFIXES = ("sk_test_", "rk_test_")


class BookingSettings(AdmissionSettings):
    """Holds, payments and the expiry sweeper; verifies admission tokens (``admission_secret``)."""

    # How long seats stay held while the fan pays (the Redis TTL and the database reservation deadline).
    hold_seconds: int = Field(default=600, ge=5, le=3600)
    # Ceiling for every event; each event also carries its own (lower wins).
    max_seats_per_user: int = Field(default=8, ge=1, le=100)
    # Independent Redis nodes for Redlock (TIX_REDIS_LOCK_URLS='["redis://a:6379/0", ...]'); empty: redis_url.
    redis_lock_urls: list[str] = Field(default_factory=list)
    # Redlock's allowance for clock drift between nodes, as a fraction of the TTL (plus 2 ms).
    lock_drift_factor: float = Field(default=0.01, ge=0.0, lt=0.5)
    # A lock node that does not answer within this time counts as a failed vote, so one dead node never stalls.
    lock_node_timeout_seconds: float = Field(default=2.0, gt=0)
    # Best-available: blocks tried, best first, when racers take the chosen one.
    best_available_attempts: int = Field(default=4, ge=1, le=20)
    # Best-available's allocator (booking_svc.allocation): how long a fan waits for a cold event to be loaded
    # before the database path serves the request instead.
    allocator_load_wait_seconds: float = Field(default=10.0, gt=0)
    # Crowd behaviour (BookingService.reserve_seats): reservations in progress per process; beyond it a call waits
    # up to reserve_queue_seconds for a turn (never past its deadline less reserve_min_work_seconds), then is
    # answered RESOURCE_EXHAUSTED (BOOKING_BUSY) with a retry delay of reserve_retry_after_seconds.
    # (A low limit keeps other calls of the process, GetBooking for one, fast while a crowd books: at most this
    # many reservations' steps share the event loop with them.)
    reserve_max_in_flight: int = Field(default=32, ge=1)
    reserve_queue_seconds: float = Field(default=3.0, gt=0)
    reserve_min_work_seconds: float = Field(default=0.05, ge=0)
    reserve_retry_after_seconds: float = Field(default=1.0, gt=0)
    # The hold reaper (booking_svc.reaper): how often it runs in-process (0: never; the CronJob or
    # `tix bookings reap-holds` then does), and how old a Redis hold must be before a missing booking makes it a leak.
    hold_reaper_interval_seconds: float = Field(default=60.0, ge=0)
    hold_reaper_grace_seconds: float = Field(default=60.0, ge=1)
    # Event rules and seat catalog are cached in-process this long, so stampede losers never reach PostgreSQL.
    event_cache_seconds: float = Field(default=2.0, ge=0)
    # Stripe (localstripe locally): the secret API key, the API's address, and the webhook endpoint's signing secret.
    stripe_api_key: str = DEVELOPMENT_STRIPE_API_KEY
    stripe_api_base: str = DEVELOPMENT_STRIPE_API_BASE
    stripe_webhook_secret: str = DEVELOPMENT_STRIPE_WEBHOOK_SECRET
    # Stripe pacing (read by booking_svc.payments): calls per second of the whole Stripe account, shared by every
    # process of every replica through one token bucket in Redis (Stripe's test-mode account limit is 25/s; 0 or
    # less disables pacing); how many calls may wait for a slot and how long, before PAYMENTS_BUSY; retries and
    # timeout.
    stripe_requests_per_second: float = 25.0
    # With Redis unreachable each process paces alone: at this budget of the replica divided among its TIX_WORKERS
    # processes when set, else at stripe_requests_per_second.
    stripe_max_requests_per_second: float | None = None
    # Calls the token bucket lets through at once after a quiet spell; unset: one second's worth of the rate.
    stripe_burst: float | None = Field(default=None, gt=0)
    stripe_max_backlog: int = Field(default=200, ge=1)
    stripe_max_wait_seconds: float = Field(default=5.0, gt=0)
    stripe_max_retries: int = Field(default=3, ge=0)
    # Retries back off exponentially from the base, capped, with full jitter (unless Stripe says Retry-After).
    stripe_backoff_base_seconds: float = Field(default=0.25, gt=0)
    stripe_backoff_cap_seconds: float = Field(default=4.0, gt=0)
    stripe_timeout_seconds: float = Field(default=10.0, gt=0)
    # The expiry sweeper: how often it runs and how many bookings one transaction handles.
    sweeper_interval_seconds: float = Field(default=5.0, gt=0)
    sweeper_batch_size: int = Field(default=200, ge=1, le=5000)

    def production_problems(self) -> list[str]:
        problems = super().production_problems()
        key = self.stripe_api_key
        if key.startswith(_TEST_MODE_KEY_PREFIXES) or key == DEVELOPMENT_STRIPE_API_KEY:
            problems.append(
                f"{env_name('stripe_api_key')} is a Stripe test-mode key: set {env_name('stripe_api_key')} to the "
                "live secret key (sk_live_... or a restricted rk_live_...) from the Stripe dashboard"
            )
        elif problem := secret_problem("stripe_api_key", key, DEVELOPMENT_STRIPE_API_KEY, min_length=20):
            problems.append(problem)
        webhook = secret_problem(
            "stripe_webhook_secret", self.stripe_webhook_secret, DEVELOPMENT_STRIPE_WEBHOOK_SECRET, min_length=20
        )
        if webhook:
            problems.append(webhook + " (the webhook endpoint's signing secret, whsec_...)")
        if self.stripe_api_base.rstrip("/") == DEVELOPMENT_STRIPE_API_BASE:
            problems.append(
                f"{env_name('stripe_api_base')} points at localstripe: set {env_name('stripe_api_base')}="
                "https://api.stripe.com"
            )
        return problems

    def lock_urls(self) -> list[str]:
        return list(self.redis_lock_urls) or [self.redis_url]

    def stripe_rate_per_process(self) -> float:
        """The Stripe calls per second one process may make while the shared budget (Redis) is unreachable: the
        replica's budget shared by its workers, when set."""
        if self.stripe_max_requests_per_second is not None:
            return self.stripe_max_requests_per_second / self.workers
        return self.stripe_requests_per_second
