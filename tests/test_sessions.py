"""Sessions and access tokens: signOutEverywhere, signing keys that rotate without signing
anyone out (on every process), the tokens the server refuses, and a reused refresh token
logged as a security event."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import os
import sys
from datetime import timedelta

import asyncpg
import pytest
from joserfc.jwk import OctKey, RSAKey
from sqlalchemy.ext.asyncio import AsyncEngine

from domain.users.signing_keys import KeyRing, rotate
from infra.database import create_engine
from infra.ids import key_of
from infra.settings import ROOT
from tests.access_tokens import claims, kid_of, sign, signing_keys
from tests.business import PASSWORD, sign_up
from tests.conftest import GraphQLClient, Server
from tests.processes import running_apps
from tests.ws_client import TRANSPORT_WS, socket

VIEWER = "{ viewer { email } }"
EVERYWHERE = "mutation { signOutEverywhere { ok errors { code } } }"
SIGN_IN = """
mutation($email: String!, $password: String!) {
  signIn(input: {email: $email, password: $password}) {
    accessToken refreshToken errors { code }
  }
}"""
REFRESH = """
mutation($t: String!) {
  refreshSession(refreshToken: $t) { accessToken refreshToken errors { code } }
}"""


async def _sign_in(gql: GraphQLClient, email: str) -> dict[str, str]:
    data = await gql.data(SIGN_IN, {"email": email, "password": PASSWORD})
    assert data["signIn"]["errors"] == []
    session: dict[str, str] = data["signIn"]
    return session


async def _refresh_codes(gql: GraphQLClient, refresh_token: str) -> list[str]:
    data = await gql.data(REFRESH, {"t": refresh_token})
    return [e["code"] for e in data["refreshSession"]["errors"]]


async def _rotate_by_command(database_url: str) -> str:
    """`python -m commands.rotate_jwt_key`, as an operator runs it: the new key id."""
    env = {k: v for k, v in os.environ.items() if k != "JWT_SECRET"}
    env["DATABASE_URL"] = database_url
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "commands.rotate_jwt_key",
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    first = out.decode().splitlines()[0]
    assert first.startswith("new signing key: "), out
    return first.removeprefix("new signing key: ")


# ---- signOutEverywhere ---------------------------------------------------------------------


async def test_sign_out_everywhere_ends_every_session_of_the_viewer(gql: GraphQLClient) -> None:
    person = await sign_up(gql)
    laptop, phone = await _sign_in(gql, person.email), await _sign_in(gql, person.email)
    refreshed = (await gql.data(REFRESH, {"t": phone["refreshToken"]}))["refreshSession"]
    bystander = await sign_up(gql)
    done = await gql.data(EVERYWHERE, token=laptop["accessToken"])
    assert done["signOutEverywhere"] == {"ok": True, "errors": []}
    for refresh_token in (person.refresh_token, laptop["refreshToken"], refreshed["refreshToken"]):
        assert await _refresh_codes(gql, refresh_token) == ["TOKEN_INVALID"]
    # Nobody else's sessions.
    assert await _refresh_codes(gql, bystander.refresh_token) == []
    # Access tokens handed out before live until they expire (minutes): nothing is
    # looked up per request (docs/identity.md).
    assert (await gql.data(VIEWER, token=laptop["accessToken"]))["viewer"]["email"] == person.email
    # Signing in again works as ever.
    assert (await _sign_in(gql, person.email))["accessToken"]
    anonymous = await gql.raw(EVERYWHERE)
    assert anonymous["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


# ---- signing keys ------------------------------------------------------------------------


async def test_rotation_keeps_old_tokens_valid_and_signs_new_ones_with_the_new_key(
    gql: GraphQLClient, database_url: str
) -> None:
    person = await sign_up(gql)
    old_kid = kid_of(person.token)
    new_kid = await _rotate_by_command(database_url)
    assert new_kid != old_kid
    session = await _sign_in(gql, person.email)
    assert kid_of(session["accessToken"]) == new_kid
    for token in (person.token, session["accessToken"]):
        assert (await gql.data(VIEWER, token=token))["viewer"]["email"] == person.email
    # A refresh (a session from before the rotation) gets the new key too.
    refreshed = (await gql.data(REFRESH, {"t": person.refresh_token}))["refreshSession"]
    assert kid_of(refreshed["accessToken"]) == new_kid
    keys = await signing_keys(database_url)
    assert {old_kid, new_kid} <= set(keys)


async def test_a_rotation_is_honoured_by_every_process(
    gql: GraphQLClient, database_url: str
) -> None:
    """Two more `uvicorn app:app` on the same database, with the database's keys (no
    JWT_SECRET): a key made after they started is used and accepted by both."""
    person = await sign_up(gql)
    async with (
        running_apps(database_url, count=2, redis_url=None, jwt_secret=None) as apps,
        apps.clients() as (first, second),
    ):
        before = await _sign_in(first, person.email)
        assert (await second.data(VIEWER, token=before["accessToken"]))["viewer"]
        new_kid = await _rotate_by_command(database_url)
        after = await _sign_in(second, person.email)
        assert kid_of(after["accessToken"]) == new_kid
        # `first` has not seen this key id: it reads the keys again, and accepts it.
        for client in (first, second, gql):
            for token in (before["accessToken"], after["accessToken"]):
                assert (await client.data(VIEWER, token=token))["viewer"]["email"] == person.email


async def test_a_retired_key_verifies_until_its_tokens_expire(database_url: str) -> None:
    """KeyRing on a database of known keys: the newest signs; a key retired within the
    access token lifetime (plus a minute) verifies; one retired before does not."""
    engine: AsyncEngine = create_engine(database_url, pool_size=1)
    try:
        async with engine.begin() as conn:
            await rotate(conn, timedelta(minutes=15))
        ring = KeyRing(engine, lifetime_seconds=15 * 60)
        async with engine.begin() as conn:
            newest = await ring.signing(conn)
            await conn.exec_driver_sql(
                "INSERT INTO signing_keys (kid, secret, created_at, retired_at) VALUES"
                " ('test-recent', repeat('r', 40), now() - interval '1 day',"
                "  now() - interval '10 minutes'),"
                " ('test-old', repeat('o', 40), now() - interval '1 day',"
                "  now() - interval '17 minutes')"
            )
        assert await ring.verifying(newest.kid) is not None
        assert await ring.verifying("test-recent") is not None
        assert await ring.verifying("test-old") is None
        assert await ring.verifying("test-unknown") is None
    finally:
        async with engine.begin() as conn:
            await conn.exec_driver_sql("DELETE FROM signing_keys WHERE kid LIKE 'test-%'")
        await engine.dispose()


# ---- what the server refuses --------------------------------------------------------------


def _b64(data: dict[str, object] | bytes) -> str:
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _hs256_by_hand(key: OctKey, header: dict[str, object], body: dict[str, object]) -> str:
    """A token joserfc would not make (a header it refuses), rightly signed."""
    signed = f"{_b64(header)}.{_b64(body)}"
    mac = hmac.new(key.raw_value, signed.encode(), hashlib.sha256).digest()
    return f"{signed}.{_b64(mac)}"


async def test_bad_tokens_are_unauthenticated(
    gql: GraphQLClient, server: Server, database_url: str
) -> None:
    person = await sign_up(gql)
    kid = kid_of(person.token)
    key = (await signing_keys(database_url))[kid]
    subject = str(key_of(person.user_id, "User"))
    header = {"alg": "HS256", "kid": kid}
    # The baseline: a token made here like the server makes its own is accepted.
    good = sign(key, header, claims(subject))
    assert (await gql.data(VIEWER, token=good))["viewer"]["email"] == person.email

    other_key = OctKey.import_key(b"someone else's secret, long enough to be a key")
    head, body, signature = person.token.split(".")
    tampered_body = _b64({**claims(subject), "sub": "00000000-0000-0000-0000-000000000000"})
    bad = {
        "unknown kid": sign(other_key, {"alg": "HS256", "kid": "no-such-key"}, claims(subject)),
        "no kid": sign(key, {"alg": "HS256"}, claims(subject)),
        "kid of another type": _hs256_by_hand(key, {"alg": "HS256", "kid": 7}, claims(subject)),
        "forged (right kid, wrong key)": sign(other_key, header, claims(subject)),
        "payload changed": f"{head}.{tampered_body}.{signature}",
        "alg none": f"{_b64({'alg': 'none', 'kid': kid, 'typ': 'JWT'})}.{body}.",
        "HS512 with the right key": sign(key, {"alg": "HS512", "kid": kid}, claims(subject)),
        "RS256": sign(RSAKey.generate_key(2048), {"alg": "RS256", "kid": kid}, claims(subject)),
        "wrong audience": sign(key, header, claims(subject, aud="someone-else")),
        "wrong issuer": sign(key, header, claims(subject, iss="someone-else")),
        "expired": sign(key, header, claims(subject, exp=claims(subject)["iat"] - 1)),
        "no subject": sign(key, header, {k: v for k, v in claims(subject).items() if k != "sub"}),
        "garbage": "garbage",
        "empty segments": "..",
    }
    for name, token in bad.items():
        answer = await gql.raw(VIEWER, token=token)
        assert answer["data"] is None, name
        assert [e["extensions"]["code"] for e in answer["errors"]] == ["UNAUTHENTICATED"], name
    # The WebSocket's connection_init checks tokens the same way (4403: refused).
    for name in ("unknown kid", "forged (right kid, wrong key)", "alg none"):
        async with socket(server.base_url, TRANSPORT_WS) as ws:
            await ws.send(
                {"type": "connection_init", "payload": {"authorization": f"Bearer {bad[name]}"}}
            )
            code, _ = await ws.closed()
            assert code == 4403, name
    async with socket(server.base_url, TRANSPORT_WS) as ws:
        assert (await ws.init(good))["type"] == "connection_ack"


# ---- refresh token reuse ------------------------------------------------------------------


async def _family_of(database_url: str, refresh_token: str) -> str:
    conn = await asyncpg.connect(database_url)
    try:
        family = await conn.fetchval(
            "SELECT family_id FROM refresh_tokens WHERE token_hash = $1",
            hashlib.sha256(refresh_token.encode()).digest(),
        )
    finally:
        await conn.close()
    return str(family)


async def test_a_reused_refresh_token_is_logged_as_a_security_event(
    gql: GraphQLClient, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    person = await sign_up(gql)
    user_id = str(key_of(person.user_id, "User"))
    family = await _family_of(database_url, person.refresh_token)
    assert await _refresh_codes(gql, person.refresh_token) == []
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="booking.security"):
        assert await _refresh_codes(gql, person.refresh_token) == ["TOKEN_INVALID"]
    events = [r for r in caplog.records if "security: refresh token reuse" in r.getMessage()]
    assert len(events) == 1, caplog.text
    assert events[0].levelno == logging.WARNING
    assert user_id in events[0].getMessage()
    assert family in events[0].getMessage()
    assert person.refresh_token not in caplog.text

    # Not a reuse: a token never issued, or one signed out (its family ended).
    other = await sign_up(gql)
    await gql.data(
        "mutation($t: String!) { signOut(refreshToken: $t) { ok } }", {"t": other.refresh_token}
    )
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="booking.security"):
        assert await _refresh_codes(gql, "never-issued") == ["TOKEN_INVALID"]
        assert await _refresh_codes(gql, other.refresh_token) == ["TOKEN_INVALID"]
    assert "refresh token reuse" not in caplog.text
