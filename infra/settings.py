"""Configuration, read once from the environment (see README: Configuration, Limits).

Each field is read from the environment variable `env(...)` names, and only from it (the
field's own name is no variable). An empty variable counts as unset. A value that does
not parse (`GRAPHQL_MAX_DEPTH=abc`) stops start-up with pydantic's message naming the
variable. tests/test_settings.py keeps the README's tables and these fields in step.
"""

from __future__ import annotations

import ipaddress
import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import phonenumbers
from pydantic import Field, PrivateAttr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from infra.rate_limits import parse_figures
from infra.smtp_mail import SmtpTarget, parse_smtp_url

ROOT = Path(__file__).resolve().parent.parent

Count = Annotated[int, Field(ge=1)]
Seconds = Annotated[float, Field(gt=0)]
Port = Annotated[int, Field(ge=1, le=65535)]
# A comma-separated list in its variable (not JSON).
Listed = Annotated[tuple[str, ...], NoDecode]
PROVIDER_NAME = re.compile(r"[a-z][a-z0-9]{0,31}")


def origin_of(url: str) -> str | None:
    """`scheme://host[:port]` of an http(s) URL, lower-case and without a default port;
    None for anything else (another scheme, no host, user:password@, a bad port)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    host = parts.hostname
    if parts.scheme not in ("http", "https") or not host or parts.username is not None:
        return None
    if ":" in host:
        host = f"[{host}]"  # IPv6
    default = 443 if parts.scheme == "https" else 80
    return f"{parts.scheme}://{host}" + (f":{port}" if port not in (None, default) else "")


def _listed(value: Any) -> Any:
    if isinstance(value, str):
        return tuple(item.strip() for item in value.split(",") if item.strip())
    return value


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
    # The SPA: links in e-mails (verification, password reset) point there.
    app_url: str = env("APP_URL", "http://localhost:5173")
    mail_from: str = env("MAIL_FROM", "Booking <no-reply@localhost>")
    # Where the file mail sender writes each message (.eml); unset: BOOKING_DATA_DIR/mail.
    mail_dir: Path | None = env("MAIL_DIR", None)
    # SMTP (infra/smtp_mail.py): smtp://, smtp+starttls:// or smtps://user:pass@host:port;
    # unset: mail is written to MAIL_DIR. Checked by from_env (see `smtp`).
    smtp_url: str | None = env("SMTP_URL", None, secret=True)
    # One send over SMTP, connecting included; a send is tried up to 3 times.
    smtp_timeout_seconds: Seconds = env("SMTP_TIMEOUT_SECONDS", 10.0)
    # Where e-mails and webhooks are derived and sent from: every server process, or
    # only `python -m commands.notifications worker` processes.
    notifications_worker: Literal["in-process", "external"] = env(
        "NOTIFICATIONS_WORKER", "in-process"
    )
    # The first wait before an e-mail is tried again (then doubling, at most an hour).
    notification_retry_seconds: Seconds = env("NOTIFICATION_RETRY_SECONDS", 30.0)
    # Organization webhooks (domain/notifications/webhook_sender.py): one POST's time
    # limit (never retried inside: the queue retries), and which addresses beyond the
    # public internet an endpoint may be on (url_guard.py; off: no request forgery).
    webhook_timeout_seconds: Seconds = env("WEBHOOK_TIMEOUT_SECONDS", 10.0)
    webhook_allow_loopback: bool = env("WEBHOOK_ALLOW_LOOPBACK", False)
    webhook_allow_private_networks: bool = env("WEBHOOK_ALLOW_PRIVATE_NETWORKS", False)
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
    # Phone sign-in (docs/identity.md): where its codes go, and how to read a number
    # written without its +country code (unset: such a number is refused).
    sms_provider: Literal["console", "twilio"] = env("SMS_PROVIDER", "console")
    twilio_account_sid: str | None = env("TWILIO_ACCOUNT_SID", None)
    twilio_auth_token: str | None = env("TWILIO_AUTH_TOKEN", None, secret=True)
    sms_from: str | None = env("SMS_FROM", None)
    sms_api_base: str = env("SMS_API_BASE", "https://api.twilio.com")
    # One call to the SMS provider; a send is tried up to 3 times.
    sms_timeout_seconds: Seconds = env("SMS_TIMEOUT_SECONDS", 3.0)
    default_phone_region: str | None = env("DEFAULT_PHONE_REGION", None)
    # Rate limits (infra/rate_limits.py): "off", or a JSON object overriding figures.
    rate_limits: str | None = env("RATE_LIMITS", None)
    # Load balancers whose X-Forwarded-For names the client (web/client_ip.py).
    trusted_proxies: Annotated[
        tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...], NoDecode
    ] = env("TRUSTED_PROXIES", ())
    # Third-party sign-in (README: Third-party sign-in). The providers by name; each reads
    # OIDC_<NAME>_CLIENT_ID, OIDC_<NAME>_CLIENT_SECRET and more (domain/users/oidc.py).
    oidc_providers: Listed = env("OIDC_PROVIDERS", ())
    # One call to a provider (discovery, token, keys, userinfo), the network included.
    oidc_timeout_seconds: Seconds = env("OIDC_TIMEOUT_SECONDS", 5.0)
    # The origins of the SPA pages a sign-in may return the browser to.
    auth_redirect_origins: Listed = env("AUTH_REDIRECT_ORIGINS", ())
    # This server's address as browsers reach it, for the callback URLs given to
    # providers (behind a proxy); unset: each request's own.
    auth_callback_base_url: str | None = env("AUTH_CALLBACK_BASE_URL", None)
    # This API's address as calendar apps reach it (behind a proxy, maybe under a path):
    # the base of calendar feed URLs; unset: each request's own.
    public_api_url: str | None = env("PUBLIC_API_URL", None)
    # Each provider's own variables, whose names no field can declare.
    _oidc_variables: dict[str, str] = PrivateAttr(default_factory=dict)

    @field_validator("default_phone_region")
    @classmethod
    def _known_region(cls, value: str | None) -> str | None:
        if value is not None and value.upper() not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError("use an ISO 3166 country code that has phone numbers, like US or DE")
        return value.upper() if value else None

    @field_validator("rate_limits")
    @classmethod
    def _rate_limits_parse(cls, value: str | None) -> str | None:
        parse_figures(value)  # ValueError: what is wrong
        return value

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _networks(cls, value: Any) -> Any:
        """A comma-separated list of addresses and CIDR networks."""
        if not isinstance(value, str):
            return value
        try:
            return tuple(
                ipaddress.ip_network(item.strip(), strict=False)
                for item in value.split(",")
                if item.strip()
            )
        except ValueError as error:
            raise ValueError(f"use addresses or networks like 10.0.0.0/8: {error}") from None

    @model_validator(mode="after")
    def _sms_provider_configured(self) -> Settings:
        if self.sms_provider == "twilio":
            missing = [
                variable
                for variable, value in (
                    ("TWILIO_ACCOUNT_SID", self.twilio_account_sid),
                    ("TWILIO_AUTH_TOKEN", self.twilio_auth_token),
                    ("SMS_FROM", self.sms_from),
                )
                if not value
            ]
            if missing:
                raise ValueError(f"SMS_PROVIDER=twilio needs {', '.join(missing)}")
        return self

    @field_validator("oidc_providers", mode="before")
    @classmethod
    def _provider_names(cls, value: Any) -> Any:
        names = _listed(value)
        if isinstance(names, tuple):
            names = tuple(name.lower() for name in names)
            bad = [name for name in names if not PROVIDER_NAME.fullmatch(name)]
            if bad:
                raise ValueError(f"use lower-case letters and digits for provider names: {bad}")
            if len(set(names)) < len(names):
                raise ValueError("a provider is named twice")
        return names

    @field_validator("auth_redirect_origins", mode="before")
    @classmethod
    def _origins(cls, value: Any) -> Any:
        given = _listed(value)
        if not isinstance(given, tuple):
            return given
        origins = []
        for url in given:
            parts = urlsplit(url)
            origin = origin_of(url)
            if origin is None or parts.path not in ("", "/") or parts.query or parts.fragment:
                raise ValueError(f"{url!r} is not an origin like https://app.example.com")
            origins.append(origin)
        return tuple(origins)

    @field_validator("auth_callback_base_url")
    @classmethod
    def _base_url(cls, value: str | None) -> str | None:
        if value is not None and origin_of(value) is None:
            raise ValueError(f"{value!r} is not an http(s) address")
        return value.rstrip("/") if value else value

    @field_validator("public_api_url")
    @classmethod
    def _public_url(cls, value: str | None) -> str | None:
        if value is None:
            return value
        parts = urlsplit(value)
        if origin_of(value) is None or parts.query or parts.fragment:
            raise ValueError(f"{value!r} is not an http(s) address like https://api.example.com")
        return value.rstrip("/")

    def model_post_init(self, context: Any) -> None:
        self._oidc_variables = {
            name: value for name, value in os.environ.items() if name.startswith("OIDC_") and value
        }

    def oidc_variable(self, name: str) -> str | None:
        """OIDC_<NAME>_... as it was at start-up (unset or empty: None)."""
        return self._oidc_variables.get(name)

    @property
    def mail_directory(self) -> Path:
        return self.mail_dir or self.data_dir / "mail"

    @property
    def smtp(self) -> SmtpTarget | None:
        """SMTP_URL parsed (None: unset); ValueError naming SMTP_URL when it is not one.
        Not a field validator: pydantic's message would echo the URL, password and all."""
        return parse_smtp_url(self.smtp_url) if self.smtp_url else None

    @classmethod
    def from_env(cls) -> Settings:
        """The settings of this process; pydantic's ValidationError names a bad value (a
        bad SMTP_URL: a ValueError naming it, without its value)."""
        settings = cls()
        settings.smtp  # noqa: B018 - parsed now, so a bad one stops start-up
        return settings

    @classmethod
    def variables(cls) -> dict[str, str]:
        """Environment variable -> field name, for every field."""
        return {str(field.validation_alias): name for name, field in cls.model_fields.items()}
