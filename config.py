"""Configuration, read once from the environment (see README: Configuration)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent


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
        )
