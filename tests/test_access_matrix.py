"""The access matrix: every root field, mutation and subscription, and the personal fields
of objects through a path that reaches them, run as each of the eight roles of
schema/access_rules.py against one world, each outcome compared with what the field's rule
says for that role. The expectations come from the rules and the schema; only the samples
(an operation with valid arguments aimed at the world, per field) are written here.

Queries run over HTTP and again over the WebSocket, whose connection authenticates in
`connection_init` by the same rules; subscriptions run over the WebSocket (the first
message tells); mutations over HTTP, each case on a target of its own where it changes
one (a fresh booking to cancel per role), after every read. A failure names the field and
the roles whose outcome differs from the rule.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any

import asyncpg
import httpx
import pytest
import pytest_asyncio
from graphql import (
    FieldNode,
    GraphQLField,
    GraphQLInputObjectType,
    GraphQLObjectType,
    OperationDefinitionNode,
    get_named_type,
    parse,
)
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from domain.users import external
from infra.ids import to_global_id
from schema.access_rules import NODE_TYPES, RULES, Outcome, Role
from schema.root import schema
from tests.booking_api import key
from tests.business import (
    ADD_STAFF,
    CREATE_SERVICE,
    PASSWORD,
    SET_WEEK,
    WEEKDAYS,
    Business,
    Person,
    create_business,
    payload,
    sign_up,
)
from tests.conftest import GraphQLClient, Server
from tests.mailbox import reset_token, verification_token
from tests.race_helpers import db_key
from tests.realtime_helpers import day_window, monday
from tests.test_availability_api import local, next_weekday
from tests.test_booking import monday_at
from tests.test_phone_sign_in import SENT, new_number
from tests.ws_client import Socket, socket

CONCURRENCY = 8

# ---- the world -----------------------------------------------------------------------------


@dataclass
class World:
    """Organization A (its owner, an admin, a staff member with an account who takes its
    three services, a customer's bookings with them, a guest's), organization B's owner,
    another customer, and an account to sign in to."""

    http: GraphQLClient
    engine: AsyncEngine
    people: dict[Role, Person | None]
    biz: Business
    staff_id: str  # the staff member with an account
    free: str
    confirmed: str  # a service whose bookings wait for a yes
    paid: str
    booking: str  # the customer's, with the staff member
    guest_booking: tuple[str, str]  # the guest's: its id and manage token
    paid_booking: str  # the customer's, PENDING_PAYMENT
    guest_paid: tuple[str, str]
    payment_id: str
    time_off_id: str
    time_off_window: dict[str, str]
    account: Person  # signIn's, and the sessions refreshSession and signOut take
    sms: list[str]  # what the console SMS channel logged
    signed_up: dict[Role, str] = field(default_factory=dict)  # signUp's addresses

    def token(self, role: Role) -> str | None:
        person = self.people[role]
        return person.token if person else None

    def user_id(self, role: Role) -> str:
        person = self.people[role]
        assert person is not None, role
        return person.user_id

    def subject(self, role: Role) -> tuple[str, str | None]:
        """The booking a role is judged on: the guest's own (with its token) for the
        guest, the customer's for everyone else."""
        return self.guest_booking if role is Role.GUEST else (self.booking, None)

    def paid_subject(self, role: Role) -> tuple[str, str | None]:
        return self.guest_paid if role is Role.GUEST else (self.paid_booking, None)

    async def fresh(self, role: Role, service_id: str, hour: int) -> tuple[str, str | None]:
        """A new booking with the staff member, the subject's kind for the role: the
        guest's own, or the customer's."""
        guest = role is Role.GUEST
        made = await book(
            self.http,
            None if guest else self.people[Role.CUSTOMER],
            service_id,
            monday_at(hour),
            self.staff_id,
        )
        return made["booking"]["id"], made["manageToken"]

    async def session(self) -> dict[str, Any]:
        """A new session of the account, by a one-time sign-in code."""
        data = await self.http.data(EXCHANGE, {"code": await self.sign_in_code()})
        result: dict[str, Any] = data["exchangeSignInCode"]
        assert result["errors"] == [], result
        return result

    async def sign_in_code(self) -> str:
        """What /auth/{provider}/callback hands the SPA, made as the callback makes it."""
        async with self.engine.begin() as conn:
            return await external.issue_code(
                conn, db_key(self.account.user_id, "User"), None, datetime.now(UTC)
            )


CREATE = """
mutation($input: CreateBookingInput!) {
  createBooking(input: $input) {
    booking { id status payment { id } } manageToken errors { code field message }
  }
}"""

ADD_TIME_OFF = """
mutation($input: AddTimeOffInput!) {
  addTimeOff(input: $input) { timeOff { id } errors { code field message } }
}"""

UPDATE_PROFILE = """
mutation($input: UpdateProfileInput!) {
  updateProfile(input: $input) { user { id } errors { code field message } }
}"""

EXCHANGE = """
mutation($code: String!, $verifier: String) {
  exchangeSignInCode(code: $code, codeVerifier: $verifier) {
    accessToken refreshToken errors { code field message }
  }
}"""


async def book(
    gql: GraphQLClient, person: Person | None, service_id: str, start: str, staff_id: str
) -> dict[str, Any]:
    """A booking that must succeed (a guest's when `person` is None)."""
    input: dict[str, Any] = {
        "serviceId": service_id,
        "start": start,
        "staffId": staff_id,
        "idempotencyKey": key(),
        "notes": "private notes",
    }
    if person is None:
        input["guest"] = {"name": "Grace Guest", "email": f"grace-{key()[:8]}@example.com"}
    data = await gql.data(CREATE, {"input": input}, person.token if person else None)
    result: dict[str, Any] = data["createBooking"]
    assert result["errors"] == [], result
    return result


async def make_admin(database_url: str, biz: Business, person: Person) -> None:
    """`person` becomes ADMIN of the business (no mutation gives that role yet)."""
    conn = await asyncpg.connect(database_url, timeout=10)
    try:
        await conn.execute(
            "INSERT INTO memberships (organization_id, user_id, role) VALUES ($1, $2, 'ADMIN')",
            db_key(biz.org_id, "Organization"),
            db_key(person.user_id, "User"),
        )
    finally:
        await conn.close()


async def build_world(
    gql: GraphQLClient, server: Server, database_url: str, sms: list[str]
) -> World:
    biz = await create_business(gql, service={"capacity": 100})
    other = await create_business(gql)
    admin = await sign_up(gql, name="Ada Admin")
    await make_admin(database_url, biz, admin)
    staff = await sign_up(gql, name="Sam Staff", verified=True)
    owner = biz.owner.token

    async def service(**input: Any) -> str:
        made = await payload(
            gql,
            CREATE_SERVICE,
            {"organizationId": biz.org_id, "durationMinutes": 30, "capacity": 100, **input},
            owner,
            "createService",
        )
        service_id: str = made["service"]["id"]
        return service_id

    confirmed = await service(name="Consultation", requiresConfirmation=True)
    paid = await service(name="Massage", priceAmount=2500)
    linked = await payload(
        gql,
        ADD_STAFF,
        {
            "organizationId": biz.org_id,
            "name": "Sam Staff",
            "email": staff.email,
            "serviceIds": [biz.service_id, confirmed, paid],
        },
        owner,
        "addStaff",
    )
    staff_id = linked["staff"]["id"]
    await payload(gql, SET_WEEK, {"staffId": staff_id, "hours": WEEK}, owner, "setWeeklySchedule")
    saturday = next_weekday(5)
    off = await payload(
        gql,
        ADD_TIME_OFF,
        {
            "organizationId": biz.org_id,
            "staffId": staff_id,
            "start": local(saturday, 10),
            "end": local(saturday, 12),
            "reason": "dentist, private",
        },
        owner,
        "addTimeOff",
    )
    customer, other_customer = await sign_up(gql, name="Carla Customer"), await sign_up(gql)
    changed = await gql.data(UPDATE_PROFILE, {"input": {"phone": new_number()}}, customer.token)
    assert changed["updateProfile"]["errors"] == [], changed
    account = await sign_up(gql, name="Ann Account")

    mine = await book(gql, customer, biz.service_id, monday_at(9), staff_id)
    theirs = await book(gql, None, biz.service_id, monday_at(10), staff_id)
    paid_mine = await book(gql, customer, paid, monday_at(11), staff_id)
    paid_theirs = await book(gql, None, paid, monday_at(11), staff_id)
    assert paid_mine["booking"]["status"] == "PENDING_PAYMENT", paid_mine
    return World(
        http=gql,
        engine=server.app_state.engine,
        people={
            Role.ANONYMOUS: None,
            Role.CUSTOMER: customer,
            Role.OTHER_CUSTOMER: other_customer,
            Role.STAFF: staff,
            Role.ADMIN: admin,
            Role.OWNER: biz.owner,
            Role.OTHER_OWNER: other.owner,
            Role.GUEST: None,
        },
        biz=biz,
        staff_id=staff_id,
        free=biz.service_id,
        confirmed=confirmed,
        paid=paid,
        booking=mine["booking"]["id"],
        guest_booking=(theirs["booking"]["id"], theirs["manageToken"]),
        paid_booking=paid_mine["booking"]["id"],
        guest_paid=(paid_theirs["booking"]["id"], paid_theirs["manageToken"]),
        payment_id=paid_mine["booking"]["payment"]["id"],
        time_off_id=off["timeOff"]["id"],
        time_off_window={"start": local(saturday, 0), "end": local(saturday, 23)},
        account=account,
        sms=sms,
    )


WEEK = [{"weekday": d, "start": "09:00", "end": "17:00"} for d in WEEKDAYS[:5]]

# ---- samples ---------------------------------------------------------------------------------

Prepare = Callable[[World, Role], Awaitable[dict[str, Any]]]


async def nothing(world: World, role: Role) -> dict[str, Any]:
    return {}


@dataclass(frozen=True)
class Sample:
    """One operation that reaches a field, with valid arguments for the world."""

    coordinate: str  # whose rule it checks
    document: str
    prepare: Prepare = nothing  # its variables, for a role (may set up a target)
    path: tuple[str, ...] = ()  # where the field's answer is in `data`; () = the root field
    label: str = ""  # the test id; the coordinate when empty
    node_type: str | None = None  # node(id) of this type: that type's rule
    row: Callable[[World], str] | None = None  # a list: the subject row that tells OK from EMPTY
    null_is: Outcome = Outcome.OK  # what a null answer means

    @property
    def name(self) -> str:
        return self.label or self.coordinate

    @property
    def operation(self) -> OperationDefinitionNode:
        [definition] = parse(self.document).definitions
        assert isinstance(definition, OperationDefinitionNode)
        return definition

    @property
    def kind(self) -> str:
        return self.operation.operation.value.capitalize()  # Query, Mutation, Subscription

    @property
    def root(self) -> str:
        selection = self.operation.selection_set.selections[0]
        assert isinstance(selection, FieldNode)
        return f"{self.kind}.{selection.name.value}"

    @property
    def where(self) -> tuple[str, ...]:
        return self.path or (self.root.partition(".")[2],)


def by_id(value: Callable[[World], str]) -> Prepare:
    async def prepare(world: World, role: Role) -> dict[str, Any]:
        return {"id": value(world)}

    return prepare


async def subject(world: World, role: Role) -> dict[str, Any]:
    booking_id, token = world.subject(role)
    return {"id": booking_id, "token": token}


async def paid_subject(world: World, role: Role) -> dict[str, Any]:
    booking_id, token = world.paid_subject(role)
    return {"id": booking_id, "token": token}


async def organization(world: World, role: Role) -> dict[str, Any]:
    return {"slug": world.biz.slug}


async def window(world: World, role: Role) -> dict[str, Any]:
    return {"id": world.free, **day_window(monday())}


async def staff_time_off(world: World, role: Role) -> dict[str, Any]:
    return {"id": world.staff_id, **world.time_off_window}


NODE = "query($id: ID!) { node(id: $id) { __typename id } }"
BOOKING = "query($id: ID!, $token: String) { booking(id: $id, manageToken: $token) { %s } }"
# Hidden, the subject answers null: the contract's "as if it did not exist".
HIDDEN = Outcome.HIDDEN

QUERIES = [
    *(
        Sample(
            "Query.node",
            NODE,
            prepare,
            label=f"Query.node({type_name})",
            node_type=type_name,
            null_is=HIDDEN,
        )
        for type_name, prepare in (
            ("Organization", by_id(lambda w: w.biz.org_id)),
            ("Service", by_id(lambda w: w.free)),
            ("Staff", by_id(lambda w: w.staff_id)),
            ("TimeOff", by_id(lambda w: w.time_off_id)),
            ("Booking", by_id(lambda w: w.booking)),
            ("User", by_id(lambda w: w.user_id(Role.CUSTOMER))),
            ("Payment", by_id(lambda w: w.payment_id)),
        )
    ),
    Sample("Query.viewer", "{ viewer { id } }", null_is=HIDDEN),
    Sample(
        "Query.organization",
        "query($slug: String!) { organization(slug: $slug) { id } }",
        organization,
        null_is=HIDDEN,
    ),
    Sample(
        "Query.service",
        "query($id: ID!) { service(id: $id) { id } }",
        by_id(lambda w: w.free),
        null_is=HIDDEN,
    ),
    Sample(
        "Query.availability",
        "query($id: ID!, $start: DateTime!, $end: DateTime!) {"
        " availability(serviceId: $id, start: $start, end: $end) { timeZone slots { start } } }",
        window,
    ),
    Sample("Query.booking", BOOKING % "id", subject, null_is=HIDDEN),
    Sample(
        "Query.myBookings",
        "{ myBookings { edges { node { id } } } }",
        row=lambda w: w.booking,
    ),
    # ---- object fields, through a path that reaches them
    Sample(
        "Organization.settings",
        "query($slug: String!) { organization(slug: $slug) { settings { holdMinutes } } }",
        organization,
        path=("organization", "settings"),
    ),
    Sample(
        "Organization.bookings",
        "query($slug: String!) { organization(slug: $slug) {"
        " bookings { edges { node { id } } } } }",
        organization,
        path=("organization", "bookings"),
        row=lambda w: w.booking,
    ),
    Sample(
        "Organization.webhookEndpoints",
        "query($slug: String!) { organization(slug: $slug) { webhookEndpoints { id } } }",
        organization,
        path=("organization", "webhookEndpoints"),
    ),
    Sample(
        "Organization.undeliveredMessages",
        "query($slug: String!) { organization(slug: $slug) { undeliveredMessages { id } } }",
        organization,
        path=("organization", "undeliveredMessages"),
    ),
    Sample(
        "Staff.timeOff",
        "query($id: ID!, $start: DateTime!, $end: DateTime!) { node(id: $id) {"
        " ... on Staff { timeOff(start: $start, end: $end) { id reason } } } }",
        staff_time_off,
        path=("node", "timeOff"),
        row=lambda w: w.time_off_id,
    ),
    *(
        Sample(f"Booking.{name}", BOOKING % selection, subject, path=("booking", name))
        for name, selection in (
            ("guestName", "guestName"),
            ("guestEmail", "guestEmail"),
            ("notes", "notes"),
            ("cancellationReason", "cancellationReason"),
            ("customer", "customer { id }"),
            ("payment", "payment { id }"),
            ("history", "history { actor }"),
        )
    ),
    *(
        Sample(
            f"User.{name}",
            BOOKING % f"customer {{ {selection} }}",
            subject,
            path=("booking", "customer", name),
        )
        for name, selection in (
            ("email", "email"),
            ("phone", "phone"),
            ("name", "name"),
            ("emailVerified", "emailVerified"),
            ("memberships", "memberships { role }"),
            ("notificationPreferences", "notificationPreferences { emailReminders }"),
        )
    ),
    Sample(
        "Payment.clientSecret",
        BOOKING % "payment { clientSecret }",
        paid_subject,
        path=("booking", "payment", "clientSecret"),
        null_is=Outcome.NULL,
    ),
]

SUBSCRIPTIONS = [
    Sample(
        "Subscription.availabilityChanged",
        "subscription($id: ID!, $start: DateTime!, $end: DateTime!) {"
        " availabilityChanged(serviceId: $id, start: $start, end: $end) { timeZone } }",
        window,
    ),
    Sample(
        "Subscription.bookingChanged",
        "subscription($id: ID!, $token: String) {"
        " bookingChanged(bookingId: $id, manageToken: $token) { id status } }",
        subject,
    ),
]


# ---- mutations: their documents, and targets of their own


def mutation(name: str, arguments: str, answer: str, prepare: Prepare = nothing) -> Sample:
    """`mutation(<arguments>) { name(<the same>) { answer errors { code } } }`."""
    declared = ", ".join(f"${a}" for a in arguments.split(", ")) if arguments else ""
    passed = ", ".join(f"{a.split(':')[0]}: ${a.split(':')[0]}" for a in arguments.split(", "))
    head = f"mutation({declared}) " if arguments else "mutation "
    call = f"{name}({passed})" if arguments else name
    return Sample(
        f"Mutation.{name}",
        f"{head}{{ {call} {{ {answer} errors {{ code field message }} }} }}",
        prepare,
    )


def fixed(**variables: Any) -> Prepare:
    async def prepare(world: World, role: Role) -> dict[str, Any]:
        return {k: v(world) if callable(v) else v for k, v in variables.items()}

    return prepare


async def new_account(world: World, role: Role) -> dict[str, Any]:
    email = f"signup-{uuid.uuid4().hex[:10]}@example.com"
    world.signed_up[role] = email
    return {"input": {"email": email, "password": PASSWORD, "name": "New Account"}}


async def sign_in(world: World, role: Role) -> dict[str, Any]:
    return {"input": {"email": world.account.email, "password": PASSWORD}}


async def sign_in_code(world: World, role: Role) -> dict[str, Any]:
    return {"code": await world.sign_in_code()}


async def refresh_token(world: World, role: Role) -> dict[str, Any]:
    return {"refreshToken": (await world.session())["refreshToken"]}


async def phone_code(world: World, role: Role) -> dict[str, Any]:
    number = new_number()
    asked = await world.http.data(REQUEST_CODE, {"phone": number})
    assert asked["requestPhoneCode"]["errors"] == [], asked
    codes = [m.group(2) for m in map(SENT.search, world.sms) if m and m.group(1) == number]
    assert codes, f"no code logged for {number}"
    return {"phone": number, "code": codes[-1]}


async def email_link(world: World, role: Role) -> dict[str, Any]:
    """The verification link of the account this role's signUp made (signUp runs first)."""
    return {"token": verification_token(world.signed_up[role])}


async def reset_link(world: World, role: Role) -> dict[str, Any]:
    email = world.signed_up[role]
    asked = await world.http.data(REQUEST_RESET, {"email": email})
    assert asked["requestPasswordReset"]["errors"] == [], asked
    return {"token": reset_token(email), "newPassword": PASSWORD + " and more"}


async def new_slug(world: World, role: Role) -> dict[str, Any]:
    slug = f"org-{uuid.uuid4().hex[:10]}"
    return {
        "input": {"name": "Another", "slug": slug, "timeZone": "Europe/Berlin", "currency": "EUR"}
    }


# Webhook endpoints of organization A: a public address (accepted without resolving), for
# an event nothing here causes; the deliveries made here are a paused endpoint's, so
# nothing is ever sent.
HOOK = {"url": "https://1.1.1.1/booking-hooks", "events": ["BOOKING_NO_SHOW"]}
CREATE_HOOK = """
mutation($input: CreateWebhookEndpointInput!) {
  createWebhookEndpoint(input: $input) { endpoint { id } errors { code field message } }
}"""


async def new_hook(world: World, paused: bool = False) -> str:
    data = await world.http.data(
        CREATE_HOOK,
        {"input": {"organizationId": world.biz.org_id, **HOOK}},
        world.token(Role.OWNER),
    )
    made = data["createWebhookEndpoint"]
    assert made["errors"] == [], made
    endpoint_id: str = made["endpoint"]["id"]
    if paused:
        async with world.engine.begin() as conn:
            await conn.execute(
                text(
                    "UPDATE webhook_endpoints SET active = false, paused_reason = 'test'"
                    " WHERE id = :id"
                ),
                {"id": db_key(endpoint_id, "WebhookEndpoint")},
            )
    return endpoint_id


async def hook_to_delete(world: World, role: Role) -> dict[str, Any]:
    return {"endpointId": await new_hook(world)}


def shared_hook(make: Callable[[World], Awaitable[dict[str, Any]]]) -> Prepare:
    """One target for every role of the case (an organization has at most 20 endpoints)."""
    made: dict[int, dict[str, Any]] = {}

    async def prepare(world: World, role: Role) -> dict[str, Any]:
        if id(world) not in made:
            made[id(world)] = await make(world)
        return made[id(world)]

    return prepare


async def paused_hook(world: World) -> dict[str, Any]:
    return {"endpointId": await new_hook(world, paused=True)}


async def hook_delivery(world: World) -> dict[str, Any]:
    endpoint = db_key(await new_hook(world, paused=True), "WebhookEndpoint")
    delivery = uuid.uuid4()
    async with world.engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO webhook_deliveries (id, endpoint_id, event, event_id, body, status)"
                " VALUES (:id, :endpoint, 'BOOKING_NO_SHOW', :event, '{}', 'DEAD')"
            ),
            {"id": delivery, "endpoint": endpoint, "event": str(delivery)},
        )
    return {"deliveryId": to_global_id("WebhookDelivery", delivery)}


async def dead_letter(world: World, role: Role) -> dict[str, Any]:
    """An undelivered e-mail about the world's organization (one per case: a retry
    queues it again)."""
    letter = uuid.uuid4()
    org = db_key(world.biz.org_id, "Organization")
    async with world.engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO notification_deliveries"
                " (id, dedupe_key, channel, recipient, message, status, attempts,"
                " organization_id) VALUES (:id, :key, 'email', 'nobody@example.com',"
                " :message, 'DEAD', 12, :org)"
            ),
            {
                "id": letter,
                "key": f"matrix:{letter}",
                "message": b"Subject: x\r\n\r\nx",
                "org": org,
            },
        )
    return {"messageId": to_global_id("UndeliveredMessage", letter)}


def far_sunday() -> str:
    return next_weekday(6, weeks_ahead=6).isoformat()


# The staff member's Monday: 9 the customer's booking, 10 the guest's, 11 paid ones, 12
# those cancelled and moved (to 15), 13 holds, 14 new bookings, 16 those waiting for a yes.
# One service per start: another service's booking would take the staff member.
def fresh(service: Callable[[World], str], **extra: Any) -> Prepare:
    """A booking of its own for the case: the role's kind of subject."""

    async def prepare(world: World, role: Role) -> dict[str, Any]:
        booking_id, token = await world.fresh(role, service(world), 12)
        values = {k: v() if callable(v) else v for k, v in extra.items()}
        return {"input": {"bookingId": booking_id, "manageToken": token, **values}}

    return prepare


def fresh_id(service: Callable[[World], str], hour: int, with_token: bool = False) -> Prepare:
    async def prepare(world: World, role: Role) -> dict[str, Any]:
        booking_id, token = await world.fresh(role, service(world), hour)
        return {"bookingId": booking_id, **({"manageToken": token} if with_token else {})}

    return prepare


REQUEST_CODE = (
    "mutation($phone: String!) { requestPhoneCode(phone: $phone) { sent errors { code } } }"
)
REQUEST_RESET = (
    "mutation($email: String!) { requestPasswordReset(email: $email) { ok errors { code } } }"
)
AUTH = "accessToken"
BOOKED = "booking { id status }"

SIGN_UPS = [mutation("signUp", "input: SignUpInput!", AUTH, new_account)]
MUTATIONS = [
    mutation("signIn", "input: SignInInput!", AUTH, sign_in),
    mutation("exchangeSignInCode", "code: String!", AUTH, sign_in_code),
    mutation("refreshSession", "refreshToken: String!", AUTH, refresh_token),
    mutation("signOut", "refreshToken: String!", "ok", refresh_token),
    mutation("updateProfile", "input: UpdateProfileInput!", "user { id }", fixed(input={})),
    mutation("requestPhoneCode", "phone: String!", "sent", fixed(phone=lambda w: new_number())),
    mutation("signInWithPhone", "phone: String!, code: String!", AUTH, phone_code),
    mutation("signOutEverywhere", "", "ok"),
    mutation("requestEmailVerification", "", "ok"),
    mutation("verifyEmail", "token: String!", "user { id }", email_link),
    mutation(
        "requestPasswordReset", "email: String!", "ok", fixed(email=lambda w: w.account.email)
    ),
    mutation("resetPassword", "token: String!, newPassword: String!", AUTH, reset_link),
    mutation(
        "createOrganization", "input: CreateOrganizationInput!", "organization { id }", new_slug
    ),
    mutation(
        "createService",
        "input: CreateServiceInput!",
        "service { id }",
        fixed(
            input=lambda w: {"organizationId": w.biz.org_id, "name": "Extra", "durationMinutes": 30}
        ),
    ),
    mutation(
        "addStaff",
        "input: AddStaffInput!",
        "staff { id }",
        fixed(input=lambda w: {"organizationId": w.biz.org_id, "name": "Extra Staff"}),
    ),
    mutation(
        "setWeeklySchedule",
        "input: SetWeeklyScheduleInput!",
        "staff { id }",
        fixed(input=lambda w: {"staffId": w.staff_id, "hours": WEEK}),
    ),
    mutation(
        "setDateOverride",
        "input: SetDateOverrideInput!",
        "staff { id }",
        fixed(input=lambda w: {"staffId": w.staff_id, "date": far_sunday(), "intervals": []}),
    ),
    mutation(
        "addTimeOff",
        "input: AddTimeOffInput!",
        "timeOff { id }",
        fixed(
            input=lambda w: {
                "organizationId": w.biz.org_id,
                "staffId": w.staff_id,
                "start": f"{far_sunday()}T10:00:00+01:00",
                "end": f"{far_sunday()}T11:00:00+01:00",
            }
        ),
    ),
    mutation(
        "updateOrganizationSettings",
        "input: UpdateOrganizationSettingsInput!",
        "settings { holdMinutes }",
        fixed(input=lambda w: {"organizationId": w.biz.org_id, "holdMinutes": 15}),
    ),
    mutation(
        "holdSlot",
        "input: HoldSlotInput!",
        "hold { id }",
        fixed(input=lambda w: {"serviceId": w.free, "start": monday_at(13)}),
    ),
    mutation(
        "createBooking",
        "input: CreateBookingInput!",
        BOOKED,
        fixed(
            input=lambda w: {
                "serviceId": w.free,
                "start": monday_at(14),
                "idempotencyKey": key(),
                "guest": {"name": "Gus", "email": f"gus-{key()[:8]}@example.com"},
            }
        ),
    ),
    mutation("cancelBooking", "input: CancelBookingInput!", BOOKED, fresh(lambda w: w.free)),
    mutation(
        "rescheduleBooking",
        "input: RescheduleBookingInput!",
        BOOKED,
        fresh(
            lambda w: w.free,
            start=lambda: monday_at(15),
            idempotencyKey=key,
        ),
    ),
    mutation("confirmBooking", "bookingId: ID!", BOOKED, fresh_id(lambda w: w.confirmed, 16)),
    mutation("declineBooking", "bookingId: ID!", BOOKED, fresh_id(lambda w: w.confirmed, 16)),
    mutation(
        "confirmPayment",
        "bookingId: ID!, manageToken: String",
        BOOKED,
        fresh_id(lambda w: w.paid, 11, with_token=True),
    ),
    mutation(
        "updateNotificationPreferences",
        "input: UpdateNotificationPreferencesInput!",
        "user { id }",
        fixed(input={"smsReminders": True}),
    ),
    # A staff member's feed: theirs and their managers' (the viewer's own, staffId null, is
    # every signed-in user's: SIGNED_IN, checked in tests/test_calendar_feeds.py).
    mutation("rotateCalendarFeed", "staffId: ID", "url", fixed(staffId=lambda w: w.staff_id)),
    mutation(
        "createWebhookEndpoint",
        "input: CreateWebhookEndpointInput!",
        "endpoint { id }",
        fixed(input=lambda w: {"organizationId": w.biz.org_id, **HOOK}),
    ),
    mutation("deleteWebhookEndpoint", "endpointId: ID!", "endpoint { id }", hook_to_delete),
    mutation(
        "resumeWebhookEndpoint", "endpointId: ID!", "endpoint { id }", shared_hook(paused_hook)
    ),
    mutation("redeliverWebhook", "deliveryId: ID!", "endpoint { id }", shared_hook(hook_delivery)),
    mutation("retryMessage", "messageId: ID!", "message { id }", dead_letter),
]

SAMPLES = [*QUERIES, *SUBSCRIPTIONS, *SIGN_UPS, *MUTATIONS]


# ---- what the rules expect ---------------------------------------------------------------


def takes_manage_token(field_: GraphQLField) -> bool:
    """Whether the field lets a guest pass a manage token (an argument, or a field of its
    input)."""
    for name, argument in field_.args.items():
        if name == "manageToken":
            return True
        named = get_named_type(argument.type)
        if isinstance(named, GraphQLInputObjectType) and "manageToken" in named.fields:
            return True
    return False


def root_field(sample: Sample) -> GraphQLField:
    type_name, _, name = sample.root.partition(".")
    parent = schema._schema.get_type(type_name)
    assert isinstance(parent, GraphQLObjectType), type_name
    found: GraphQLField = parent.fields[name]
    return found


def expected(sample: Sample, role: Role) -> str:
    """The rule's outcome for the role. A guest passes their token only where the root
    field takes one: elsewhere they are anonymous."""
    as_role = role
    if role is Role.GUEST and not takes_manage_token(root_field(sample)):
        as_role = Role.ANONYMOUS
    if sample.node_type is not None:
        outcome = NODE_TYPES[sample.node_type].expect[as_role]
        # node(id) answers null for whatever may not be read by id.
        return (Outcome.OK if outcome is Outcome.OK else Outcome.HIDDEN).value
    outcome = RULES[sample.coordinate].expect[as_role]
    return outcome.value


# ---- what a case gets ----------------------------------------------------------------------

PAYLOAD_CODES = {
    "UNAUTHENTICATED": Outcome.UNAUTHENTICATED,
    "FORBIDDEN": Outcome.FORBIDDEN,
    "NOT_FOUND": Outcome.HIDDEN,
}


def code_outcome(code: object) -> str:
    found = PAYLOAD_CODES.get(str(code))
    return found.value if found else f"error {code}"


def classify(sample: Sample, world: World, body: dict[str, Any]) -> str:
    """The outcome of one answer: an error's code, a payload's error, or the data."""
    if body.get("errors"):
        return code_outcome(body["errors"][0].get("extensions", {}).get("code"))
    value: Any = body.get("data")
    if sample.kind == "Mutation":
        answer = value[sample.where[0]]
        if answer["errors"]:
            return code_outcome(answer["errors"][0]["code"])
        return Outcome.OK.value
    for step in sample.where:
        if value is None:
            return Outcome.HIDDEN.value  # something on the way is not there for them
        value = value[step]
    if value is None:
        return sample.null_is.value
    if sample.row is not None:
        found = sample.row(world) in json.dumps(value)
        return (Outcome.OK if found else Outcome.EMPTY).value
    return Outcome.OK.value


@dataclass
class Case:
    sample: Sample
    role: Role
    variables: dict[str, Any] | None = None


Results = dict[tuple[str, Role, str], str]


async def over_http(world: World, case: Case) -> str:
    if case.variables is None:
        case.variables = await case.sample.prepare(world, case.role)
    body = await world.http.raw(case.sample.document, case.variables, world.token(case.role))
    return classify(case.sample, world, body)


async def over_socket(base_url: str, world: World, role: Role, cases: list[Case]) -> list[str]:
    """The cases' queries on one connection of the role, authenticated in connection_init."""
    found = []
    async with socket(base_url) as ws:
        assert (await ws.init(world.token(role)))["type"] == "connection_ack"
        for case in cases:
            assert case.variables is not None
            sid = await ws.subscribe(case.sample.document, case.variables)
            message = await ws.next()
            assert (message["type"], message["id"]) == ("next", sid), message
            assert (await ws.next())["type"] == "complete"
            found.append(classify(case.sample, world, message["payload"]))
    return found


async def subscribed(base_url: str, world: World, case: Case) -> str:
    """The first message of the subscription, on a connection of the role's own."""
    case.variables = await case.sample.prepare(world, case.role)
    ws: Socket
    async with socket(base_url) as ws:
        assert (await ws.init(world.token(case.role)))["type"] == "connection_ack"
        await ws.subscribe(case.sample.document, case.variables)
        message = await ws.next(10.0)
    if message["type"] == "error":
        errors = message["payload"]
        return code_outcome(errors[0].get("extensions", {}).get("code"))
    assert message["type"] == "next", message
    return classify(case.sample, world, message["payload"])


async def in_turn(jobs: list[Callable[[], Awaitable[str]]]) -> list[str]:
    """Runs the jobs, CONCURRENCY at a time: their results in order."""
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(job: Callable[[], Awaitable[str]]) -> str:
        async with gate:
            return await job()

    return list(await asyncio.gather(*(one(job) for job in jobs)))


async def run_matrix(world: World, base_url: str) -> Results:
    results: Results = {}

    async def over(
        cases: list[Case], transport: str, run: Callable[[Case], Awaitable[str]]
    ) -> None:
        outcomes = await in_turn([partial(run, c) for c in cases])
        for case, outcome in zip(cases, outcomes, strict=True):
            results[(case.sample.name, case.role, transport)] = outcome

    # Reads first: nothing has changed the world yet.
    reads = [Case(s, r) for s in QUERIES for r in Role]
    await over(reads, "http", lambda c: over_http(world, c))
    by_role = {r: [c for c in reads if c.role is r] for r in Role}
    answers = await asyncio.gather(
        *(over_socket(base_url, world, r, cases) for r, cases in by_role.items())
    )
    for cases, outcomes in zip(by_role.values(), answers, strict=True):
        for case, outcome in zip(cases, outcomes, strict=True):
            results[(case.sample.name, case.role, "websocket")] = outcome
    subscriptions = [Case(s, r) for s in SUBSCRIPTIONS for r in Role]
    await over(subscriptions, "websocket", lambda c: subscribed(base_url, world, c))

    # Then changes: the accounts verifyEmail and resetPassword use come from signUp. A
    # mutation's roles take turns (two admins saving one schedule at the same instant
    # is not what this checks); mutations run side by side.
    async def roles_in_turn(sample: Sample) -> str:
        for role in Role:
            outcome = await over_http(world, Case(sample, role))
            results[(sample.name, role, "http")] = outcome
        return sample.name

    for samples in (SIGN_UPS, MUTATIONS):
        await in_turn([partial(roles_in_turn, s) for s in samples])
    return results


def transports(sample: Sample) -> tuple[str, ...]:
    if sample.kind == "Query":
        return ("http", "websocket")
    return ("websocket",) if sample.kind == "Subscription" else ("http",)


class SmsLog(logging.Handler):
    def __init__(self, into: list[str]) -> None:
        super().__init__(logging.WARNING)
        self.into = into

    def emit(self, record: logging.LogRecord) -> None:
        self.into.append(record.getMessage())


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def matrix(server: Server, database_url: str) -> AsyncIterator[Results]:
    sms: list[str] = []
    logger = logging.getLogger("domain.users.sms")
    handler, level = SmsLog(sms), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING)
    try:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=60) as http:
            world = await build_world(GraphQLClient(http), server, database_url, sms)
            yield await run_matrix(world, server.base_url)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda s: s.name)
async def test_each_role_gets_what_the_rule_says(sample: Sample, matrix: Results) -> None:
    want = {role.value: expected(sample, role) for role in Role}
    for transport in transports(sample):
        got = {role.value: matrix[(sample.name, role, transport)] for role in Role}
        wrong = {r: f"got {got[r]}, the rule says {want[r]}" for r in want if got[r] != want[r]}
        assert not wrong, f"{sample.name} over {transport}: {wrong}"
