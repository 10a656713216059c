"""Settings: one pydantic-settings base, env prefix ``TIX_``, safe local defaults; one subclass per service.

The pattern: every setting a process reads is a field declared on its class (``EventSettings``, ``SearchSettings``,
``BookingSettings``, ``QueueSettings`` in each service's ``settings.py``, on :class:`ServiceSettings`). ``tix
serve`` builds that class once from the environment, the server bootstrap hands it to the service's ``setup``
(typed: ``Runtime[BookingSettings]``), and modules receive settings, or the values they need, from there; no module
builds settings of its own.

The ``DEVELOPMENT_*`` constants are the local stand-ins for secrets (localstripe's key, the webhook and admission
secrets, the stream-token signing key): the defaults here, what the development tooling configures localstripe and
the local edge with, and what a production process must never run with. With ``TIX_ENVIRONMENT=production`` a
settings class refuses them as it is built (:class:`InsecureSettings`, naming each variable to set), so no
production process gets as far as serving with one.
"""

from __future__ import annotations

from typing import Literal, Self

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEVELOPMENT_ADMISSION_SECRET = "dev-admission-secret-change-me-in-production"
DEVELOPMENT_STRIPE_API_KEY = "sk_test_tix_local"
DEVELOPMENT_STRIPE_WEBHOOK_SECRET = "whsec_tix_local"
# localstripe on its local port (not a secret, but never the API of a production process).
DEVELOPMENT_STRIPE_API_BASE = "http://127.0.0.1:8420"
# Signs stream tokens (ES256) in development; the local edge trusts its public half (tix_dev.tokens).
DEVELOPMENT_STREAM_TOKEN_PRIVATE_KEY = """-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgw/EXY4Iw3mR9nKo6
ptE/lgDZmJsOEiuCWHrgysWm5zqhRANCAARmy/lBS7zVN/B0V3Bpd0Rkka0guo1X
gQmimgipq3KIKmoXQX+niA5kkWlruMlqW4wZJXzDYXi3zMlzfBqDvWrU
-----END PRIVATE KEY-----
"""
# The placeholders of k8s/base/secrets.example.env contain this; production refuses them like development values.
PLACEHOLDER_MARK = "CHANGE_ME"
# HMAC secrets shorter than this are guessable offline from one token (RFC 7518 asks for the hash size, 32 bytes).
MIN_SECRET_LENGTH = 32


class InsecureSettings(RuntimeError):
    """A production process was configured with a development or placeholder secret. Not a ValueError on purpose:
    pydantic would wrap it and print every setting's value, secrets included."""

    def __init__(self, settings_class: str, problems: list[str]) -> None:
        self.problems = problems
        lines = "\n".join(f"  - {problem}" for problem in problems)
        super().__init__(
            f"TIX_ENVIRONMENT=production refuses to start {settings_class} with development secrets:\n{lines}"
        )


def env_name(field: str) -> str:
    return f"TIX_{field.upper()}"


def secret_problem(field: str, value: str, development_value: str, *, min_length: int = MIN_SECRET_LENGTH) -> str | None:
    """Why production refuses ``value`` for the secret ``field`` (None when it does not)."""
    variable = env_name(field)
    if value == development_value:
        return f"{variable} is the development value written in the repository: set {variable} to a secret of your own"
    if PLACEHOLDER_MARK in value:
        return f"{variable} is a placeholder ({PLACEHOLDER_MARK}): set {variable} to a secret of your own"
    if len(value) < min_length:
        return f"{variable} is shorter than {min_length} characters: set {variable} to a longer secret"
    return None


class TixSettings(BaseSettings):
    """What every process of the mesh needs to reach its stores and log."""

    model_config = SettingsConfigDict(env_prefix="TIX_", env_file=".env", extra="ignore")

    environment: Literal["development", "test", "production"] = "development"
    database_url: str = "postgresql+psycopg://postgres@127.0.0.1:5432/tix"
    redis_url: str = "redis://127.0.0.1:6379/0"
    log_level: str = "INFO"
    log_format: Literal["json", "console"] = "json"

    def production_problems(self) -> list[str]:
        """What production refuses in these settings, one line per variable naming it; subclasses add theirs."""
        return []

    @model_validator(mode="after")
    def _refuse_development_secrets_in_production(self) -> Self:
        if self.environment == "production":
            problems = self.production_problems()
            if problems:
                raise InsecureSettings(type(self).__name__, problems)
        return self


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
    # PostgreSQL connections a process holds: a fixed pool, opened as needed and kept. Overflow connections are
    # closed when they are returned, so under sustained load each use of one costs a new PostgreSQL backend (a fork,
    # authentication, empty catalog caches): at 32 concurrent searches, 10 overflow connections made a query about
    # 2 CPU-ms dearer (15.3-15.9 ms of the machine's CPU against mostly 12.3-13.7 with a fixed pool, in runs on a
    # machine whose speed varies). Calls beyond the pool wait for a connection.
    db_pool_size: int = 20
    db_max_overflow: int = 0
    max_concurrent_streams: int = 10_000
    # Calls the core may hold before the server's loop accepts them (see tix.server._server_options).
    max_pending_calls: int = 20_000


class ReadServiceSettings(ServiceSettings):
    """A service that serves reads (event viewing, search): it may read from a PostgreSQL replica."""

    # A read replica (streaming replication) for the queries that may be a moment behind the primary; unset: the
    # primary serves them too. Reads that must see the latest commit (the seat map at its version) stay on the
    # primary whatever this says.
    database_read_url: str | None = None


class AdmissionSettings(ServiceSettings):
    """The services on both ends of an admission token: the queue signs it, booking verifies it."""

    admission_secret: str = DEVELOPMENT_ADMISSION_SECRET
    admission_ttl_seconds: int = 600

    def production_problems(self) -> list[str]:
        problem = secret_problem("admission_secret", self.admission_secret, DEVELOPMENT_ADMISSION_SECRET)
        return [*super().production_problems(), *([problem] if problem else [])]
