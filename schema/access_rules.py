"""Who may read and do what: the rule of every root field and of every field that shows
personal or private data, in one table, and the checks the schema makes from it.

`RULES` maps a schema coordinate ("Query.booking", "Booking.notes") to a `Rule`: what
each kind of viewer (`Role`) gets from the field, and who may see the object the rule is
about. `enforce` (schema/access_guards.py) installs the table on the built schema
(schema/root.py), field by field:

- a rule that turns the anonymous away (UNAUTHENTICATED) makes its fields require a
  viewer before their resolver runs (root fields and object fields alike);
- an object field whose rule says who may see its object (`allows`) asks it about the
  object the field belongs to: refused, the field is UNAUTHENTICATED when nobody is
  signed in, else FORBIDDEN, or null for a rule that hides by answering null (a
  payment's client secret);
- a root query or subscription field that answers one object (`booking`, `node`,
  `viewer`, `bookingChanged`) asks it about its answer: refused, null, or NOT_FOUND for
  a subscription, as if it did not exist (the contract's rule for unreadable objects);
- a mutation's object is named by its input, so its resolver and the domain find it and
  decide (NOT_FOUND or FORBIDDEN in the payload): only the viewer requirement is checked
  here, and tests/test_access_matrix.py checks the rest against the rule.

The resolvers keep their own checks: this is a second line, and the one place a new field
must be given a rule (tests/test_access_rules.py fails for a root field, a `PERSONAL`
field or a field named like personal data without one, and for a rule naming a field
that does not exist). docs/identity.md, "Who may read and do what", has the table.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from graphql import GraphQLResolveInfo

from domain.users.records import MANAGERS
from resolvers.access import manages_staff, role_in
from schema.booking import Booking
from schema.catalog import Organization, Staff, TimeOff
from schema.context import Context
from schema.identity import User
from schema.notification_preferences import NotificationPreferences
from schema.payment import Payment

ROOTS = ("Query", "Mutation", "Subscription")


class Role(StrEnum):
    """The viewers of the access matrix, each named by what they are to its subject: an
    organization; a booking there by a customer, with a staff member who has an account;
    that customer's account; that staff member's time off. The guest has no account and
    holds the manage token of a booking of their own, which they pass where a field
    takes one (elsewhere they are anonymous)."""

    ANONYMOUS = "anonymous"
    CUSTOMER = "customer"
    OTHER_CUSTOMER = "other customer"
    STAFF = "staff"
    ADMIN = "admin"
    OWNER = "owner"
    OTHER_OWNER = "other owner"  # of another organization
    GUEST = "guest"


class Outcome(StrEnum):
    """What a viewer gets from a field (the words are the table's below)."""

    OK = "ok"
    UNAUTHENTICATED = "unauth"  # top-level error: sign in first
    FORBIDDEN = "forbid"  # top-level error on a query field, in the payload of a mutation
    HIDDEN = "hidden"  # as if it did not exist: null, NOT_FOUND in a payload or subscription
    EMPTY = "empty"  # a list, without the subject's row
    NULL = "null"  # the field answers null (a secret kept for its owner)


Allows = Callable[[Any, Context], bool | Awaitable[bool]]
ResolveInfo = GraphQLResolveInfo[Context]


@dataclass(frozen=True, eq=False)
class Rule:
    name: str
    meaning: str
    expect: Mapping[Role, Outcome]
    # Who may see an object the rule is about (enforce asks it); None: nothing to ask.
    allows: Allows | None = None
    subjects: tuple[type, ...] = ()  # the types `allows` understands
    hide_as_null: bool = False  # an object field refused answers null, not an error
    refusal: str = "You may not see this."

    @property
    def needs_viewer(self) -> bool:
        return self.expect[Role.ANONYMOUS] is Outcome.UNAUTHENTICATED


def _rule(
    name: str,
    meaning: str,
    row: str,
    allows: Allows | None = None,
    subjects: tuple[type, ...] = (),
    **more: Any,
) -> Rule:
    outcomes = [Outcome(word) for word in row.split()]
    expect = dict(zip(Role, outcomes, strict=True))
    return Rule(name, meaning, expect, allows, subjects, **more)


# ---- who may see an object ---------------------------------------------------------------


def _self(user: User, context: Context) -> bool:
    return user.own or (context.viewer_id is not None and user.record.id == context.viewer_id)


def _owner_of(preferences: NotificationPreferences, context: Context) -> bool:
    viewer = context.viewer_id
    return preferences.own or (viewer is not None and preferences.user_id == viewer)


def _self_or_contact(user: User, context: Context) -> bool:
    return user.contact or _self(user, context)


def _payer(payment: Payment, context: Context) -> bool:
    return payment.payer


def _participant(booking: Booking, context: Context) -> bool | Awaitable[bool]:
    """Its customer, its guest (known by the manage token the resolver checked, or as the
    request that made it), its staff member, an OWNER/ADMIN of its organization."""
    if booking.roles or booking.payer:
        return True
    viewer = context.viewer_id
    if viewer is None:
        return False
    if booking.record.customer_id == viewer:
        return True
    return _works_on(booking, context)


async def _works_on(booking: Booking, context: Context) -> bool:
    if await role_in(context, booking.record.organization_id) in MANAGERS:
        return True
    staff = await context.loaders.staff.load(booking.record.staff_id)
    return staff is not None and staff.user_id == context.viewer_id


async def _manager(organization: Organization, context: Context) -> bool:
    return await role_in(context, organization.record.id) in MANAGERS


async def _member(organization: Organization, context: Context) -> bool:
    return await role_in(context, organization.record.id) is not None


def _staff_or_manager(subject: Staff | TimeOff, context: Context) -> bool | Awaitable[bool]:
    if isinstance(subject, Staff):
        return manages_staff(context, subject.record)
    if subject.record.staff_id is None:
        return True  # the whole organization closed: it shapes everyone's availability
    return _manages_staff_of(subject, context)


async def _manages_staff_of(time_off: TimeOff, context: Context) -> bool:
    assert time_off.record.staff_id is not None
    staff = await context.loaders.staff.load(time_off.record.staff_id)
    return staff is not None and await manages_staff(context, staff)


def _nobody(subject: Any, context: Context) -> bool:
    return False


def _as_its_type(node: Any, context: Context) -> bool | Awaitable[bool]:
    """node(id): the rule of the object's own type."""
    rule = NODE_TYPES[_graphql_name(node)]
    return True if rule.allows is None else rule.allows(node, context)


def _graphql_name(value: Any) -> str:
    definition = value.__strawberry_definition__
    return str(definition.name)


# ---- the rules -----------------------------------------------------------------------------

# Each rule's row: what anonymous, customer, other customer, staff, admin, owner, other
# owner and guest get, in that order (the Outcome words).
PUBLIC = _rule(
    "PUBLIC",
    "anyone, signed in or not",
    "ok ok ok ok ok ok ok ok",
)
TOKEN_HOLDER = _rule(
    "TOKEN_HOLDER",
    "whoever holds the secret it takes (a code, a refresh token, an e-mailed link),"
    " signed in or not",
    "ok ok ok ok ok ok ok ok",
)
SIGNED_IN = _rule(
    "SIGNED_IN",
    "any signed-in user, for themselves",
    "unauth ok ok ok ok ok ok unauth",
)
VIEWER = _rule(
    "VIEWER",
    "the viewer's own account; null when nobody is signed in",
    "hidden ok ok ok ok ok ok hidden",
    _self,
    (User,),
)
OWN_ROWS = _rule(
    "OWN_ROWS",
    "a signed-in user's own bookings: nobody else's rows",
    "unauth ok empty empty empty empty empty unauth",
)
MANAGER = _rule(
    "MANAGER",
    "an OWNER or ADMIN of the organization",
    "unauth forbid forbid forbid ok ok forbid unauth",
    _manager,
    (Organization,),
    refusal="Only the organization's owners and admins see this.",
)
MEMBER = _rule(
    "MEMBER",
    "a member of the organization (OWNER, ADMIN; STAFF see only their own rows)",
    "unauth forbid forbid ok ok ok forbid unauth",
    _member,
    (Organization,),
    refusal="Only members of the organization see its bookings.",
)
STAFF_OR_MANAGER = _rule(
    "STAFF_OR_MANAGER",
    "the staff member, or an OWNER or ADMIN of their organization (an organization-wide"
    " closure: anyone)",
    "unauth forbid forbid ok ok ok forbid unauth",
    _staff_or_manager,
    (Staff, TimeOff),
    refusal="Only the organization's admins and this staff member see time off.",
)
PARTICIPANT = _rule(
    "PARTICIPANT",
    "the booking's customer, its guest (with the manage token), its staff member, an"
    " OWNER or ADMIN of its organization",
    "hidden ok hidden ok ok ok hidden ok",
    _participant,
    (Booking,),
)
CANCELLER = _rule(
    "CANCELLER",
    "the booking's customer, its guest (with the manage token), an OWNER or ADMIN; its"
    " staff member may read it but not do this",
    "hidden ok hidden forbid ok ok hidden ok",
)
CONFIRMER = _rule(
    "CONFIRMER",
    "the booking's staff member, an OWNER or ADMIN; its customer may read it but not do this",
    "unauth forbid hidden ok ok ok hidden unauth",
)
SELF_OR_CONTACT = _rule(
    "SELF_OR_CONTACT",
    "the account's owner, or whoever may read a booking the account made (its staff"
    " member, an OWNER or ADMIN)",
    "hidden ok hidden ok ok ok hidden hidden",
    _self_or_contact,
    (User,),
)
SELF = _rule(
    "SELF",
    "the account's owner only",
    "hidden ok hidden forbid forbid forbid hidden hidden",
    _self,
    (User,),
    refusal="Only the account's owner sees this.",
)
OWN_SETTINGS = _rule(
    "OWN_SETTINGS",
    "the account's owner only, as SELF: a setting of the account, reached through it",
    "hidden ok hidden forbid forbid forbid hidden hidden",
    _owner_of,
    (NotificationPreferences,),
    refusal="Only the account's owner sees this.",
)
PAYER = _rule(
    "PAYER",
    "whoever pays the booking (its customer, its guest with the manage token); null for"
    " anyone else who may read it",
    "hidden ok hidden null null null hidden ok",
    _payer,
    (Payment,),
    hide_as_null=True,
)
NODE = _rule(
    "NODE",
    "as the rule of the object's own type (NODE_TYPES), null when refused",
    "ok ok ok ok ok ok ok ok",  # not used: the matrix takes each type's rule
    _as_its_type,
)
NOT_BY_ID = _rule(
    "NOT_BY_ID",
    "not served by node(id): read through its booking",
    "hidden hidden hidden hidden hidden hidden hidden hidden",
    _nobody,
    (Payment,),
)
THROUGH_ORGANIZATION = _rule(
    "THROUGH_ORGANIZATION",
    "not served by node(id): read through Organization.webhookEndpoints (OWNER/ADMIN)",
    "hidden hidden hidden hidden hidden hidden hidden hidden",
    _nobody,
)
CALLER = _rule(
    "CALLER",
    "only in a mutation's answer, to whoever sent it",
    "ok ok ok ok ok ok ok ok",
)

# node(id) answers each type under its own rule; null when refused.
NODE_TYPES: dict[str, Rule] = {
    "Organization": PUBLIC,
    "Service": PUBLIC,
    "Staff": PUBLIC,
    "TimeOff": STAFF_OR_MANAGER,
    "Booking": PARTICIPANT,
    "User": SELF,
    "Payment": NOT_BY_ID,
    "WebhookEndpoint": THROUGH_ORGANIZATION,
}

RULES: dict[str, Rule] = {
    # ---- queries
    "Query.node": NODE,
    "Query.viewer": VIEWER,
    "Query.organization": PUBLIC,
    "Query.service": PUBLIC,
    "Query.availability": PUBLIC,
    "Query.booking": PARTICIPANT,
    "Query.myBookings": OWN_ROWS,
    # ---- mutations: identity
    "Mutation.signUp": PUBLIC,
    "Mutation.signIn": PUBLIC,
    "Mutation.exchangeSignInCode": TOKEN_HOLDER,
    "Mutation.refreshSession": TOKEN_HOLDER,
    "Mutation.signOut": TOKEN_HOLDER,
    "Mutation.updateProfile": SIGNED_IN,
    "Mutation.requestPhoneCode": PUBLIC,
    "Mutation.signInWithPhone": TOKEN_HOLDER,
    "Mutation.signOutEverywhere": SIGNED_IN,
    "Mutation.requestEmailVerification": SIGNED_IN,
    "Mutation.verifyEmail": TOKEN_HOLDER,
    "Mutation.requestPasswordReset": PUBLIC,
    "Mutation.resetPassword": TOKEN_HOLDER,
    # ---- mutations: the catalog
    "Mutation.createOrganization": SIGNED_IN,
    "Mutation.createService": MANAGER,
    "Mutation.addStaff": MANAGER,
    "Mutation.setWeeklySchedule": MANAGER,
    "Mutation.setDateOverride": MANAGER,
    "Mutation.addTimeOff": MANAGER,
    "Mutation.updateOrganizationSettings": MANAGER,
    # ---- mutations: bookings and payments
    "Mutation.holdSlot": PUBLIC,
    "Mutation.createBooking": PUBLIC,
    "Mutation.cancelBooking": CANCELLER,
    "Mutation.rescheduleBooking": CANCELLER,
    "Mutation.confirmBooking": CONFIRMER,
    "Mutation.declineBooking": CONFIRMER,
    "Mutation.confirmPayment": PARTICIPANT,
    # ---- mutations: notifications
    "Mutation.updateNotificationPreferences": SIGNED_IN,
    "Mutation.rotateCalendarFeed": STAFF_OR_MANAGER,
    "Mutation.createWebhookEndpoint": MANAGER,
    "Mutation.deleteWebhookEndpoint": MANAGER,
    "Mutation.resumeWebhookEndpoint": MANAGER,
    "Mutation.redeliverWebhook": MANAGER,
    "Mutation.retryMessage": MANAGER,
    # ---- subscriptions
    "Subscription.availabilityChanged": PUBLIC,
    "Subscription.bookingChanged": PARTICIPANT,
    # ---- personal and private data on objects
    "User.email": SELF_OR_CONTACT,
    "User.phone": SELF_OR_CONTACT,
    "User.name": SELF_OR_CONTACT,
    "User.emailVerified": SELF_OR_CONTACT,
    "User.memberships": SELF,
    "User.notificationPreferences": SELF,
    "NotificationPreferences.emailReminders": OWN_SETTINGS,
    "NotificationPreferences.smsReminders": OWN_SETTINGS,
    "User.timeZone": SELF,
    "Booking.guestName": PARTICIPANT,
    "Booking.guestEmail": PARTICIPANT,
    "Booking.notes": PARTICIPANT,
    "Booking.customer": PARTICIPANT,
    "Booking.payment": PARTICIPANT,
    "Booking.history": PARTICIPANT,
    "Booking.cancellationReason": PARTICIPANT,
    "Payment.clientSecret": PAYER,
    "Payment.failureMessage": PAYER,
    "Staff.timeOff": STAFF_OR_MANAGER,
    "TimeOff.start": STAFF_OR_MANAGER,
    "TimeOff.end": STAFF_OR_MANAGER,
    "TimeOff.reason": STAFF_OR_MANAGER,
    "Organization.settings": MANAGER,
    "Organization.bookings": MEMBER,
    "Organization.webhookEndpoints": MANAGER,
    "Organization.undeliveredMessages": MANAGER,
    # ---- secrets and accounts in a mutation's answer
    "AuthPayload.accessToken": CALLER,
    "AuthPayload.refreshToken": CALLER,
    "AuthPayload.accessTokenExpiresAt": CALLER,
    "AuthPayload.user": CALLER,
    "UserPayload.user": CALLER,
    "BookingPayload.manageToken": CALLER,
    "WebhookEndpointPayload.signingSecret": CALLER,
    "CalendarFeedPayload.url": CALLER,
    "TimeOffPayload.timeOff": CALLER,
}

# Fields that show personal or private data: each must have a rule (so must any field
# named like one, PERSONAL_NAME).
PERSONAL: frozenset[str] = frozenset(
    {
        "User.email",
        "User.phone",
        "User.name",
        "User.emailVerified",
        "User.memberships",
        "User.notificationPreferences",
        "NotificationPreferences.emailReminders",
        "NotificationPreferences.smsReminders",
        "Booking.guestName",
        "Booking.guestEmail",
        "Booking.notes",
        "Booking.customer",
        "Booking.payment",
        "Booking.history",
        "Booking.cancellationReason",
        "Payment.clientSecret",
        "Payment.failureMessage",
        "Staff.timeOff",
        "TimeOff.start",
        "TimeOff.end",
        "TimeOff.reason",
        "Organization.settings",
        "Organization.bookings",
        "Organization.webhookEndpoints",
        "Organization.undeliveredMessages",
        "AuthPayload.accessToken",
        "AuthPayload.refreshToken",
        "AuthPayload.accessTokenExpiresAt",
        "AuthPayload.user",
        "UserPayload.user",
        "BookingPayload.manageToken",
        "WebhookEndpointPayload.signingSecret",
        "CalendarFeedPayload.url",
        "TimeOffPayload.timeOff",
    }
)
PERSONAL_NAME = re.compile(
    r"email|phone|guest|notes|timeoff|payment|clientsecret|customer|token", re.IGNORECASE
)


__all__ = [
    "NODE_TYPES",
    "PERSONAL",
    "PERSONAL_NAME",
    "ROOTS",
    "RULES",
    "Outcome",
    "Role",
    "Rule",
]
