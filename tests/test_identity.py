"""Sign-up, sign-in, sessions and tokens, through the HTTP API."""

from __future__ import annotations

import time

from joserfc import jwt
from joserfc.jwk import OctKey

from infra.ids import key_of
from tests.access_tokens import claims, kid_of, sign, signing_keys
from tests.business import PASSWORD, SIGN_UP, sign_up
from tests.conftest import GraphQLClient, Server

SIGN_IN = """
mutation($input: SignInInput!) {
  signIn(input: $input) { accessToken refreshToken user { email } errors { code field } }
}"""
REFRESH = """
mutation($t: String!) {
  refreshSession(refreshToken: $t) { accessToken refreshToken errors { code field } }
}"""
SIGN_OUT = "mutation($t: String!) { signOut(refreshToken: $t) { ok errors { code } } }"
VIEWER = "{ viewer { id email name phone emailVerified memberships { role } } }"


async def test_sign_up_then_viewer(gql: GraphQLClient) -> None:
    person = await sign_up(gql, name="Ada Lovelace")
    data = await gql.data(VIEWER, token=person.token)
    assert data["viewer"]["email"] == person.email
    assert data["viewer"]["name"] == "Ada Lovelace"
    assert data["viewer"]["emailVerified"] is False
    assert data["viewer"]["memberships"] == []


async def test_anonymous_viewer_is_null(gql: GraphQLClient) -> None:
    assert (await gql.data(VIEWER))["viewer"] is None


async def test_email_is_case_insensitive_and_unique(gql: GraphQLClient, unique: str) -> None:
    await sign_up(gql, email=f"Mixed.{unique}@Example.com")
    data = await gql.data(
        SIGN_UP,
        {"input": {"email": f"mixed.{unique}@example.COM", "password": PASSWORD, "name": "X"}},
    )
    assert data["signUp"]["accessToken"] is None
    assert [e["code"] for e in data["signUp"]["errors"]] == ["EMAIL_TAKEN"]


async def test_weak_passwords_are_invalid_input(gql: GraphQLClient, unique: str) -> None:
    for password in ("short1", "1234567890", "password123", "Qwertyuiop"):
        data = await gql.data(
            SIGN_UP,
            {"input": {"email": f"weak-{unique}@example.com", "password": password, "name": "X"}},
        )
        assert data["signUp"]["errors"][0]["code"] == "INVALID_INPUT", password
        assert data["signUp"]["errors"][0]["field"] == "input.password"
        assert data["signUp"]["user"] is None


async def test_bad_email_and_phone_are_invalid_input(gql: GraphQLClient) -> None:
    data = await gql.data(
        SIGN_UP,
        {"input": {"email": "not-an-email", "password": PASSWORD, "name": "X", "phone": "12"}},
    )
    fields = {e["field"] for e in data["signUp"]["errors"]}
    assert fields == {"input.email", "input.phone"}


async def test_sign_in_right_and_wrong_password(gql: GraphQLClient) -> None:
    person = await sign_up(gql)
    ok = await gql.data(SIGN_IN, {"input": {"email": person.email.upper(), "password": PASSWORD}})
    assert ok["signIn"]["user"]["email"] == person.email
    assert ok["signIn"]["accessToken"]
    for email, password in ((person.email, "wrong password!"), ("nobody@example.com", PASSWORD)):
        bad = await gql.data(SIGN_IN, {"input": {"email": email, "password": password}})
        assert bad["signIn"]["accessToken"] is None
        assert [e["code"] for e in bad["signIn"]["errors"]] == ["INVALID_CREDENTIALS"]


async def test_refresh_rotates_and_reuse_revokes_the_family(gql: GraphQLClient) -> None:
    person = await sign_up(gql)
    first = (await gql.data(REFRESH, {"t": person.refresh_token}))["refreshSession"]
    assert first["errors"] == []
    assert first["refreshToken"] != person.refresh_token
    # The old token was retired: presenting it again is refused ...
    reused = (await gql.data(REFRESH, {"t": person.refresh_token}))["refreshSession"]
    assert [e["code"] for e in reused["errors"]] == ["TOKEN_INVALID"]
    # ... and revokes the whole family, so the newer token dies too.
    newer = (await gql.data(REFRESH, {"t": first["refreshToken"]}))["refreshSession"]
    assert [e["code"] for e in newer["errors"]] == ["TOKEN_INVALID"]


async def test_sign_out_ends_the_session(gql: GraphQLClient) -> None:
    person = await sign_up(gql)
    out = (await gql.data(SIGN_OUT, {"t": person.refresh_token}))["signOut"]
    assert out == {"ok": True, "errors": []}
    again = (await gql.data(REFRESH, {"t": person.refresh_token}))["refreshSession"]
    assert [e["code"] for e in again["errors"]] == ["TOKEN_INVALID"]
    unknown = (await gql.data(SIGN_OUT, {"t": "not-a-token"}))["signOut"]
    assert unknown["ok"] is False


async def test_update_profile(gql: GraphQLClient) -> None:
    person = await sign_up(gql)
    query = """mutation($input: UpdateProfileInput!) {
      updateProfile(input: $input) { user { name phone } errors { code field } } }"""
    ok = await gql.data(
        query, {"input": {"name": "New Name", "phone": "+14155550123"}}, person.token
    )
    assert ok["updateProfile"]["user"] == {"name": "New Name", "phone": "+14155550123"}
    bad = await gql.data(query, {"input": {"phone": "555"}}, person.token)
    assert bad["updateProfile"]["errors"] == [{"code": "INVALID_INPUT", "field": "input.phone"}]
    anonymous = await gql.raw(query, {"input": {"name": "X"}})
    assert anonymous["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


def _token(secret: str, **claims: object) -> str:
    now = int(time.time())
    base: dict[str, object] = {
        "iss": "booking-api",
        "aud": "booking-spa",
        "sub": "00000000-0000-0000-0000-000000000000",
        "iat": now,
        "exp": now + 600,
        "jti": "x",
    }
    base.update(claims)
    return jwt.encode({"alg": "HS256"}, base, OctKey.import_key(secret.encode()))


async def test_forged_and_expired_tokens_are_unauthenticated(
    gql: GraphQLClient, server: Server
) -> None:
    person = await sign_up(gql)
    forged = _token("someone else's secret, long enough to be a key", sub=person.user_id)
    tampered = person.token[:-4] + ("AAAA" if not person.token.endswith("AAAA") else "BBBB")
    payload = person.token.split(".")[1]
    none_alg = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0." + payload + "."
    for token in (forged, tampered, none_alg, "garbage"):
        body = await gql.raw(VIEWER, token=token)
        assert body["data"] is None
        assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED", token


async def test_expired_token_is_unauthenticated(gql: GraphQLClient, database_url: str) -> None:
    person = await sign_up(gql)
    kid = kid_of(person.token)
    key = (await signing_keys(database_url))[kid]
    header = {"alg": "HS256", "kid": kid}
    subject = str(key_of(person.user_id, "User"))
    now = int(time.time())
    expired = sign(key, header, claims(subject, iat=now - 3600, exp=now - 60))
    body = await gql.raw(VIEWER, token=expired)
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    # The same token with a fresh expiry is accepted: the expiry alone was refused.
    fresh = sign(key, header, claims(subject))
    assert (await gql.data(VIEWER, token=fresh))["viewer"]["email"] == person.email


async def test_access_token_has_the_pinned_claims(gql: GraphQLClient, database_url: str) -> None:
    person = await sign_up(gql)
    key = (await signing_keys(database_url))[kid_of(person.token)]
    decoded = jwt.decode(person.token, key, algorithms=["HS256"])
    assert decoded.header["alg"] == "HS256"
    assert decoded.header["kid"] == kid_of(person.token)
    assert set(decoded.claims) >= {"iss", "aud", "exp", "iat", "sub", "jti"}
    assert decoded.claims["exp"] - decoded.claims["iat"] == 15 * 60
