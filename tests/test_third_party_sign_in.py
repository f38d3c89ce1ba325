"""Third-party sign-in, the whole redirect dance against a loopback OpenID provider
(tests/oidc_provider.py): an app process configured for it, driven with httpx one
redirect at a time, as a browser would follow them, then `exchangeSignInCode` as the SPA
calls it."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import asyncpg
import httpx
import pytest
import pytest_asyncio
from pydantic import ValidationError

from domain.errors import DomainError, ErrorCode
from domain.users import external
from domain.users.oidc import GOOGLE_DISCOVERY_URL, Kind, configs_from_settings
from domain.users.tables import users
from domain.users.tokens import TokenSigner
from infra.clock import ManualClock
from infra.database import create_engine
from infra.settings import Settings
from tests.business import ADD_STAFF, CREATE_ORG, PASSWORD, payload, sign_up
from tests.conftest import GraphQLClient, free_port
from tests.oidc_provider import (
    CLIENT_ID,
    CLIENT_SECRET,
    GITHUB_CLIENT_ID,
    GITHUB_CLIENT_SECRET,
    OpenIDStandIn,
    Person,
    s256,
)
from tests.processes import AppProcess, own_database, running_apps
from web.auth import allowed_redirect

SPA = "https://app.example.com/signed-in?from=menu"
ORIGINS = "https://app.example.com,http://localhost:5173"

EXCHANGE = """
mutation($code: String!, $verifier: String) {
  exchangeSignInCode(code: $code, codeVerifier: $verifier) {
    accessToken refreshToken
    user { id email name emailVerified }
    errors { code field message }
  }
}"""
VIEWER = "{ viewer { id email name emailVerified } }"
SIGN_IN = """
mutation($input: SignInInput!) { signIn(input: $input) { accessToken errors { code } } }"""
REFRESH = """
mutation($t: String!) { refreshSession(refreshToken: $t) { accessToken errors { code } } }"""


@dataclass
class World:
    provider: OpenIDStandIn
    app: AppProcess
    gql: GraphQLClient
    browser: httpx.AsyncClient  # follows no redirect by itself
    database_url: str


def app_settings(provider: OpenIDStandIn) -> dict[str, str]:
    return {
        "OIDC_PROVIDERS": "loop,github,down",
        "OIDC_LOOP_DISCOVERY_URL": provider.discovery_url,
        "OIDC_LOOP_CLIENT_ID": CLIENT_ID,
        "OIDC_LOOP_CLIENT_SECRET": CLIENT_SECRET,
        "OIDC_GITHUB_CLIENT_ID": GITHUB_CLIENT_ID,
        "OIDC_GITHUB_CLIENT_SECRET": GITHUB_CLIENT_SECRET,
        "OIDC_GITHUB_URL": provider.base_url,
        "OIDC_GITHUB_API_URL": provider.base_url,
        # Nobody listens there: an issuer that is down.
        "OIDC_DOWN_DISCOVERY_URL": f"http://127.0.0.1:{free_port()}/.well-known/openid-configuration",
        "OIDC_DOWN_CLIENT_ID": "x",
        "OIDC_DOWN_CLIENT_SECRET": "y",
        "OIDC_TIMEOUT_SECONDS": "2",
        "AUTH_REDIRECT_ORIGINS": ORIGINS,
    }


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def world() -> AsyncIterator[World]:
    async with (
        OpenIDStandIn.running() as provider,
        # Of its own: this process's outbox relay must not drain the session database's
        # events before the in-process server hears them.
        own_database() as database_url,
        running_apps(
            database_url, count=1, redis_url=None, settings=app_settings(provider)
        ) as apps,
        apps.clients() as [gql],
        httpx.AsyncClient(timeout=30, follow_redirects=False) as browser,
    ):
        yield World(provider, apps.processes[0], gql, browser, database_url)


def person(**given: Any) -> Person:
    unique = uuid.uuid4().hex[:10]
    values: dict[str, Any] = {
        "subject": f"subject-{unique}",
        "email": f"ext-{unique}@example.com",
        "github_id": int(unique, 16) % 10**9,
    }
    values.update(given)
    return Person(**values)


def query_of(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


async def start(world: World, provider: str = "loop", **params: str) -> httpx.Response:
    """GET /auth/{provider}/login, as the SPA's sign-in button sends the browser."""
    query = {"redirect_uri": SPA, **params}
    return await world.browser.get(f"{world.app.base_url}/auth/{provider}/login?{urlencode(query)}")


async def to_callback(world: World, provider: str = "loop", **params: str) -> str:
    """Login, then the provider's authorize page: the callback URL it sends the browser to."""
    login = await start(world, provider, **params)
    assert login.status_code == 302, login.text
    authorize = await world.browser.get(login.headers["location"])
    assert authorize.status_code == 302, authorize.text
    callback = authorize.headers["location"]
    assert callback.startswith(f"{world.app.base_url}/auth/{provider}/callback?")
    return callback


async def back_at_spa(world: World, callback: str) -> dict[str, str]:
    """The callback: where it sends the browser (the SPA's page), its query."""
    answer = await world.browser.get(callback)
    assert answer.status_code == 302, answer.text
    location = answer.headers["location"]
    assert location.startswith("https://app.example.com/signed-in?"), location
    assert answer.headers["cache-control"] == "no-store"
    found = query_of(location)
    assert found.pop("from") == "menu"  # the page's own query stays
    return found


async def dance(world: World, provider: str = "loop", **params: str) -> dict[str, str]:
    return await back_at_spa(world, await to_callback(world, provider, **params))


async def exchange(world: World, code: str, verifier: str | None = None) -> dict[str, Any]:
    data = await world.gql.data(EXCHANGE, {"code": code, "verifier": verifier})
    payload: dict[str, Any] = data["exchangeSignInCode"]
    return payload


async def signed_in(world: World, provider: str = "loop") -> dict[str, Any]:
    """A whole sign-in: the session's payload, asserting it worked."""
    landed = await dance(world, provider)
    assert set(landed) == {"code"}, landed
    payload = await exchange(world, landed["code"])
    assert payload["errors"] == [], payload
    return payload


async def identities(world: World, subject: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(world.database_url)
    try:
        rows: list[asyncpg.Record] = await conn.fetch(
            "SELECT * FROM external_identities WHERE subject = $1", subject
        )
        return rows
    finally:
        await conn.close()


# ---- the happy paths -----------------------------------------------------------------------


async def test_a_new_person_signs_in_and_gets_an_account(world: World) -> None:
    world.provider.person = ada = person(name="Ada Lovelace")
    login = await start(world)
    assert login.status_code == 302
    asked = query_of(login.headers["location"])
    assert login.headers["location"].startswith(f"{world.provider.base_url}/authorize?")
    assert asked["code_challenge_method"] == "S256"
    assert len(asked["code_challenge"]) == 43
    assert asked["state"]
    assert asked["nonce"]
    assert asked["redirect_uri"] == f"{world.app.base_url}/auth/loop/callback"
    assert "set-cookie" not in login.headers  # the state is ours, server-side
    authorize = await world.browser.get(login.headers["location"])
    landed = await back_at_spa(world, authorize.headers["location"])
    assert set(landed) == {"code"}  # no token in any URL
    payload = await exchange(world, landed["code"])
    assert payload["errors"] == []
    assert payload["user"]["email"] == ada.email
    assert payload["user"]["emailVerified"] is True
    assert payload["user"]["name"] == "Ada Lovelace"
    viewer = await world.gql.data(VIEWER, token=payload["accessToken"])
    assert viewer["viewer"]["id"] == payload["user"]["id"]
    refreshed = await world.gql.data(REFRESH, {"t": payload["refreshToken"]})
    assert refreshed["refreshSession"]["errors"] == []


async def test_the_same_subject_comes_back_to_the_same_account(world: World) -> None:
    world.provider.person = first = person()
    before = await signed_in(world)
    # The provider's e-mail changed meanwhile: the subject is what counts.
    world.provider.person = person(subject=first.subject, email="renamed@example.org")
    after = await signed_in(world)
    assert after["user"]["id"] == before["user"]["id"]
    assert len(await identities(world, first.subject)) == 1


async def test_github_signs_in_with_its_verified_primary_email(world: World) -> None:
    world.provider.person = octo = person(name=None)
    payload = await signed_in(world, "github")
    assert payload["user"]["email"] == octo.email  # the primary, not the other verified one
    assert payload["user"]["emailVerified"] is True
    assert payload["user"]["name"] == f"user{octo.github_id}"  # no name: the login
    [row] = await identities(world, str(octo.github_id))
    assert row["provider"] == "github"
    again = await signed_in(world, "github")
    assert again["user"]["id"] == payload["user"]["id"]


# ---- refusals --------------------------------------------------------------------------------


async def test_a_wrong_or_used_state_is_refused(world: World) -> None:
    world.provider.person = person()
    callback = await to_callback(world)
    parts = urlsplit(callback)
    params = query_of(callback)
    forged = f"{parts.scheme}://{parts.netloc}{parts.path}?" + urlencode(
        {**params, "state": params["state"][:-2] + "xx"}
    )
    refused = await world.browser.get(forged)
    assert refused.status_code == 400
    assert "location" not in refused.headers
    missing = await world.browser.get(f"{parts.scheme}://{parts.netloc}{parts.path}?code=x")
    assert missing.status_code == 400
    assert set(await back_at_spa(world, callback)) == {"code"}  # the real one works, once
    replayed = await world.browser.get(callback)
    assert replayed.status_code == 400


async def test_a_replayed_authorization_code_is_refused_by_the_provider(world: World) -> None:
    world.provider.person = person()
    first = await to_callback(world)
    assert set(await back_at_spa(world, first)) == {"code"}
    # A fresh sign-in (its own state), finished with the first one's authorization code.
    second = await to_callback(world)
    spliced = (
        second.split("?")[0]
        + "?"
        + urlencode({"code": query_of(first)["code"], "state": query_of(second)["state"]})
    )
    replays = world.provider.replays
    assert await back_at_spa(world, spliced) == {"error": "provider_error"}
    assert world.provider.replays == replays + 1


async def test_our_one_time_code_works_once(world: World) -> None:
    world.provider.person = person()
    landed = await dance(world)
    assert (await exchange(world, landed["code"]))["errors"] == []
    again = await exchange(world, landed["code"])
    assert again["accessToken"] is None
    assert again["user"] is None
    assert [(e["code"], e["field"]) for e in again["errors"]] == [("CODE_INVALID", "code")]
    unknown = await exchange(world, "not-a-code")
    assert [e["code"] for e in unknown["errors"]] == ["CODE_INVALID"]


async def test_an_id_token_with_another_nonce_is_refused(world: World) -> None:
    world.provider.person = mallory = person()
    world.provider.nonce = "a nonce from another sign-in"
    try:
        assert await dance(world) == {"error": "provider_error"}
    finally:
        world.provider.nonce = None
    assert await identities(world, mallory.subject) == []


async def test_the_person_saying_no_is_access_denied(world: World) -> None:
    world.provider.deny = True
    try:
        assert await dance(world) == {"error": "access_denied"}
    finally:
        world.provider.deny = False


async def test_a_state_older_than_ten_minutes_is_expired(world: World) -> None:
    world.provider.person = person()
    callback = await to_callback(world)
    conn = await asyncpg.connect(world.database_url)
    try:  # the 10 minutes pass
        await conn.execute("UPDATE sign_in_states SET expires_at = now() - interval '1 second'")
    finally:
        await conn.close()
    assert await back_at_spa(world, callback) == {"error": "sign_in_expired"}


# ---- e-mail: who may take over which account -------------------------------------------------


async def test_an_unverified_email_never_takes_over_an_account(world: World) -> None:
    owner = await sign_up(world.gql)
    world.provider.person = stranger = person(email=owner.email.upper(), email_verified=False)
    assert await dance(world) == {"error": "email_not_verified"}
    assert await identities(world, stranger.subject) == []
    still = await world.gql.data(SIGN_IN, {"input": {"email": owner.email, "password": PASSWORD}})
    assert still["signIn"]["errors"] == []


async def test_an_unverified_email_of_nobody_makes_an_account_without_email(
    world: World,
) -> None:
    world.provider.person = newcomer = person(email_verified=False, name="New Comer")
    payload = await signed_in(world)
    assert payload["user"]["email"] is None
    assert payload["user"]["emailVerified"] is False
    assert payload["user"]["name"] == "New Comer"
    [row] = await identities(world, newcomer.subject)
    assert (row["email"], row["email_verified"]) == (newcomer.email, False)


async def test_a_verified_email_links_to_the_account_and_ends_unproven_credentials(
    world: World,
) -> None:
    owner = await sign_up(world.gql)  # its e-mail never verified
    world.provider.person = person(email=owner.email)
    payload = await signed_in(world)
    assert payload["user"]["id"] == owner.user_id
    assert payload["user"]["emailVerified"] is True
    # Whoever set the password never proved the address: it and its sessions end.
    old = await world.gql.data(SIGN_IN, {"input": {"email": owner.email, "password": PASSWORD}})
    assert [e["code"] for e in old["signIn"]["errors"]] == ["INVALID_CREDENTIALS"]
    refresh = await world.gql.data(REFRESH, {"t": owner.refresh_token})
    assert [e["code"] for e in refresh["refreshSession"]["errors"]] == ["TOKEN_INVALID"]


async def test_a_new_account_with_a_verified_email_is_the_staff_member_it_names(
    world: World,
) -> None:
    owner = await sign_up(world.gql)
    org = await payload(
        world.gql,
        CREATE_ORG,
        {
            "name": "Clinic",
            "slug": f"c-{uuid.uuid4().hex[:10]}",
            "timeZone": "UTC",
            "currency": "EUR",
        },
        owner.token,
        "createOrganization",
    )
    world.provider.person = staff = person()
    await payload(
        world.gql,
        ADD_STAFF,
        {"organizationId": org["organization"]["id"], "name": "Dr. Ext", "email": staff.email},
        owner.token,
        "addStaff",
    )
    session = await signed_in(world)
    viewer = await world.gql.data(
        "{ viewer { memberships { role organization { id } } } }", token=session["accessToken"]
    )
    assert viewer["viewer"]["memberships"] == [
        {"role": "STAFF", "organization": {"id": org["organization"]["id"]}}
    ]


# ---- the SPA's own PKCE ----------------------------------------------------------------------


async def test_a_code_challenge_binds_the_code_to_the_spa_that_asked(world: World) -> None:
    verifier = "v" * 20 + uuid.uuid4().hex  # 52 characters
    world.provider.person = person()
    landed = await dance(world, code_challenge=s256(verifier), code_challenge_method="S256")
    wrong = await exchange(world, landed["code"], "w" * 52)
    assert [(e["code"], e["field"]) for e in wrong["errors"]] == [("CODE_INVALID", "codeVerifier")]
    # The code is spent by the failed try: the right verifier comes too late.
    late = await exchange(world, landed["code"], verifier)
    assert [e["code"] for e in late["errors"]] == ["CODE_INVALID"]
    landed = await dance(world, code_challenge=s256(verifier))
    assert (await exchange(world, landed["code"], verifier))["errors"] == []
    bad = await start(world, code_challenge="too-short")
    assert bad.status_code == 400


# ---- redirects ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "redirect_uri",
    [
        "",
        "https://evil.example.com/signed-in",
        "https://app.example.com.evil.test/",
        "https://app.example.com@evil.test/",
        "https://evil.test\\@app.example.com/",
        "//app.example.com/signed-in",
        "/signed-in",
        "javascript:alert(1)//https://app.example.com",
        "http://app.example.com/signed-in",  # another scheme is another origin
        "https://app.example.com:8443/",
        "https://app.example.com/ page",
    ],
)
async def test_a_redirect_uri_outside_the_allowed_origins_is_400(
    world: World, redirect_uri: str
) -> None:
    answer = await start(world, redirect_uri=redirect_uri)
    assert answer.status_code == 400
    assert "location" not in answer.headers


async def test_allowed_redirects() -> None:
    origins = ("https://app.example.com", "http://localhost:5173")
    assert allowed_redirect("https://app.example.com/x?y=1#z", origins)
    assert allowed_redirect("https://APP.example.com:443/x", origins)
    assert allowed_redirect("http://localhost:5173/", origins)
    assert not allowed_redirect("http://localhost:5174/", origins)
    assert not allowed_redirect("https://app.example.com/" + "x" * 3000, origins)


async def test_an_unknown_provider_is_404(world: World) -> None:
    assert (await start(world, "nobody")).status_code == 404
    callback = await world.browser.get(f"{world.app.base_url}/auth/nobody/callback?state=x")
    assert callback.status_code == 404


# ---- outages ------------------------------------------------------------------------------------


async def test_an_unreachable_provider_ends_in_an_error_redirect(world: World) -> None:
    answer = await start(world, "down")
    assert answer.status_code == 302
    assert answer.headers["location"].startswith("https://app.example.com/signed-in?")
    assert query_of(answer.headers["location"]) == {"from": "menu", "error": "provider_unavailable"}


async def test_a_provider_down_at_the_callback_ends_in_an_error_redirect(world: World) -> None:
    world.provider.person = person()
    callback = await to_callback(world)
    world.provider.down = True
    try:
        assert await back_at_spa(world, callback) == {"error": "provider_unavailable"}
    finally:
        world.provider.down = False
    assert "Traceback" not in world.app.log()
    assert set(await dance(world)) == {"code"}  # back up: sign-in works again


# ---- the one-time code's 60 seconds, on a clock that tests move -----------------------------


async def test_a_code_lasts_sixty_seconds(world: World) -> None:
    engine = create_engine(world.database_url, pool_size=1)
    signer = TokenSigner("a test secret that is long enough", "booking-api", "booking-spa", 900)
    clock = ManualClock()
    try:
        async with engine.begin() as conn:
            user_id = uuid.uuid4()
            await conn.execute(users.insert().values(id=user_id, name="Timed"))
            early = await external.issue_code(conn, user_id, None, clock.now())
            late = await external.issue_code(conn, user_id, None, clock.now())
        clock.advance(59)
        async with engine.begin() as conn:
            session = await external.exchange_code(conn, signer, early, None, clock.now())
        assert not isinstance(session, DomainError)
        assert session.user.id == user_id
        clock.advance(2)
        async with engine.begin() as conn:
            expired = await external.exchange_code(conn, signer, late, None, clock.now())
            assert isinstance(expired, DomainError)
            assert expired.code is ErrorCode.CODE_EXPIRED
            again = await external.exchange_code(conn, signer, late, None, clock.now())
            assert isinstance(again, DomainError)
            assert again.code is ErrorCode.CODE_INVALID
    finally:
        await engine.dispose()


# ---- configuration -------------------------------------------------------------------------------


def _environment(monkeypatch: pytest.MonkeyPatch, **variables: str) -> None:
    for name in [*Settings.variables(), *(v for v in os.environ if v.startswith("OIDC_"))]:
        monkeypatch.delenv(name, raising=False)
    for name, value in variables.items():
        monkeypatch.setenv(name, value)


def test_providers_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    _environment(
        monkeypatch,
        OIDC_PROVIDERS="Google,github,acme",
        OIDC_GOOGLE_CLIENT_ID="g-id",
        OIDC_GOOGLE_CLIENT_SECRET="g-secret",
        OIDC_GITHUB_CLIENT_ID="h-id",
        OIDC_GITHUB_CLIENT_SECRET="h-secret",
        OIDC_ACME_CLIENT_ID="a-id",
        OIDC_ACME_CLIENT_SECRET="a-secret",
        OIDC_ACME_DISCOVERY_URL="https://id.acme.test/.well-known/openid-configuration",
        AUTH_REDIRECT_ORIGINS="https://App.example.com:443/,http://localhost:5173",
    )
    settings = Settings.from_env()
    assert settings.auth_redirect_origins == ("https://app.example.com", "http://localhost:5173")
    google, github, acme = configs_from_settings(settings)
    assert (google.kind, google.discovery_url) == (Kind.OPENID, GOOGLE_DISCOVERY_URL)
    assert (github.kind, github.url, github.api_url) == (
        Kind.GITHUB,
        "https://github.com",
        "https://api.github.com",
    )
    assert acme.discovery_url == "https://id.acme.test/.well-known/openid-configuration"
    assert "a-secret" not in repr(acme)
    assert "a-secret" not in repr(settings)


@pytest.mark.parametrize(
    ("variables", "says"),
    [
        ({"OIDC_PROVIDERS": "acme"}, "AUTH_REDIRECT_ORIGINS is not set"),
        ({"OIDC_PROVIDERS": "google", "OIDC_GOOGLE_CLIENT_ID": "x"}, "OIDC_GOOGLE_CLIENT_SECRET"),
        (
            {"OIDC_PROVIDERS": "acme", "OIDC_ACME_CLIENT_ID": "x", "OIDC_ACME_CLIENT_SECRET": "y"},
            "OIDC_ACME_DISCOVERY_URL is not set",
        ),
        (
            {
                "OIDC_PROVIDERS": "acme",
                "OIDC_ACME_CLIENT_ID": "x",
                "OIDC_ACME_CLIENT_SECRET": "y",
                "OIDC_ACME_DISCOVERY_URL": "http://id.acme.test/.well-known/openid-configuration",
            },
            "OIDC_ACME_DISCOVERY_URL: use an https:// address",
        ),
    ],
)
def test_a_provider_missing_a_variable_stops_start_up(
    monkeypatch: pytest.MonkeyPatch, variables: dict[str, str], says: str
) -> None:
    origins = {} if "is not set" in says and "AUTH" in says else {"AUTH_REDIRECT_ORIGINS": ORIGINS}
    _environment(monkeypatch, **variables, **origins)
    with pytest.raises(ValueError, match=says):
        configs_from_settings(Settings.from_env())


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("OIDC_PROVIDERS", "google,google"),
        ("OIDC_PROVIDERS", "my-idp"),
        ("AUTH_REDIRECT_ORIGINS", "https://app.example.com/path"),
        ("AUTH_REDIRECT_ORIGINS", "app.example.com"),
        ("AUTH_CALLBACK_BASE_URL", "ftp://api.example.com"),
    ],
)
def test_malformed_sign_in_settings_are_refused_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    _environment(monkeypatch, **{variable: value})
    with pytest.raises(ValidationError, match=variable):
        Settings.from_env()


async def test_too_many_sign_ins_from_one_address_go_back_to_the_spa_rate_limited(
    world: World,
) -> None:
    settings = {
        **app_settings(world.provider),
        "RATE_LIMITS": '{"third_party_login.ip": "3/minute"}',
    }
    async with running_apps(world.database_url, count=1, redis_url=None, settings=settings) as apps:
        login = f"{apps.processes[0].base_url}/auth/loop/login?{urlencode({'redirect_uri': SPA})}"
        for _ in range(3):
            begun = await world.browser.get(login)
            assert begun.status_code == 302
            assert begun.headers["location"].startswith(world.provider.base_url)
        refused = await world.browser.get(login)
    assert refused.status_code == 302
    back = refused.headers["location"]
    assert back.startswith(SPA)
    answer = query_of(back)
    assert answer["error"] == "rate_limited"
    assert 1 <= int(answer["retry_after"]) <= 60
