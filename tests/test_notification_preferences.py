"""Reminder preferences: on by default, changed one at a time by their owner, read by
nobody else; `preferences_of` answers many users at once, defaults included."""

from __future__ import annotations

import uuid
from typing import Any

from domain.notifications.preferences import Preferences, preferences_of
from tests.booking_api import create
from tests.business import Person, create_business, sign_up
from tests.conftest import GraphQLClient, Server
from tests.race_helpers import db_key
from tests.test_booking import monday_at

VIEWER = "{ viewer { id notificationPreferences { emailReminders smsReminders } } }"
UPDATE = """
mutation($input: UpdateNotificationPreferencesInput!) {
  updateNotificationPreferences(input: $input) {
    user { id notificationPreferences { emailReminders smsReminders } }
    errors { code field message }
  }
}"""
CUSTOMER_OF = """
query($id: ID!) { booking(id: $id) { customer { id notificationPreferences { emailReminders } } } }
"""


async def mine(gql: GraphQLClient, person: Person) -> dict[str, Any]:
    data = await gql.data(VIEWER, token=person.token)
    found: dict[str, Any] = data["viewer"]["notificationPreferences"]
    return found


async def update(gql: GraphQLClient, person: Person, **input: bool) -> dict[str, Any]:
    data = await gql.data(UPDATE, {"input": input}, person.token)
    payload: dict[str, Any] = data["updateNotificationPreferences"]
    assert payload["errors"] == [], payload
    found: dict[str, Any] = payload["user"]["notificationPreferences"]
    return found


async def test_every_reminder_is_on_until_turned_off(gql: GraphQLClient) -> None:
    person = await sign_up(gql)
    assert await mine(gql, person) == {"emailReminders": True, "smsReminders": True}


async def test_changing_one_leaves_the_other(gql: GraphQLClient) -> None:
    person = await sign_up(gql)
    assert await update(gql, person, emailReminders=False) == {
        "emailReminders": False,
        "smsReminders": True,
    }
    assert await update(gql, person, smsReminders=False) == {
        "emailReminders": False,
        "smsReminders": False,
    }
    assert await update(gql, person, emailReminders=True) == {
        "emailReminders": True,
        "smsReminders": False,
    }
    assert await update(gql, person) == {"emailReminders": True, "smsReminders": False}
    assert await mine(gql, person) == {"emailReminders": True, "smsReminders": False}
    # Somebody else's stay as they were.
    assert await mine(gql, await sign_up(gql)) == {"emailReminders": True, "smsReminders": True}


async def test_anonymous_may_not_change_them(gql: GraphQLClient) -> None:
    body = await gql.raw(UPDATE, {"input": {"emailReminders": False}})
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_nobody_else_reads_them(gql: GraphQLClient) -> None:
    """The booking's owner of the business may read its customer, not their preferences."""
    biz = await create_business(gql)
    customer = await sign_up(gql)
    made = await create(
        gql,
        customer.token,
        serviceId=biz.service_id,
        start=monday_at(9),
        staffId=biz.staff_ids[0],
    )
    assert made["errors"] == [], made
    booking_id = made["booking"]["id"]

    own = await gql.data(CUSTOMER_OF, {"id": booking_id}, customer.token)
    assert own["booking"]["customer"]["notificationPreferences"] == {"emailReminders": True}
    body = await gql.raw(CUSTOMER_OF, {"id": booking_id}, biz.owner.token)
    assert body["data"]["booking"]["customer"] is None
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert body["errors"][0]["path"] == ["booking", "customer", "notificationPreferences"]


async def test_preferences_of_answers_many_users_with_defaults(
    gql: GraphQLClient, server: Server
) -> None:
    quiet, default = await sign_up(gql), await sign_up(gql)
    await update(gql, quiet, emailReminders=False)
    ids = [db_key(quiet.user_id, "User"), db_key(default.user_id, "User"), uuid.uuid4()]
    async with server.app_state.reader.connect() as conn:
        found = await preferences_of(conn, ids)
    assert found == {
        ids[0]: Preferences(email_reminders=False, sms_reminders=True),
        ids[1]: Preferences(),
        ids[2]: Preferences(),  # no such user: the defaults, as for anyone without a row
    }
    async with server.app_state.reader.connect() as conn:
        assert await preferences_of(conn, []) == {}
