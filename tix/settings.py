"""Settings shared by every service: one pydantic-settings base, env prefix ``TIX_``, safe local defaults."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent


class TixSettings(BaseSettings):
    """What every process of the mesh needs to reach its stores and log."""

    model_config = SettingsConfigDict(env_prefix="TIX_", env_file=".env", extra="ignore")

    environment: Literal["development", "test", "production"] = "development"
    database_url: str = "postgresql+psycopg://postgres@127.0.0.1:5432/tix"
    redis_url: str = "redis://127.0.0.1:6379/0"
    log_level: str = "INFO"
    log_format: Literal["json", "console"] = "json"
    # Where development keys (JWT signing key, JWKS) and local state live.
    var_dir: Path = REPO_ROOT / "var"
    # Signs admission tokens (queue service) and verifies them (booking service).
    admission_secret: str = "dev-admission-secret-change-me-in-production"
    admission_ttl_seconds: int = 600
    stripe_api_key: str = "sk_test_tix_local"
    stripe_api_base: str = "http://127.0.0.1:8420"
    stripe_webhook_secret: str = "whsec_tix_local"


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
