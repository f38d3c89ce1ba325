"""Third-party sign-in: GET /auth/{provider}/login and GET /auth/{provider}/callback.

The SPA sends the browser to `/auth/google/login?redirect_uri=<its page>` (optionally
with `code_challenge`, its own S256 PKCE challenge). We send it on to the provider
(authorization code flow with PKCE, state and, for OpenID Connect, a nonce), and the
provider sends it back to the callback, which finishes with the provider server to server
and returns the browser to the SPA's page with `?code=<one-time code>`, or `?error=<why>`.
The SPA trades the code for its tokens with the `exchangeSignInCode` mutation: no token
ever travels in a URL (docs/identity.md, README: Third-party sign-in).

Only pages of AUTH_REDIRECT_ORIGINS are ever redirected to (400 otherwise: no open
redirect). A callback whose state is unknown or used gets a 400 page, since we cannot
know where it came from. A provider that is down or refuses ends in `?error=`, never a 500.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from domain.availability import service as availability
from domain.errors import DomainError, ErrorCode
from domain.users import external, sign_in_states
from domain.users.oidc import IdentityProvider, ProviderRefused, ProviderUnavailable
from domain.users.sign_in_states import STATE_LIFETIME, PendingSignIn
from infra.rate_limits import RateLimited, ip_key
from infra.settings import origin_of
from web.client_ip import client_ip_of

log = logging.getLogger("booking.auth")

MAX_REDIRECT_URI = 2048
# What the SPA may find in `error` (README: Third-party sign-in).
ACCESS_DENIED = "access_denied"  # the person said no at the provider
PROVIDER_ERROR = "provider_error"  # the provider refused, or answered what we cannot accept
PROVIDER_UNAVAILABLE = "provider_unavailable"  # could not be reached in time: try later
SIGN_IN_EXPIRED = "sign_in_expired"  # back after more than 10 minutes: start again
EMAIL_NOT_VERIFIED = "email_not_verified"  # the provider's e-mail, unproven, is an account's
RATE_LIMITED = "rate_limited"  # too many sign-ins begun from this address: `retry_after` s
NO_STORE = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}


def allowed_redirect(uri: str, origins: tuple[str, ...]) -> bool:
    """A page of one of `origins` (http(s), no user:password@, nothing a browser would
    read differently from us: no backslash, space or control character)."""
    if not uri or len(uri) > MAX_REDIRECT_URI:
        return False
    if any(c == "\\" or c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in uri):
        return False
    return origin_of(uri) in origins


def back_to(uri: str, **params: str) -> Response:
    """The browser back to the SPA's page, `params` added to the page's own query."""
    parts = urlsplit(uri)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in params]
    url = urlunsplit(parts._replace(query=urlencode([*query, *params.items()])))
    return RedirectResponse(url, status_code=302, headers=NO_STORE)


def refuse(status: int, message: str) -> Response:
    return PlainTextResponse(message, status_code=status, headers=NO_STORE)


def _provider(request: Request) -> IdentityProvider | None:
    providers: dict[str, IdentityProvider] = request.app.state.identity_providers
    return providers.get(request.path_params["provider"])


def _callback_uri(request: Request, name: str) -> str:
    base = request.app.state.settings.auth_callback_base_url
    if base:
        return f"{base}/auth/{name}/callback"
    return str(request.url_for("auth_callback", provider=name))


async def login(request: Request) -> Response:
    provider = _provider(request)
    if provider is None:
        return refuse(404, "There is no such sign-in provider.")
    redirect_uri = request.query_params.get("redirect_uri", "")
    if not allowed_redirect(redirect_uri, request.app.state.settings.auth_redirect_origins):
        return refuse(400, "redirect_uri must be a page of an origin in AUTH_REDIRECT_ORIGINS.")
    try:
        address = client_ip_of(request.scope, request.app.state.settings.trusted_proxies)
        await request.app.state.rate_limits.hit("third_party_login", ip=ip_key(address))
    except RateLimited as limited:
        seconds = str(limited.retry_after_seconds)
        return back_to(redirect_uri, error=RATE_LIMITED, retry_after=seconds)
    challenge = request.query_params.get("code_challenge")
    method = request.query_params.get("code_challenge_method", "S256")
    if challenge is not None and (method != "S256" or not external.CHALLENGE.fullmatch(challenge)):
        return refuse(400, "code_challenge must be an S256 challenge (43 base64url characters).")
    callback_uri = _callback_uri(request, provider.name)
    try:
        authorization = await provider.begin(callback_uri)
    except ProviderUnavailable as error:
        log.warning("sign-in with %s: provider unavailable (%s)", provider.name, error)
        return back_to(redirect_uri, error=PROVIDER_UNAVAILABLE)
    except ProviderRefused as error:
        log.warning("sign-in with %s: provider refused (%s)", provider.name, error)
        return back_to(redirect_uri, error=PROVIDER_ERROR)
    pending = PendingSignIn(
        provider=provider.name,
        redirect_uri=redirect_uri,
        callback_uri=callback_uri,
        code_verifier=authorization.code_verifier,
        nonce=authorization.nonce,
        client_challenge=challenge,
        expires_at=datetime.now(UTC) + STATE_LIFETIME,
    )
    async with request.app.state.engine.begin() as conn:
        await sign_in_states.remember(conn, authorization.state, pending)
    return RedirectResponse(authorization.url, status_code=302, headers=NO_STORE)


async def callback(request: Request) -> Response:
    provider = _provider(request)
    if provider is None:
        return refuse(404, "There is no such sign-in provider.")
    state = request.query_params.get("state", "")
    pending = None
    if state:
        async with request.app.state.engine.begin() as conn:
            pending = await sign_in_states.take(conn, provider.name, state)
    if pending is None:
        log.info("sign-in with %s: unknown or used state", provider.name)
        return refuse(400, "This sign-in is unknown or finished already; start again from the app.")
    now = datetime.now(UTC)
    if pending.expires_at <= now:
        return back_to(pending.redirect_uri, error=SIGN_IN_EXPIRED)
    refused = request.query_params.get("error")
    code = request.query_params.get("code")
    if refused or not code:
        log.info("sign-in with %s: the provider said %s", provider.name, refused or "no code")
        return back_to(
            pending.redirect_uri,
            error=ACCESS_DENIED if refused == ACCESS_DENIED else PROVIDER_ERROR,
        )
    try:
        identity = await provider.finish(
            code, pending.callback_uri, pending.code_verifier, pending.nonce
        )
    except ProviderUnavailable as error:
        log.warning("sign-in with %s: provider unavailable (%s)", provider.name, error)
        return back_to(pending.redirect_uri, error=PROVIDER_UNAVAILABLE)
    except ProviderRefused as error:
        log.warning("sign-in with %s: refused (%s)", provider.name, error)
        return back_to(pending.redirect_uri, error=PROVIDER_ERROR)
    try:
        async with request.app.state.engine.begin() as conn:
            signed_in = await external.sign_in_external(conn, provider.name, identity)
            if signed_in.verified_email is not None:
                # addStaff(email:) named this proven address: they are that staff member.
                await availability.link_staff_user(
                    conn, signed_in.verified_email, signed_in.user_id
                )
            one_time = await external.issue_code(
                conn, signed_in.user_id, pending.client_challenge, now
            )
    except DomainError as error:
        if error.code is not ErrorCode.EMAIL_TAKEN:
            raise
        log.info("sign-in with %s: %s", provider.name, error.message)
        return back_to(pending.redirect_uri, error=EMAIL_NOT_VERIFIED)
    log.info("sign-in with %s: user %s (%s)", provider.name, signed_in.user_id, signed_in.how.value)
    return back_to(pending.redirect_uri, code=one_time)


AUTH_ROUTES: list[BaseRoute] = [
    Route("/auth/{provider}/login", login, methods=["GET"], name="auth_login"),
    Route("/auth/{provider}/callback", callback, methods=["GET"], name="auth_callback"),
]
