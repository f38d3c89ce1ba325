"""Configuration, read once from the environment (see README: Configuration)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True, slots=True)
class Settings:
    database_url: str | None
    redis_url: str | None
    stripe_secret_key: str | None
    stripe_webhook_secret: str | None
    stripe_api_base: str | None
    booking_hold_seconds: int | None
    jwt_secret: str | None
    data_dir: Path
    redis_prefix: str = "booking:"
    # PostgreSQL connections each process keeps open. Requests beyond it wait for one:
    # opening a connection per request under load costs more than the wait.
    database_pool_size: int = 20
    access_token_minutes: int = 15
    refresh_token_days: int = 30
    jwt_issuer: str = "booking-api"
    jwt_audience: str = "booking-spa"
    # What one request may ask and hold (README: Limits). The defaults sit well above
    # what an SPA sends; past them a document is refused before it runs.
    max_depth: int = 15
    max_aliases: int = 30
    max_tokens: int = 2_000
    max_directives: int = 50
    max_cost: int = 100_000
    operation_timeout_seconds: float = 10.0
    request_connections: int = 3
    shutdown_timeout_seconds: float = 5.0

    @classmethod
    def from_env(cls) -> Settings:
        hold = os.environ.get("BOOKING_HOLD_SECONDS")
        return cls(
            database_url=os.environ.get("DATABASE_URL") or None,
            redis_url=os.environ.get("REDIS_URL") or None,
            stripe_secret_key=os.environ.get("STRIPE_SECRET_KEY") or None,
            stripe_webhook_secret=os.environ.get("STRIPE_WEBHOOK_SECRET") or None,
            stripe_api_base=os.environ.get("STRIPE_API_BASE") or None,
            booking_hold_seconds=int(hold) if hold else None,
            jwt_secret=os.environ.get("JWT_SECRET") or None,
            data_dir=Path(os.environ.get("BOOKING_DATA_DIR", ROOT / ".data")),
            redis_prefix=os.environ.get("REDIS_PREFIX", "booking:"),
            database_pool_size=int(os.environ.get("DATABASE_POOL_SIZE", "20")),
            max_depth=int(os.environ.get("GRAPHQL_MAX_DEPTH", "15")),
            max_aliases=int(os.environ.get("GRAPHQL_MAX_ALIASES", "30")),
            max_tokens=int(os.environ.get("GRAPHQL_MAX_TOKENS", "2000")),
            max_directives=int(os.environ.get("GRAPHQL_MAX_DIRECTIVES", "50")),
            max_cost=int(os.environ.get("GRAPHQL_MAX_COST", "100000")),
            operation_timeout_seconds=float(os.environ.get("OPERATION_TIMEOUT_SECONDS", "10")),
            request_connections=int(os.environ.get("REQUEST_DB_CONNECTIONS", "3")),
            shutdown_timeout_seconds=float(os.environ.get("SHUTDOWN_TIMEOUT_SECONDS", "5")),
        )
