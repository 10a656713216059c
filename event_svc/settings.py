"""Settings of the event service (env prefix ``TIX_``, like every service)."""

from __future__ import annotations

from pydantic import Field

from tix.settings import ReadServiceSettings


class EventSettings(ReadServiceSettings):
    """The event viewing service: gRPC, and an HTTP listener for the edge's cacheable reads and live streams."""

    # Event details change rarely and every change calls invalidate_event, so they may live in Redis for long.
    catalog_cache_seconds: int = 3600
    # Unknown ids are remembered briefly so a crawler probing ids does not reach PostgreSQL every time.
    missing_event_cache_seconds: float = 5.0
    # Seat layouts kept in process memory (they are shared templates: a handful of kinds of venue).
    layout_cache_size: int = 16
    # Seat changes buffered per gRPC watcher; a watcher that falls this far behind gets a fresh snapshot instead.
    watcher_queue_size: int = 256

    # --- the HTTP listener (seat maps, event pages, layouts and seat watches behind the edge) ---
    # 0: no HTTP listener (tix serve gives the registry's port, 50061).
    http_port: int = 0
    # How often a process asks Redis whether an event's seats or catalog changed (the published head and the
    # catalog version); cached maps and pages are served without asking in between. When the process watches the
    # event's feed (it has seat watchers), changes are known at once.
    read_freshness_seconds: float = Field(default=0.25, gt=0, le=5)
    # With Redis unreachable nothing says when a map changed: cached maps and pages live this long.
    degraded_cache_seconds: float = Field(default=1.0, gt=0, le=30)
    # Rendered maps, pages and layouts kept per process, and how long rendered maps stay in Redis for the other
    # processes and replicas (they are keyed by the published head, so a change makes them unreachable anyway).
    representation_cache_size: int = 512
    representation_redis_seconds: int = 30
    # A rendered answer is rendered again after this long even if its clock says nothing changed: a change whose
    # publication was lost (booking logs and goes on when Redis fails it) then shows within this time.
    representation_max_life_seconds: float = Field(default=30.0, gt=0)
    # While an event changes faster than its map renders, the last rendering is served this long before one
    # refresh starts, and meanwhile (up to stale seconds; older ones make requests wait for the new rendering).
    representation_refresh_seconds: float = Field(default=1.0, ge=0)
    representation_stale_seconds: float = Field(default=5.0, gt=0)
    # Cache-Control of seat maps and event pages: a CDN (or browser) may reuse a map this long and serve a stale
    # one while it revalidates; live seats come from the watch stream, so a second of staleness is harmless.
    seat_map_max_age_seconds: int = 1
    seat_map_stale_while_revalidate_seconds: int = 5
    event_page_max_age_seconds: int = 2
    event_page_stale_while_revalidate_seconds: int = 30
    # Layouts never change once venues use them: cached by CDNs and browsers for a day.
    layout_max_age_seconds: int = 86_400
    # The full view answers at most this many seats per page (whole sections); a section larger than that alone
    # is refused with a 400 that says so.
    full_view_page_seats: int = Field(default=5_000, ge=100)
    # Seat watches: a heartbeat after this many quiet seconds (proxies cut idle streams, commonly at 60 s).
    watch_heartbeat_seconds: float = Field(default=10.0, gt=0, le=15)
    # An event's HTTP and gRPC watchers are written to at most once per this many seconds: changes arriving closer
    # together go out as one write per watcher (each still its own SSE event with its own id). 0: write as soon as
    # the hub is free (changes that queued while it wrote still go together).
    watch_batch_seconds: float = Field(default=0.1, ge=0, le=1)
    # After its last watcher leaves, an event stays subscribed this long, keeping its recent publications: watchers
    # that all lost their connections at once (an edge restart, a network blip) resume from memory when they return.
    watch_linger_seconds: float = Field(default=60.0, ge=0)
    # A watcher whose connection holds this many unsent bytes is dropped (with a reason) rather than slowing
    # the others or growing memory; it resumes from its last id when it reconnects.
    watch_max_buffer_bytes: int = Field(default=1 << 20, ge=64 << 10)
    # Publications each process keeps per watched event for resuming watchers without asking Redis.
    watch_recent_publications: int = Field(default=2_048, ge=16)
    # Reconnecting browsers wait this long before retrying (the SSE retry field).
    watch_retry_milliseconds: int = 2_000
