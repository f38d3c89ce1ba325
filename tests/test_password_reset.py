"""Password reset through the API and the mail the app writes (MAIL_DIR): the same answer
for any address, a link that works once and within the hour, the old password and every
session ended by the new one."""

from __future__ import annotations

from typing import Any

import asyncpg

from tests.business import PASSWORD, sign_up
from tests.conftest import GraphQLClient
from tests.mailbox import RESET_SUBJECT, last_to, link_in, messages_to, reset_token
from tests.test_sessions import SIGN_IN, VIEWER

REQUEST = """
mutation($email: String!) { requestPasswordReset(email: $email) { ok errors { code field } } }"""
RESET = """
mutation($token: String!, $password: String!) {
  resetPassword(token: $token, newPassword: $password) {
    accessToken refreshToken user { email emailVerified } errors { code field message }
  }
}"""
REFRESH = """
mutation($t: String!) { refreshSession(refreshToken: $t) { accessToken errors { code } } }"""
NEW_PASSWORD = "a brand new passphrase"


async def _request(gql: GraphQLClient, email: str) -> dict[str, Any]:
    result: dict[str, Any] = (await gql.data(REQUEST, {"email": email}))["requestPasswordReset"]
    return result


async def _reset(gql: GraphQLClient, token: str, password: str = NEW_PASSWORD) -> dict[str, Any]:
    data = await gql.data(RESET, {"token": token, "password": password})
    result: dict[str, Any] = data["resetPassword"]
    return result


async def _signs_in(gql: GraphQLClient, email: str, password: str) -> bool:
    data = await gql.data(SIGN_IN, {"email": email, "password": password})
    return data["signIn"]["accessToken"] is not None


async def test_the_answer_is_the_same_whether_or_not_the_address_has_an_account(
    gql: GraphQLClient, unique: str
) -> None:
    person = await sign_up(gql)
    nobody = f"nobody-{unique}@example.com"
    known = await gql.raw(REQUEST, {"email": person.email})
    unknown = await gql.raw(REQUEST, {"email": nobody})
    assert known == unknown == {"data": {"requestPasswordReset": {"ok": True, "errors": []}}}
    assert link_in(last_to(person.email, RESET_SUBJECT)).startswith(
        "http://localhost:5173/reset-password#token="
    )
    assert messages_to(nobody) == []
    # Only a malformed address is refused, which says nothing about accounts.
    bad = await _request(gql, "not-an-address")
    assert bad == {"ok": False, "errors": [{"code": "INVALID_INPUT", "field": "email"}]}


async def test_a_reset_works_once_and_ends_every_session(gql: GraphQLClient) -> None:
    person = await sign_up(gql)
    other_device = (await gql.data(SIGN_IN, {"email": person.email, "password": PASSWORD}))[
        "signIn"
    ]
    await _request(gql, person.email.upper())
    token = reset_token(person.email)
    # A password the policy refuses leaves the link usable.
    weak = await _reset(gql, token, "short")
    assert [(e["code"], e["field"]) for e in weak["errors"]] == [("INVALID_INPUT", "newPassword")]
    done = await _reset(gql, token)
    assert done["errors"] == []
    # A fresh session; the link proved the mailbox, so the address is verified.
    assert done["user"] == {"email": person.email, "emailVerified": True}
    assert (await gql.data(VIEWER, token=done["accessToken"]))["viewer"]["email"] == person.email
    assert [e["code"] for e in (await _reset(gql, token, "yet another passphrase"))["errors"]] == [
        "TOKEN_INVALID"
    ]
    assert not await _signs_in(gql, person.email, PASSWORD)
    assert await _signs_in(gql, person.email, NEW_PASSWORD)
    # Every refresh token from before the reset is revoked; the new session's is not.
    for old in (person.refresh_token, other_device["refreshToken"]):
        refused = (await gql.data(REFRESH, {"t": old}))["refreshSession"]
        assert [e["code"] for e in refused["errors"]] == ["TOKEN_INVALID"]
    kept = (await gql.data(REFRESH, {"t": done["refreshToken"]}))["refreshSession"]
    assert kept["errors"] == []


async def test_a_new_request_replaces_the_older_link(gql: GraphQLClient) -> None:
    person = await sign_up(gql)
    await _request(gql, person.email)
    first = reset_token(person.email)
    await _request(gql, person.email)
    second = reset_token(person.email)
    assert first != second
    assert [e["code"] for e in (await _reset(gql, first))["errors"]] == ["TOKEN_INVALID"]
    assert (await _reset(gql, second))["errors"] == []


async def test_an_expired_link_is_refused(gql: GraphQLClient, database_url: str) -> None:
    person = await sign_up(gql)
    await _request(gql, person.email)
    token = reset_token(person.email)
    conn = await asyncpg.connect(database_url)
    try:
        # 61 minutes later (the link lives an hour).
        await conn.execute(
            "UPDATE email_tokens SET created_at = now() - interval '61 minutes',"
            " expires_at = now() - interval '1 minute'"
            " WHERE purpose = 'reset_password'"
            " AND user_id = (SELECT id FROM users WHERE email = $1)",
            person.email,
        )
    finally:
        await conn.close()
    refused = await _reset(gql, token)
    assert refused["accessToken"] is None
    assert [(e["code"], e["field"]) for e in refused["errors"]] == [("TOKEN_INVALID", "token")]
    assert "expired" in refused["errors"][0]["message"]
    assert await _signs_in(gql, person.email, PASSWORD)
