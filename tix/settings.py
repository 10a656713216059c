"""Settings: one pydantic-settings base, env prefix ``TIX_``, safe local defaults; one subclass per service.

The pattern: every setting a process reads is a field declared on its class (``EventSettings``, ``SearchSettings``,
``BookingSettings``, ``QueueSettings`` in each service's ``settings.py``, on :class:`ServiceSettings`). ``tix
serve`` builds that class once from the environment, the server bootstrap hands it to the service's ``setup``
(typed: ``Runtime[BookingSettings]``), and modules receive settings, or the values they need, from there; no module
builds settings of its own.

The ``DEVELOPMENT_*`` constants are the local stand-ins for secrets (localstripe's key, the webhook and admission
secrets): the defaults here, what the development tooling configures localstripe with, and what a production
process must never run with.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEVELOPMENT_ADMISSION_SECRET = "dev-admission-secret-change-me-in-production"
DEVELOPMENT_STRIPE_API_KEY = "sk_test_tix_local"
DEVELOPMENT_STRIPE_WEBHOOK_SECRET = "whsec_tix_local"
# localstripe on its local port (not a secret, but never the API of a production process).
DEVELOPMENT_STRIPE_API_BASE = "http://127.0.0.1:8420"


class TixSettings(BaseSettings):
    """What every process of the mesh needs to reach its stores and log."""

    model_config = SettingsConfigDict(env_prefix="TIX_", env_file=".env", extra="ignore")

    environment: Literal["development", "test", "production"] = "development"
    database_url: str = "postgresql+psycopg://postgres@127.0.0.1:5432/tix"
    redis_url: str = "redis://127.0.0.1:6379/0"
    log_level: str = "INFO"
    log_format: Literal["json", "console"] = "json"


class ServiceSettings(TixSettings):
    """A gRPC service process: where it listens, how many workers, how it drains."""

    host: str = "127.0.0.1"
    port: int = 0
    metrics_port: int = 0
    # Processes sharing the port through SO_REUSEPORT; 1 runs the server in this process.
    workers: int = Field(default=1, ge=1, le=64)
    # Seconds between reporting NOT_SERVING and stopping, so load balancers stop sending new calls.
    drain_seconds: float = 0.0
    # Seconds in-flight calls get to finish on shutdown.
    grace_seconds: float = 10.0
    db_pool_size: int = 10
    db_max_overflow: int = 10
    max_concurrent_streams: int = 10_000
    # Calls the core may hold before the server's loop accepts them (see tix.server._server_options).
    max_pending_calls: int = 20_000


class AdmissionSettings(ServiceSettings):
    """The services on both ends of an admission token: the queue signs it, booking verifies it."""

    admission_secret: str = DEVELOPMENT_ADMISSION_SECRET
    admission_ttl_seconds: int = 600
