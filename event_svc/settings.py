"""Settings of the event service (env prefix ``TIX_``, like every service)."""

from __future__ import annotations

from tix.settings import ServiceSettings


class EventSettings(ServiceSettings):
    """The event viewing service."""

    # Event details change rarely and every change calls invalidate_event, so they may live in Redis for long.
    catalog_cache_seconds: int = 3600
    # Unknown ids are remembered briefly so a crawler probing ids does not reach PostgreSQL every time.
    missing_event_cache_seconds: float = 5.0
    # Seat layouts kept in process memory (they are shared templates: a handful of kinds of venue).
    layout_cache_size: int = 16
    # Seat changes buffered per watcher; a watcher that falls this far behind gets a fresh snapshot instead.
    watcher_queue_size: int = 256
