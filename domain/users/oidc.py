"""Third-party sign-in providers: their configuration and what the sign-in flow needs of
one (`IdentityProvider`). The implementations, on authlib, are in oidc_client.py.

OIDC_PROVIDERS names them (`google,github,acme`); each name is the path segment of
/auth/{name}/login and reads OIDC_<NAME>_CLIENT_ID and OIDC_<NAME>_CLIENT_SECRET.
`google` has Google's discovery URL built in, `github` GitHub's OAuth 2.0 endpoints
(GitHub is not an OpenID provider; OIDC_GITHUB_URL and OIDC_GITHUB_API_URL point it at
GitHub Enterprise). Any other name is an OpenID Connect issuer whose discovery document
is at OIDC_<NAME>_DISCOVERY_URL (README: Third-party sign-in).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Protocol
from urllib.parse import urlsplit

from infra.settings import Settings

GOOGLE_DISCOVERY_URL = "https://accounts.google.com/.well-known/openid-configuration"
GITHUB_URL = "https://github.com"
GITHUB_API_URL = "https://api.github.com"
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


class Kind(Enum):
    OPENID = "openid"  # OpenID Connect: an ID token, discovery, JWKS
    GITHUB = "github"  # OAuth 2.0 and GitHub's REST API for who signed in


@dataclass(frozen=True, slots=True)
class ProviderConfig:
    name: str
    kind: Kind
    client_id: str
    client_secret: str = field(repr=False)
    discovery_url: str | None = None  # OPENID
    url: str | None = None  # GITHUB: the site (authorize and token endpoints)
    api_url: str | None = None  # GITHUB: the REST API


@dataclass(frozen=True, slots=True)
class AuthorizationRequest:
    """Where to send the browser, and what the callback needs to finish: kept by us,
    keyed by `state`, never shown to the browser (but `state` itself)."""

    url: str
    state: str
    code_verifier: str  # PKCE (S256): the provider saw only its hash
    nonce: str | None  # OpenID Connect: the ID token must carry it back


@dataclass(frozen=True, slots=True)
class ProviderIdentity:
    """Who the provider says signed in."""

    subject: str  # stable and unique at this provider (`sub`, GitHub's numeric id)
    email: str | None
    email_verified: bool  # the provider vouches that this person owns `email`
    name: str | None


class ProviderUnavailable(Exception):
    """The provider did not answer in time, could not be reached, answered with a server
    error, or its circuit is open: worth trying again later."""


class ProviderRefused(Exception):
    """The provider refused (a used or wrong authorization code) or answered something
    we cannot accept (an ID token with a bad signature, issuer, audience or nonce)."""


class IdentityProvider(Protocol):
    name: str

    async def begin(self, callback_uri: str) -> AuthorizationRequest:
        """A fresh authorization request (code flow, PKCE S256, state, and a nonce for
        OpenID Connect) whose answer comes back to `callback_uri`."""
        ...

    async def finish(
        self, code: str, callback_uri: str, code_verifier: str, nonce: str | None
    ) -> ProviderIdentity:
        """Exchanges the authorization code (with the PKCE verifier) and checks who it
        names: ProviderUnavailable or ProviderRefused otherwise."""
        ...


def _provider_url(variable: str, value: str) -> str:
    """HTTPS, or HTTP to this machine only (development and tests)."""
    parts = urlsplit(value)
    local = parts.scheme == "http" and parts.hostname in LOOPBACK_HOSTS
    if not parts.hostname or not (parts.scheme == "https" or local):
        raise ValueError(f"{variable}: use an https:// address (http:// only to loopback)")
    return value


def configs_from_settings(settings: Settings) -> list[ProviderConfig]:
    """Every provider OIDC_PROVIDERS names; a missing or malformed variable stops start-up
    with a message naming it."""
    if settings.oidc_providers and not settings.auth_redirect_origins:
        raise ValueError(
            "AUTH_REDIRECT_ORIGINS is not set: a third-party sign-in would have no page of"
            " the SPA to return to"
        )
    configs = []
    for name in settings.oidc_providers:
        prefix = f"OIDC_{name.upper()}_"

        def variable(suffix: str, prefix: str = prefix) -> str | None:
            return settings.oidc_variable(prefix + suffix)

        def required(suffix: str, prefix: str = prefix) -> str:
            value = variable(suffix)
            if not value:
                raise ValueError(f"{prefix}{suffix} is not set (OIDC_PROVIDERS names it)")
            return value

        client_id, client_secret = required("CLIENT_ID"), required("CLIENT_SECRET")
        if name == "github":
            configs.append(
                ProviderConfig(
                    name,
                    Kind.GITHUB,
                    client_id,
                    client_secret,
                    url=_provider_url(prefix + "URL", variable("URL") or GITHUB_URL).rstrip("/"),
                    api_url=_provider_url(
                        prefix + "API_URL", variable("API_URL") or GITHUB_API_URL
                    ).rstrip("/"),
                )
            )
            continue
        discovery = variable("DISCOVERY_URL") or (
            GOOGLE_DISCOVERY_URL if name == "google" else None
        )
        if discovery is None:
            raise ValueError(
                f"{prefix}DISCOVERY_URL is not set: the issuer's"
                " /.well-known/openid-configuration address"
            )
        configs.append(
            ProviderConfig(
                name,
                Kind.OPENID,
                client_id,
                client_secret,
                discovery_url=_provider_url(prefix + "DISCOVERY_URL", discovery),
            )
        )
    return configs
