"""Settings of the search service (env prefix ``TIX_``, like every service)."""

from __future__ import annotations

from typing import Literal

from tix.settings import ReadServiceSettings


class SearchSettings(ReadServiceSettings):
    """The event search service."""

    # Which engine answers searches; "postgres" needs nothing but the catalog database.
    search_backend: Literal["postgres"] = "postgres"
    # Identical searches within this many seconds share one answer (0 disables the cache).
    search_cache_seconds: float = 5.0
    # Tail the outbox and keep the index current (one process per backend leads, the others stand by); off where
    # a separate `tix search index` process does it.
    indexer_enabled: bool = True
    # LISTEN for outbox notifications (off: poll only, every indexer_poll_seconds; the bench's baseline).
    indexer_listen: bool = True
    indexer_poll_seconds: float = 1.0
    indexer_batch_size: int = 500
    # How long the indexer waits for an outbox id that is missing (an insert not yet committed) before skipping it.
    indexer_gap_seconds: float = 10.0
    # How often a standby indexer (another process leads) tries to take over.
    indexer_standby_seconds: float = 2.0
