"""The providers of oidc.py on authlib's Starlette OAuth client (its httpx-based
AsyncOAuth2Client underneath): OpenID Connect issuers and GitHub.

Only authlib's protocol half is used: the authorization URL (PKCE S256, state, nonce),
the code exchange, discovery, JWKS and the ID token's checks. Its `authorize_redirect` and
`authorize_access_token` keep the state in a cookie session (`request.session`); ours is
kept in PostgreSQL instead (sign_in_states.py), so there is no session cookie and any
process can take the callback.

Every provider call is bounded (`within`, and httpx's own timeout) and goes through the
provider's circuit breaker; fetching the discovery document is retried once (a GET). The
code exchange is never retried: an authorization code works once.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import authlib.deprecate  # type: ignore[import-untyped]
import httpx
from joserfc.errors import JoseError

from domain.users.oidc import (
    AuthorizationRequest,
    IdentityProvider,
    Kind,
    ProviderConfig,
    ProviderIdentity,
    ProviderRefused,
    ProviderUnavailable,
    configs_from_settings,
)
from infra.resilience import Breaker, BreakerOpen, retrying, within
from infra.settings import Settings

# authlib 1.9.10 warns on import that its httpx fallback is deprecated (it prefers the
# httpx2 package, which this project does not use): that warning only, at this import.
with warnings.catch_warnings():
    warnings.filterwarnings(
        "ignore",
        message="The httpx module is deprecated; please use httpx2 instead",
        category=authlib.deprecate.AuthlibDeprecationWarning,
    )
    from authlib.integrations.starlette_client import (  # type: ignore[import-untyped]
        OAuth,
        OAuthError,
        StarletteOAuth2App,
    )

log = logging.getLogger(__name__)

T = TypeVar("T")

OPENID_SCOPE = "openid email profile"
GITHUB_SCOPE = "read:user user:email"
DISCOVERY_SUFFIX = "/.well-known/openid-configuration"
METADATA_SECONDS = 24 * 3600  # discovery and keys are fetched again after a day


class _ServerError(Exception):
    """A 5xx or 429 answer: the provider is in trouble (counts against its circuit)."""


# What says the provider is away, as opposed to refusing us.
_AWAY = (httpx.TransportError, TimeoutError, _ServerError)
# What says its answer is not acceptable: an OAuth error, a bad token, malformed JSON.
_REFUSED = (OAuthError, JoseError, ValueError, KeyError, TypeError, RuntimeError)


class _AuthlibProvider:
    """What OpenID Connect and GitHub share: the authlib client, bounds and the breaker."""

    def __init__(self, config: ProviderConfig, client: StarletteOAuth2App, seconds: float):
        self.name = config.name
        self.config = config
        self.client = client
        self.seconds = seconds
        self.breaker = Breaker(
            f"sign-in provider {config.name}", fail_max=5, reset_timeout=30.0, failures=_AWAY
        )

    async def _call(self, what: str, call: Callable[[], Awaitable[T]], tries: int = 1) -> T:
        try:
            async for attempt in retrying(on=_AWAY, attempts=tries, first_wait=0.2):
                with attempt:
                    async with self.breaker, within(self.seconds):
                        try:
                            return await call()
                        except httpx.HTTPStatusError as error:
                            status = error.response.status_code
                            if status >= 500 or status == 429:
                                raise _ServerError(f"HTTP {status}") from error
                            raise ProviderRefused(f"{self.name} {what}: HTTP {status}") from error
        except (*_AWAY, BreakerOpen) as error:
            raise ProviderUnavailable(f"{self.name} {what}: {_describe(error)}") from error
        except _REFUSED as error:
            raise ProviderRefused(f"{self.name} {what}: {_describe(error)}") from error
        raise AssertionError("unreachable")  # retrying raises or returns

    async def _metadata(self) -> dict[str, Any]:
        metadata: dict[str, Any] = self.client.server_metadata
        if time.time() - metadata.get("_loaded_at", time.time()) > METADATA_SECONDS:
            metadata.pop("_loaded_at", None)  # authlib fetches it again
            metadata.pop("jwks", None)
        loaded: dict[str, Any] = await self._call(
            "discovery", self.client.load_server_metadata, tries=2
        )
        return loaded

    async def begin(self, callback_uri: str) -> AuthorizationRequest:
        await self._metadata()
        made: dict[str, Any] = await self._call(
            "authorization", lambda: self.client.create_authorization_url(callback_uri)
        )
        return AuthorizationRequest(
            url=made["url"],
            state=made["state"],
            code_verifier=made["code_verifier"],
            nonce=made.get("nonce"),
        )

    async def _token(self, code: str, callback_uri: str, code_verifier: str) -> dict[str, Any]:
        token: dict[str, Any] = await self._call(
            "token",
            lambda: self.client.fetch_access_token(
                redirect_uri=callback_uri, code=code, code_verifier=code_verifier
            ),
        )
        return token


class OpenIDProvider(_AuthlibProvider):
    """An OpenID Connect issuer found by discovery: who signed in is the ID token's (RS256
    and the like, checked against the issuer's JWKS, with our nonce), completed from the
    userinfo endpoint when the token carries no e-mail."""

    async def _metadata(self) -> dict[str, Any]:
        metadata = await super()._metadata()
        # OpenID Connect Discovery 1.0, section 4.3: the document names the issuer it was
        # fetched for, or it is not that issuer's (a mix-up, a typo in the address).
        url = self.config.discovery_url or ""
        issuer = metadata.get("issuer")
        if url.endswith(DISCOVERY_SUFFIX) and issuer != url[: -len(DISCOVERY_SUFFIX)]:
            raise ProviderRefused(f"{self.name} discovery: issuer {issuer!r} is not {url!r}'s")
        return metadata

    async def finish(
        self, code: str, callback_uri: str, code_verifier: str, nonce: str | None
    ) -> ProviderIdentity:
        metadata = await self._metadata()
        token = await self._token(code, callback_uri, code_verifier)
        if "id_token" not in token or not nonce:
            raise ProviderRefused(f"{self.name} token: no ID token")
        # authlib checks iss itself only without claims_options, and aud never: both here.
        options = {
            "iss": {"essential": True, "value": metadata["issuer"]},
            "aud": {"essential": True, "value": self.config.client_id},
            "sub": {"essential": True},
        }
        claims: dict[str, Any] = await self._call(
            "ID token",
            lambda: self.client.parse_id_token(token, nonce=nonce, claims_options=options),
        )
        if not claims.get("email") and metadata.get("userinfo_endpoint"):
            info: dict[str, Any] = await self._call(
                "userinfo", lambda: self.client.userinfo(token=token)
            )
            if info.get("sub") == claims["sub"]:  # OpenID Connect Core 5.3.2
                claims = {**info, **claims}
        return ProviderIdentity(
            subject=str(claims["sub"]),
            email=_text(claims.get("email")),
            # Some issuers send the string "true".
            email_verified=claims.get("email_verified") in (True, "true"),
            name=_text(claims.get("name"))
            or " ".join(filter(None, (_text(claims.get(k)) for k in ("given_name", "family_name"))))
            or _text(claims.get("preferred_username")),
        )


class GitHubProvider(_AuthlibProvider):
    """GitHub: OAuth 2.0 (with PKCE), no ID token. Who signed in is GET /user (its numeric
    id is the subject: logins can be renamed); the e-mail is the primary one of GET
    /user/emails, verified when GitHub says so."""

    async def _get(self, path: str, token: dict[str, Any]) -> Any:
        async def get() -> Any:
            response: httpx.Response = await self.client.get(
                path, token=token, headers={"Accept": "application/vnd.github+json"}
            )
            response.raise_for_status()
            return response.json()

        return await self._call(f"GET /{path}", get)

    async def finish(
        self, code: str, callback_uri: str, code_verifier: str, nonce: str | None
    ) -> ProviderIdentity:
        token = await self._token(code, callback_uri, code_verifier)
        user = await self._get("user", token)
        if not isinstance(user, dict) or not user.get("id"):
            raise ProviderRefused(f"{self.name} GET /user: no user id")
        email, verified = _text(user.get("email")), False
        try:
            emails = await self._get("user/emails", token)
        except ProviderRefused as refused:  # the user:email scope was not granted
            log.info("%s: no e-mail addresses (%s)", self.name, refused)
            emails = []
        for entry in emails if isinstance(emails, list) else []:
            if isinstance(entry, dict) and entry.get("primary") and _text(entry.get("email")):
                email, verified = _text(entry["email"]), entry.get("verified") is True
        return ProviderIdentity(
            subject=str(user["id"]),
            email=email,
            email_verified=verified,
            name=_text(user.get("name")) or _text(user.get("login")),
        )


def _text(value: object) -> str | None:
    return value.strip() or None if isinstance(value, str) else None


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


def providers_from_settings(settings: Settings) -> dict[str, IdentityProvider]:
    """The providers OIDC_PROVIDERS names, by name. Nothing is fetched yet: discovery
    happens at the first sign-in with each, and is kept."""
    oauth = OAuth()
    seconds = settings.oidc_timeout_seconds
    providers: dict[str, IdentityProvider] = {}
    for config in configs_from_settings(settings):
        common: dict[str, Any] = {"code_challenge_method": "S256", "timeout": seconds}
        if config.kind is Kind.GITHUB:
            client = oauth.register(
                name=config.name,
                client_id=config.client_id,
                client_secret=config.client_secret,
                authorize_url=f"{config.url}/login/oauth/authorize",
                access_token_url=f"{config.url}/login/oauth/access_token",
                api_base_url=f"{config.api_url}/",
                client_kwargs={
                    **common,
                    "scope": GITHUB_SCOPE,
                    "token_endpoint_auth_method": "client_secret_post",
                },
            )
            providers[config.name] = GitHubProvider(config, client, seconds)
        else:
            client = oauth.register(
                name=config.name,
                client_id=config.client_id,
                client_secret=config.client_secret,
                server_metadata_url=config.discovery_url,
                client_kwargs={**common, "scope": OPENID_SCOPE},
            )
            providers[config.name] = OpenIDProvider(config, client, seconds)
    return providers
