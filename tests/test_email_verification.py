"""E-mail verification through the API and the mail the app writes (MAIL_DIR): sign-up
sends a link, the link verifies once, a newer link replaces it, an old one expires, and
addStaff(email:) links an account only once its address is verified, in either order."""

from __future__ import annotations

import asyncpg

from tests.booking_api import READ, create
from tests.business import (
    ADD_STAFF,
    SET_WEEK,
    VERIFY_EMAIL,
    Business,
    create_business,
    payload,
    sign_up,
    verify_email,
)
from tests.conftest import GraphQLClient
from tests.mailbox import (
    VERIFY_SUBJECT,
    link_in,
    messages_to,
    verification_token,
)
from tests.test_booking import monday_at

VIEWER = "{ viewer { emailVerified memberships { role organization { id } } } }"
REQUEST = "mutation { requestEmailVerification { ok errors { code field message } } }"


async def _verify(gql: GraphQLClient, token: str) -> dict[str, object]:
    data = await gql.data(VERIFY_EMAIL, {"token": token})
    result: dict[str, object] = data["verifyEmail"]
    return result


def _codes(result: dict[str, object]) -> list[tuple[str, str | None]]:
    errors = result["errors"]
    assert isinstance(errors, list)
    return [(e["code"], e["field"]) for e in errors]


async def test_sign_up_sends_a_link_that_verifies_the_address(gql: GraphQLClient) -> None:
    person = await sign_up(gql)
    sent = [m for m in messages_to(person.email) if m["Subject"] == VERIFY_SUBJECT]
    assert len(sent) == 1
    # APP_URL (unset in tests: the default) and the path the SPA routes, token in the
    # fragment.
    assert link_in(sent[0]).startswith("http://localhost:5173/verify-email#token=")
    assert (await gql.data(VIEWER, token=person.token))["viewer"]["emailVerified"] is False
    user = await verify_email(gql, person.email)
    assert user == {"id": person.user_id, "email": person.email, "emailVerified": True}
    assert (await gql.data(VIEWER, token=person.token))["viewer"]["emailVerified"] is True


async def test_a_link_works_once(gql: GraphQLClient) -> None:
    person = await sign_up(gql)
    token = verification_token(person.email)
    assert _codes(await _verify(gql, token)) == []
    again = await _verify(gql, token)
    assert again["user"] is None
    assert _codes(again) == [("TOKEN_INVALID", "token")]
    assert _codes(await _verify(gql, "not-a-token")) == [("TOKEN_INVALID", "token")]


async def test_a_new_link_replaces_the_older_one(gql: GraphQLClient) -> None:
    person = await sign_up(gql)
    first = verification_token(person.email)
    asked = (await gql.data(REQUEST, token=person.token))["requestEmailVerification"]
    assert asked == {"ok": True, "errors": []}
    second = verification_token(person.email)
    assert second != first
    assert _codes(await _verify(gql, first)) == [("TOKEN_INVALID", "token")]
    assert _codes(await _verify(gql, second)) == []
    # Verified: nothing more is sent. Anonymous: no one to send it to.
    count = len(messages_to(person.email))
    asked = (await gql.data(REQUEST, token=person.token))["requestEmailVerification"]
    assert asked == {"ok": True, "errors": []}
    assert len(messages_to(person.email)) == count
    anonymous = await gql.raw(REQUEST)
    assert anonymous["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_an_expired_link_is_refused(gql: GraphQLClient, database_url: str) -> None:
    person = await sign_up(gql)
    token = verification_token(person.email)
    conn = await asyncpg.connect(database_url)
    try:
        # 49 hours later (the link lives 48).
        await conn.execute(
            "UPDATE email_tokens SET created_at = now() - interval '49 hours',"
            " expires_at = now() - interval '1 hour'"
            " WHERE user_id = (SELECT id FROM users WHERE email = $1)",
            person.email,
        )
    finally:
        await conn.close()
    refused = await _verify(gql, token)
    assert _codes(refused) == [("TOKEN_INVALID", "token")]
    errors = refused["errors"]
    assert isinstance(errors, list)
    assert "expired" in errors[0]["message"]
    assert (await gql.data(VIEWER, token=person.token))["viewer"]["emailVerified"] is False


# ---- addStaff(email:) links verified addresses only -----------------------------------------


async def _staff_with_a_booking(gql: GraphQLClient, biz: Business, email: str) -> tuple[str, str]:
    """A staff member named by `email`, working Mondays, with one booking: their id and
    the booking's."""
    added = await payload(
        gql,
        ADD_STAFF,
        {
            "organizationId": biz.org_id,
            "name": "Pat",
            "email": email,
            "serviceIds": [biz.service_id],
        },
        biz.owner.token,
        "addStaff",
    )
    staff_id = added["staff"]["id"]
    monday = [{"weekday": "MONDAY", "start": "09:00", "end": "17:00"}]
    await payload(
        gql, SET_WEEK, {"staffId": staff_id, "hours": monday}, biz.owner.token, "setWeeklySchedule"
    )
    customer = await sign_up(gql)
    made = await create(
        gql, customer.token, serviceId=biz.service_id, start=monday_at(11), staffId=staff_id
    )
    assert made["errors"] == [], made
    return staff_id, made["booking"]["id"]


async def _linked(gql: GraphQLClient, biz: Business, token: str, booking_id: str) -> bool:
    """Whether the account is the staff member: a STAFF membership, and they read the
    booking they give (which nobody else but its customer and the managers may)."""
    memberships = (await gql.data(VIEWER, token=token))["viewer"]["memberships"]
    reads = (await gql.data(READ, {"id": booking_id, "token": None}, token))["booking"]
    if memberships == []:
        assert reads is None
        return False
    assert memberships == [{"role": "STAFF", "organization": {"id": biz.org_id}}]
    assert reads is not None
    assert reads["id"] == booking_id
    return True


async def test_add_staff_before_sign_up_links_once_verified(
    gql: GraphQLClient, unique: str
) -> None:
    biz = await create_business(gql)
    email = f"pat-{unique}@example.com"
    _, booking_id = await _staff_with_a_booking(gql, biz, email)
    pat = await sign_up(gql, email=email)
    assert not await _linked(gql, biz, pat.token, booking_id)
    await verify_email(gql, email)
    assert await _linked(gql, biz, pat.token, booking_id)


async def test_add_staff_after_sign_up_waits_for_verification(
    gql: GraphQLClient, unique: str
) -> None:
    """Anyone may open an account with any address: until its owner verifies it, an
    account does not become the staff member that address names."""
    biz = await create_business(gql)
    email = f"pat-{unique}@example.com"
    pat = await sign_up(gql, email=email)
    _, booking_id = await _staff_with_a_booking(gql, biz, email)
    assert not await _linked(gql, biz, pat.token, booking_id)
    await verify_email(gql, email)
    assert await _linked(gql, biz, pat.token, booking_id)


async def test_add_staff_for_a_verified_account_links_at_once(
    gql: GraphQLClient, unique: str
) -> None:
    biz = await create_business(gql)
    pat = await sign_up(gql, email=f"pat-{unique}@example.com", verified=True)
    _, booking_id = await _staff_with_a_booking(gql, biz, pat.email)
    assert await _linked(gql, biz, pat.token, booking_id)
