"""A loopback OpenID provider for the third-party sign-in tests, and GitHub's OAuth 2.0
endpoints beside it.

A small Starlette app served on 127.0.0.1 in the test's event loop (stripe_standin's
`serving`): discovery, an authorize endpoint that approves `person` at once (no login
page) and sends the browser back with code and state, a token endpoint that checks the
client's secret, the redirect URI and the PKCE verifier, refuses a code used before, and
issues an RS256 ID token (a key made for each run) with the nonce; JWKS and userinfo.
GitHub's shape: /login/oauth/authorize, /login/oauth/access_token (no ID token),
/user and /user/emails.

    async with OpenIDStandIn.running() as provider:
        provider.person = Person("subject-1", "ada@example.com", email_verified=True)
        ...  # drive the app's /auth/{name}/login and callback with httpx

Faults: `deny` (the person says no), `nonce` (an ID token with this nonce instead),
`down` (every endpoint answers 503).
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode

from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from tests.stripe_standin import serving

CLIENT_ID = "booking-test-client"
CLIENT_SECRET = "booking-test-secret"
GITHUB_CLIENT_ID = "booking-github-client"
GITHUB_CLIENT_SECRET = "booking-github-secret"

JSON = dict[str, Any]


@dataclass
class Person:
    """Who the next authorization approves."""

    subject: str
    email: str | None
    email_verified: bool = True
    name: str | None = "Ada Lovelace"
    github_id: int = 0  # GitHub's numeric user id (subject is ignored there)


@dataclass
class Grant:
    """An authorization code the authorize endpoint handed out."""

    client_id: str
    redirect_uri: str
    challenge: str
    nonce: str | None
    person: Person
    used: bool = False


def s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


class OpenIDStandIn:
    def __init__(self) -> None:
        self.base_url = ""  # set by running()
        self.key = RSAKey.generate_key(2048, parameters={"kid": secrets.token_hex(4)})
        self.person = Person("subject-0", "someone@example.com")
        self.deny = False
        self.nonce: str | None = None  # sign ID tokens with this nonce instead of the asked one
        self.down = False
        self.grants: dict[str, Grant] = {}
        self.tokens: dict[str, Person] = {}
        self.replays = 0  # authorization codes presented again
        self.token_requests = 0
        self.authorize_params: list[dict[str, str]] = []
        self._app = Starlette(
            routes=[
                Route("/.well-known/openid-configuration", self._discovery),
                Route("/authorize", self._authorize),
                Route("/token", self._token, methods=["POST"]),
                Route("/jwks", self._jwks),
                Route("/userinfo", self._userinfo),
                Route("/login/oauth/authorize", self._authorize),
                Route("/login/oauth/access_token", self._token, methods=["POST"]),
                Route("/user", self._github_user),
                Route("/user/emails", self._github_emails),
            ]
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The ASGI app."""
        if self.down and scope["type"] == "http":
            await PlainTextResponse("down for maintenance", status_code=503)(scope, receive, send)
            return
        await self._app(scope, receive, send)

    @classmethod
    @asynccontextmanager
    async def running(cls) -> AsyncIterator[OpenIDStandIn]:
        stand_in = cls()
        async with serving(stand_in) as base_url:
            stand_in.base_url = base_url
            yield stand_in

    @property
    def discovery_url(self) -> str:
        return f"{self.base_url}/.well-known/openid-configuration"

    # ---- OpenID Connect ---------------------------------------------------------------------

    async def _discovery(self, request: Request) -> Response:
        base = self.base_url
        return JSONResponse(
            {
                "issuer": base,
                "authorization_endpoint": f"{base}/authorize",
                "token_endpoint": f"{base}/token",
                "jwks_uri": f"{base}/jwks",
                "userinfo_endpoint": f"{base}/userinfo",
                "response_types_supported": ["code"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "code_challenge_methods_supported": ["S256"],
                "token_endpoint_auth_methods_supported": [
                    "client_secret_basic",
                    "client_secret_post",
                ],
            }
        )

    async def _authorize(self, request: Request) -> Response:
        params = dict(request.query_params)
        self.authorize_params.append(params)
        github = request.url.path.startswith("/login/")
        client = GITHUB_CLIENT_ID if github else CLIENT_ID
        redirect_uri = params.get("redirect_uri", "")
        problems = [
            name
            for name, ok in (
                ("client_id", params.get("client_id") == client),
                ("redirect_uri", redirect_uri.startswith("http")),
                ("response_type", params.get("response_type") == "code"),
                ("code_challenge_method", params.get("code_challenge_method") == "S256"),
                ("code_challenge", len(params.get("code_challenge", "")) == 43),
                ("state", bool(params.get("state"))),
                ("scope", github or "openid" in params.get("scope", "").split()),
                ("nonce", github or bool(params.get("nonce"))),
            )
            if not ok
        ]
        if problems:  # no redirect: the redirect URI itself may be what is wrong
            return PlainTextResponse(f"bad authorization request: {problems}", status_code=400)
        state = params["state"]
        if self.deny:
            answer = {"error": "access_denied", "state": state}
        else:
            code = secrets.token_urlsafe(24)
            self.grants[code] = Grant(
                client, redirect_uri, params["code_challenge"], params.get("nonce"), self.person
            )
            answer = {"code": code, "state": state}
        return RedirectResponse(f"{redirect_uri}?{urlencode(answer)}", status_code=302)

    def _client(self, request: Request, form: dict[str, str]) -> str | None:
        """The authenticated client's id (HTTP Basic or the form), or None."""
        header = request.headers.get("authorization", "")
        if header.lower().startswith("basic "):
            decoded = base64.b64decode(header[6:]).decode()
            client_id, _, secret = decoded.partition(":")
        else:
            client_id, secret = form.get("client_id", ""), form.get("client_secret", "")
        known = {CLIENT_ID: CLIENT_SECRET, GITHUB_CLIENT_ID: GITHUB_CLIENT_SECRET}
        return client_id if known.get(client_id) == secret else None

    async def _token(self, request: Request) -> Response:
        self.token_requests += 1
        github = request.url.path.startswith("/login/")
        form = dict(parse_qsl((await request.body()).decode()))
        # GitHub answers errors with 200; an OpenID provider with 400 (RFC 6749 5.2).
        status = 200 if github else 400
        client = self._client(request, form)
        if client is None:
            return JSONResponse({"error": "invalid_client"}, status_code=401)
        if form.get("grant_type") != "authorization_code":
            return JSONResponse({"error": "unsupported_grant_type"}, status_code=status)
        grant = self.grants.get(form.get("code", ""))
        if grant is None or grant.client_id != client:
            return JSONResponse({"error": "invalid_grant"}, status_code=status)
        if grant.used:
            self.replays += 1
            return JSONResponse(
                {"error": "invalid_grant", "error_description": "code used already"},
                status_code=status,
            )
        grant.used = True
        if form.get("redirect_uri") != grant.redirect_uri:
            return JSONResponse({"error": "invalid_grant"}, status_code=status)
        if s256(form.get("code_verifier", "")) != grant.challenge:
            return JSONResponse(
                {"error": "invalid_grant", "error_description": "PKCE verification failed"},
                status_code=status,
            )
        access_token = secrets.token_urlsafe(24)
        self.tokens[access_token] = grant.person
        answer: JSON = {"access_token": access_token, "token_type": "Bearer"}
        if github:
            answer["scope"] = "read:user,user:email"
        else:
            answer.update(expires_in=3600, id_token=self._id_token(grant))
        return JSONResponse(answer)

    def _id_token(self, grant: Grant) -> str:
        now = int(time.time())
        person = grant.person
        claims: JSON = {
            "iss": self.base_url,
            "sub": person.subject,
            "aud": CLIENT_ID,
            "iat": now,
            "exp": now + 300,
            "nonce": self.nonce or grant.nonce,
        }
        if person.email is not None:
            claims.update(email=person.email, email_verified=person.email_verified)
        if person.name is not None:
            claims["name"] = person.name
        header = {"alg": "RS256", "kid": self.key.kid}
        return jwt.encode(header, claims, self.key, algorithms=["RS256"])

    async def _jwks(self, request: Request) -> Response:
        return JSONResponse(KeySet([self.key]).as_dict(private=False))

    def _bearer(self, request: Request) -> Person | None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        return self.tokens.get(token) if scheme.lower() == "bearer" else None

    async def _userinfo(self, request: Request) -> Response:
        person = self._bearer(request)
        if person is None:
            return JSONResponse({"error": "invalid_token"}, status_code=401)
        return JSONResponse(
            {
                "sub": person.subject,
                "email": person.email,
                "email_verified": person.email_verified,
                "name": person.name,
            }
        )

    # ---- GitHub's REST API ------------------------------------------------------------------

    async def _github_user(self, request: Request) -> Response:
        person = self._bearer(request)
        if person is None:
            return JSONResponse({"message": "Bad credentials"}, status_code=401)
        return JSONResponse(
            {
                "id": person.github_id,
                "login": f"user{person.github_id}",
                "name": person.name,
                "email": None,  # no public e-mail: /user/emails says it
            }
        )

    async def _github_emails(self, request: Request) -> Response:
        person = self._bearer(request)
        if person is None:
            return JSONResponse({"message": "Bad credentials"}, status_code=401)
        other = {
            "email": f"other-{person.github_id}@example.net",
            "primary": False,
            "verified": True,
            "visibility": None,
        }
        primary = {
            "email": person.email,
            "primary": True,
            "verified": person.email_verified,
            "visibility": "private",
        }
        return JSONResponse([other, primary] if person.email else [other])
