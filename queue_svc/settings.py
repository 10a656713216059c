"""Settings of the queue service (env prefix ``TIX_``, like every service)."""

from __future__ import annotations

from pydantic import Field

from tix.settings import DEVELOPMENT_STREAM_TOKEN_PRIVATE_KEY, AdmissionSettings, env_name


class QueueSettings(AdmissionSettings):
    """The waiting room service: it signs admission tokens (``admission_secret``, ``admission_ttl_seconds``)."""

    # How often each process advances admissions and pushes positions to its watchers.
    tick_seconds: float = 0.5
    # A watcher hears from the stream at least this often, even when its position did not change.
    heartbeat_seconds: float = 15.0
    # A fan counts as present (their turn is not passed over) while a stream of theirs is open and for this long
    # after it closes or after their last join: a reconnect within it keeps the place.
    presence_grace_seconds: float = Field(default=30.0, ge=2.0)
    # Catalog settings (queue on/off, paused, rate, cap, sale start) are re-read after this long: an operator's change
    # (admin_svc) acts within it.
    event_cache_seconds: float = 1.0
    # Tickets and queue state of an event are kept this long after the last join.
    queue_ttl_seconds: int = 2 * 24 * 3600
    # Signs stream tokens (CreateStreamToken): an EC P-256 private key in PEM. The edge verifies them with its
    # public half (the stream JWKS); the development key is written in the repository and refused in production.
    stream_token_private_key: str = DEVELOPMENT_STREAM_TOKEN_PRIVATE_KEY
    # Long enough to open a stream after minting, short enough that a token copied out of a URL is soon useless.
    stream_token_ttl_seconds: int = Field(default=300, ge=30, le=3600)

    def production_problems(self) -> list[str]:
        problems = super().production_problems()
        if self.stream_token_private_key.strip() == DEVELOPMENT_STREAM_TOKEN_PRIVATE_KEY.strip():
            variable = env_name("stream_token_private_key")
            problems.append(
                f"{variable} is the development key written in the repository: set {variable} to an EC P-256 "
                "private key of your own (PEM) and give the edge its public half (k8s/README.md)"
            )
        return problems
