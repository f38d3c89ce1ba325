"""Configuration, read once from the environment (see README: Configuration, Limits).

Each field is read from the environment variable `env(...)` names, and only from it (the
field's own name is no variable). An empty variable counts as unset. A value that does
not parse (`GRAPHQL_MAX_DEPTH=abc`) stops start-up with pydantic's message naming the
variable. tests/test_settings.py keeps the README's tables and these fields in step.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

ROOT = Path(__file__).resolve().parent.parent

Count = Annotated[int, Field(ge=1)]
Seconds = Annotated[float, Field(gt=0)]
Port = Annotated[int, Field(ge=1, le=65535)]


def env(variable: str, default: Any, *, secret: bool = False) -> Any:
    """A field read from `variable`; a secret's value stays out of `repr`."""
    return Field(default=default, validation_alias=variable, repr=not secret)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        frozen=True,
        case_sensitive=True,  # as os.environ: `port` is not PORT
        env_ignore_empty=True,  # DATABASE_URL= means unset, as it always has
        extra="ignore",
    )

    database_url: str | None = env("DATABASE_URL", None, secret=True)
    redis_url: str | None = env("REDIS_URL", None, secret=True)
    redis_prefix: str = env("REDIS_PREFIX", "booking:")
    # PostgreSQL connections each process keeps open. Requests beyond it wait for one:
    # opening a connection per request under load costs more than the wait.
    database_pool_size: Count = env("DATABASE_POOL_SIZE", 20)
    stripe_secret_key: str | None = env("STRIPE_SECRET_KEY", None, secret=True)
    stripe_webhook_secret: str | None = env("STRIPE_WEBHOOK_SECRET", None, secret=True)
    stripe_api_base: str | None = env("STRIPE_API_BASE", None)
    # One call to Stripe, the network included; a call is tried up to 3 times.
    stripe_timeout_seconds: Seconds = env("STRIPE_TIMEOUT_SECONDS", 5.0)
    booking_hold_seconds: Count | None = env("BOOKING_HOLD_SECONDS", None)
    jwt_secret: str | None = env("JWT_SECRET", None, secret=True)
    jwt_issuer: str = env("JWT_ISSUER", "booking-api")
    jwt_audience: str = env("JWT_AUDIENCE", "booking-spa")
    access_token_minutes: Count = env("ACCESS_TOKEN_MINUTES", 15)
    data_dir: Path = env("BOOKING_DATA_DIR", ROOT / ".data")
    # Where `make run` (commands/run.py) listens; `uvicorn app:app` takes its own flags.
    host: str = env("HOST", "127.0.0.1")
    port: Port = env("PORT", 8000)
    # What one request may ask and hold (README: Limits). The defaults sit well above
    # what an SPA sends; past them a document is refused before it runs.
    max_depth: Count = env("GRAPHQL_MAX_DEPTH", 15)
    max_aliases: Count = env("GRAPHQL_MAX_ALIASES", 30)
    max_tokens: Count = env("GRAPHQL_MAX_TOKENS", 2_000)
    max_directives: Count = env("GRAPHQL_MAX_DIRECTIVES", 50)
    max_cost: Count = env("GRAPHQL_MAX_COST", 100_000)
    operation_timeout_seconds: Seconds = env("OPERATION_TIMEOUT_SECONDS", 10.0)
    request_connections: Count = env("REQUEST_DB_CONNECTIONS", 3)
    shutdown_timeout_seconds: Annotated[float, Field(ge=0)] = env("SHUTDOWN_TIMEOUT_SECONDS", 5.0)

    @classmethod
    def from_env(cls) -> Settings:
        """The settings of this process; pydantic's ValidationError names a bad value."""
        return cls()

    @classmethod
    def variables(cls) -> dict[str, str]:
        """Environment variable -> field name, for every field."""
        return {str(field.validation_alias): name for name, field in cls.model_fields.items()}
