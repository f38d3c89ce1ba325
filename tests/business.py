"""Setting up users and businesses over the public API, as an SPA would."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from tests.conftest import GraphQLClient
from tests.mailbox import verification_token

PASSWORD = "a long enough passphrase"

SIGN_UP = """
mutation($input: SignUpInput!) {
  signUp(input: $input) {
    accessToken refreshToken accessTokenExpiresAt
    user { id email name }
    errors { code field message }
  }
}"""

CREATE_ORG = """
mutation($input: CreateOrganizationInput!) {
  createOrganization(input: $input) {
    organization { id slug timeZone currency }
    errors { code field message }
  }
}"""

CREATE_SERVICE = """
mutation($input: CreateServiceInput!) {
  createService(input: $input) {
    service { id name durationMinutes capacity price { amount currency } }
    errors { code field message }
  }
}"""

ADD_STAFF = """
mutation($input: AddStaffInput!) {
  addStaff(input: $input) {
    staff { id name timeZone }
    errors { code field message }
  }
}"""

SET_WEEK = """
mutation($input: SetWeeklyScheduleInput!) {
  setWeeklySchedule(input: $input) {
    staff { id weeklySchedule { weekday start end } }
    errors { code field message }
  }
}"""

WEEKDAYS = ["MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY", "SATURDAY", "SUNDAY"]


@dataclass
class Person:
    token: str
    refresh_token: str
    user_id: str
    email: str


@dataclass
class Business:
    owner: Person
    org_id: str
    slug: str
    service_id: str
    staff_ids: list[str]


VERIFY_EMAIL = """
mutation($token: String!) {
  verifyEmail(token: $token) { user { id email emailVerified } errors { code field message } }
}"""


async def sign_up(
    gql: GraphQLClient,
    email: str | None = None,
    name: str = "Test User",
    *,
    verified: bool = False,
) -> Person:
    """A new account; `verified`: its owner then follows the link of the verification
    mail (addStaff links only verified addresses)."""
    email = email or f"user-{uuid.uuid4().hex[:10]}@example.com"
    data = await gql.data(SIGN_UP, {"input": {"email": email, "password": PASSWORD, "name": name}})
    payload = data["signUp"]
    assert payload["errors"] == [], payload
    person = Person(payload["accessToken"], payload["refreshToken"], payload["user"]["id"], email)
    if verified:
        await verify_email(gql, email)
    return person


async def verify_email(gql: GraphQLClient, email: str) -> dict[str, Any]:
    """Follows the newest verification link sent to `email`: the payload's user."""
    data = await gql.data(VERIFY_EMAIL, {"token": verification_token(email)})
    assert data["verifyEmail"]["errors"] == [], data
    user: dict[str, Any] = data["verifyEmail"]["user"]
    return user


async def payload(
    gql: GraphQLClient, query: str, input: dict[str, Any], token: str, name: str
) -> dict[str, Any]:
    """A mutation's payload, asserting it succeeded."""
    data = await gql.data(query, {"input": input}, token)
    result: dict[str, Any] = data[name]
    assert result["errors"] == [], result
    return result


async def create_business(
    gql: GraphQLClient,
    *,
    staff_count: int = 1,
    time_zone: str = "Europe/Berlin",
    hours: list[tuple[str, str]] | None = None,
    weekdays: list[str] | None = None,
    service: dict[str, Any] | None = None,
) -> Business:
    """An organization with one service, `staff_count` staff members doing it, each
    working `hours` on `weekdays` (default Mon-Fri 09:00-17:00)."""
    owner = await sign_up(gql, name="Owner")
    slug = f"biz-{uuid.uuid4().hex[:10]}"
    org = await payload(
        gql,
        CREATE_ORG,
        {"name": "Test Business", "slug": slug, "timeZone": time_zone, "currency": "EUR"},
        owner.token,
        "createOrganization",
    )
    org_id = org["organization"]["id"]
    svc = await payload(
        gql,
        CREATE_SERVICE,
        {"organizationId": org_id, "name": "Appointment", "durationMinutes": 30, **(service or {})},
        owner.token,
        "createService",
    )
    service_id = svc["service"]["id"]
    staff_ids = []
    for i in range(staff_count):
        added = await payload(
            gql,
            ADD_STAFF,
            {"organizationId": org_id, "name": f"Staff {i:02d}", "serviceIds": [service_id]},
            owner.token,
            "addStaff",
        )
        staff_id = added["staff"]["id"]
        week = [
            {"weekday": day, "start": start, "end": end}
            for day in (weekdays or WEEKDAYS[:5])
            for start, end in (hours or [("09:00", "17:00")])
        ]
        await payload(
            gql, SET_WEEK, {"staffId": staff_id, "hours": week}, owner.token, "setWeeklySchedule"
        )
        staff_ids.append(staff_id)
    return Business(owner, org_id, slug, service_id, staff_ids)
