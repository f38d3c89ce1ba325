"""The GraphQL schema: Query, Mutation, Subscription and the `Schema` object."""

from __future__ import annotations

from typing import Any

import strawberry
from graphql import GraphQLError
from strawberry.schema.config import StrawberryConfig

from resolvers import booking as bookings
from resolvers import calendar_feed as calendar_feeds
from resolvers import catalog, identity, undelivered, webhooks
from resolvers import notification_preferences as preferences
from resolvers import organization_settings as org_settings
from resolvers.availability import resolve_availability
from resolvers.node import node
from schema.access_guards import enforce
from schema.availability import Availability
from schema.booking import Booking, BookingConnection, BookingPayload, HoldPayload
from schema.calendar_feed import CalendarFeedPayload
from schema.catalog import Organization, Service, Staff, TimeOff
from schema.catalog_inputs import (
    OrganizationPayload,
    ServicePayload,
    StaffPayload,
    TimeOffPayload,
)
from schema.common import Node
from schema.direct_fields import use_direct_fields
from schema.identity import (
    AuthPayload,
    RequestEmailVerificationPayload,
    RequestPasswordResetPayload,
    RequestPhoneCodePayload,
    SignOutPayload,
    User,
    UserPayload,
)
from schema.organization_settings import OrganizationSettingsPayload
from schema.payment import Payment
from schema.prepared import PreparedDocument, PreparedValidation
from schema.scalars import SCALAR_MAP
from schema.subscription import Subscription
from schema.undelivered import RetryMessagePayload
from schema.webhooks import WebhookEndpointPayload


@strawberry.type
class Query:
    node: Node | None = strawberry.field(resolver=node)
    viewer: User | None = strawberry.field(resolver=identity.viewer)
    organization: Organization | None = strawberry.field(resolver=catalog.organization)
    service: Service | None = strawberry.field(resolver=catalog.service)
    availability: Availability = strawberry.field(resolver=resolve_availability)
    booking: Booking | None = strawberry.field(
        resolver=bookings.booking_by_id,
        description="A guest reads their booking with its manage token.",
    )
    my_bookings: BookingConnection = strawberry.field(resolver=bookings.my_bookings)


@strawberry.type
class Mutation:
    sign_up: AuthPayload = strawberry.mutation(resolver=identity.sign_up)
    sign_in: AuthPayload = strawberry.mutation(resolver=identity.sign_in)
    exchange_sign_in_code: AuthPayload = strawberry.mutation(
        resolver=identity.exchange_sign_in_code,
        description="Third-party sign-in: the one-time code /auth/{provider}/callback put in"
        " the SPA's URL (60 s, single use) for a session; codeVerifier when the sign-in"
        " began with a code_challenge.",
    )
    refresh_session: AuthPayload = strawberry.mutation(resolver=identity.refresh_session)
    sign_out: SignOutPayload = strawberry.mutation(resolver=identity.sign_out)
    update_profile: UserPayload = strawberry.mutation(resolver=identity.update_profile)
    request_phone_code: RequestPhoneCodePayload = strawberry.mutation(
        resolver=identity.request_phone_code,
        description="Texts a 6-digit sign-in code to the number (E.164, or national with"
        " DEFAULT_PHONE_REGION), valid 5 minutes; a new request replaces the last code.",
    )
    sign_in_with_phone: AuthPayload = strawberry.mutation(
        resolver=identity.sign_in_with_phone,
        description="The code from requestPhoneCode: signs in to the account of that number,"
        " made on its first sign-in.",
    )
    sign_out_everywhere: SignOutPayload = strawberry.mutation(
        resolver=identity.sign_out_everywhere,
        description="Ends every session of the viewer (all refresh tokens); access tokens"
        " already handed out work until they expire (minutes).",
    )
    request_email_verification: RequestEmailVerificationPayload = strawberry.mutation(
        resolver=identity.request_email_verification,
        description="Sends the viewer a new verification link (the older one stops working).",
    )
    verify_email: UserPayload = strawberry.mutation(
        resolver=identity.verify_email,
        description="The token from the verification link; signed in or not.",
    )
    request_password_reset: RequestPasswordResetPayload = strawberry.mutation(
        resolver=identity.request_password_reset,
        description="Sends a reset link if an account has this address; answers the same"
        " either way.",
    )
    reset_password: AuthPayload = strawberry.mutation(
        resolver=identity.reset_password,
        description="The token from the reset link and the new password: ends every session"
        " of the account and answers with a new one.",
    )

    create_organization: OrganizationPayload = strawberry.mutation(
        resolver=catalog.create_organization
    )
    create_service: ServicePayload = strawberry.mutation(resolver=catalog.create_service)
    add_staff: StaffPayload = strawberry.mutation(resolver=catalog.add_staff)
    set_weekly_schedule: StaffPayload = strawberry.mutation(resolver=catalog.set_weekly_schedule)
    set_date_override: StaffPayload = strawberry.mutation(resolver=catalog.set_date_override)
    add_time_off: TimeOffPayload = strawberry.mutation(resolver=catalog.add_time_off)
    update_organization_settings: OrganizationSettingsPayload = strawberry.mutation(
        resolver=org_settings.update_organization_settings
    )

    hold_slot: HoldPayload = strawberry.mutation(resolver=bookings.hold_slot)
    create_booking: BookingPayload = strawberry.mutation(resolver=bookings.create_booking)
    cancel_booking: BookingPayload = strawberry.mutation(resolver=bookings.cancel_booking)
    reschedule_booking: BookingPayload = strawberry.mutation(resolver=bookings.reschedule_booking)
    confirm_booking: BookingPayload = strawberry.mutation(resolver=bookings.confirm_booking)
    decline_booking: BookingPayload = strawberry.mutation(resolver=bookings.decline_booking)
    confirm_payment: BookingPayload = strawberry.mutation(
        resolver=bookings.confirm_payment,
        description="After Stripe.js: the server checks the payment with the provider itself."
        " A guest passes manageToken.",
    )

    update_notification_preferences: UserPayload = strawberry.mutation(
        resolver=preferences.update_notification_preferences,
        description="Turns the viewer's reminders on or off (null: unchanged); the messages"
        " about a booking itself always go.",
    )
    rotate_calendar_feed: CalendarFeedPayload = strawberry.mutation(
        resolver=calendar_feeds.rotate_calendar_feed,
        description="A new secret .ics feed URL of the viewer's bookings (staffId null) or of"
        " a staff member's (for that staff member or an OWNER/ADMIN); the old URL stops"
        " working at once.",
    )

    retry_message: RetryMessagePayload = strawberry.mutation(
        resolver=undelivered.retry_message,
        description="OWNER/ADMIN: an undelivered e-mail about the organization's bookings"
        " sent again (queued, due now, its tries counted afresh).",
    )
    create_webhook_endpoint: WebhookEndpointPayload = strawberry.mutation(
        resolver=webhooks.create_webhook_endpoint,
        description="OWNER/ADMIN: a new endpoint for the organization's events; its"
        " signingSecret is answered this once.",
    )
    delete_webhook_endpoint: WebhookEndpointPayload = strawberry.mutation(
        resolver=webhooks.delete_webhook_endpoint,
        description="OWNER/ADMIN: deletes the endpoint and its deliveries.",
    )
    resume_webhook_endpoint: WebhookEndpointPayload = strawberry.mutation(
        resolver=webhooks.resume_webhook_endpoint,
        description="OWNER/ADMIN: a paused endpoint active again; every delivery not yet"
        " delivered is sent again from now.",
    )
    redeliver_webhook: WebhookEndpointPayload = strawberry.mutation(
        resolver=webhooks.redeliver_webhook,
        description="OWNER/ADMIN: sends the delivery again now (the same body and webhook-id).",
    )


class BookingSchema(strawberry.Schema):
    def process_errors(self, errors: list[GraphQLError], execution_context: Any = None) -> None:
        """Not here: web.graphql_endpoint.format_error logs each error once, by what it is
        (strawberry's default logs a client's typo at ERROR with a traceback)."""


schema = BookingSchema(
    query=Query,
    mutation=Mutation,
    subscription=Subscription,
    types=[Organization, Service, Staff, TimeOff, User, Booking, Payment],
    config=StrawberryConfig(auto_camel_case=True, scalar_map=SCALAR_MAP),
    # SPAs send the same few documents again and again: parse and validate each once.
    extensions=[PreparedDocument, PreparedValidation],
)
use_direct_fields(schema)
enforce(schema)  # who may read and do what: schema/access_rules.py
