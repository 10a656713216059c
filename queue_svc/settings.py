"""Settings of the queue service (env prefix ``TIX_``, like every service)."""

from __future__ import annotations

from tix.settings import AdmissionSettings


class QueueSettings(AdmissionSettings):
    """The waiting room service: it signs admission tokens (``admission_secret``, ``admission_ttl_seconds``)."""

    # How often each process advances admissions and pushes positions to its watchers.
    tick_seconds: float = 0.5
    # A watcher hears from the stream at least this often, even when its position did not change.
    heartbeat_seconds: float = 5.0
    # Catalog settings (queue on/off, rate, sale start) are re-read after this long.
    event_cache_seconds: float = 5.0
    # Tickets and queue state of an event are kept this long after the last join.
    queue_ttl_seconds: int = 2 * 24 * 3600
