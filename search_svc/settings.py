"""Settings of the search service (env prefix ``TIX_``, like every service)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from tix.settings import ReadServiceSettings


class SearchSettings(ReadServiceSettings):
    """The event search service."""

    # Which engine answers searches; "postgres" needs nothing but the catalog database, "elasticsearch" a cluster
    # at elasticsearch_url (its index is built from the catalog on first start, then fed by the outbox).
    search_backend: Literal["postgres", "elasticsearch"] = "postgres"
    elasticsearch_url: str = "http://127.0.0.1:9200"
    # The alias searches read and the indexer writes; indices behind it are named "<alias>-<UTC time>".
    elasticsearch_index: str = Field(default="tix-events", pattern=r"^[a-z0-9][a-z0-9_-]{0,100}$")
    elasticsearch_timeout_seconds: float = 5.0
    # Identical searches within this many seconds share one answer (0 disables the cache). A catalog change the
    # indexer applies retires every cached answer at once (the generation), so this bounds only how long an event
    # that has just started may still be listed as upcoming.
    search_cache_seconds: float = 30.0
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
    # Outbox rows every consumer has applied are kept this long (for inspection), then deleted by the leading
    # PostgreSQL indexer.
    outbox_retention_hours: float = 24.0
