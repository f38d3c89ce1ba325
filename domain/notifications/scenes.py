"""Everything a booking's messages say, read at once for a batch of bookings: the
booking, its history, organization, service, staff member, customer and payment, and
who each message goes to, in which time zone.

Reads go through the other domains' public modules (this domain owns no booking,
catalog, account or payment table)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from email.utils import parseaddr

from sqlalchemy.ext.asyncio import AsyncConnection

from domain.availability import service as availability
from domain.availability.records import Service, Staff
from domain.booking import service as booking
from domain.booking.records import Booking, BookingChange
from domain.payments import service as payments
from domain.payments.records import Payment
from domain.users import service as users
from domain.users.records import Organization, User
from infra.ids import to_global_id


@dataclass(frozen=True, slots=True)
class Letterhead:
    """What every message takes from the configuration: who sends (MAIL_FROM), where the
    SPA is (APP_URL: guests' manage links), the key guests' manage tokens derive from."""

    sender: str
    app_url: str
    manage_key: bytes | None

    @property
    def sender_address(self) -> str:
        return parseaddr(self.sender)[1] or self.sender

    def manage_link(self, booking_id: uuid.UUID, token: str) -> str:
        base = self.app_url.rstrip("/")
        # The token in the fragment: never sent to a server, kept out of logs (as the
        # identity links do); the SPA calls booking(id:, manageToken:) with it.
        return f"{base}/bookings/{to_global_id('Booking', booking_id)}#token={token}"


@dataclass(frozen=True, slots=True)
class Recipient:
    name: str
    email: str
    time_zone: str
    user_id: uuid.UUID | None  # an account (its preferences count); None: a guest or staff
    manage_link: str | None = None  # a guest's, in every message of theirs


@dataclass(frozen=True, slots=True)
class Texted:
    """Where a customer's text reminders go: the number their account proved."""

    phone: str
    time_zone: str
    user_id: uuid.UUID


@dataclass(frozen=True, slots=True)
class StaffMember:
    name: str
    inbox: Recipient | None  # None: the staff member has no address


@dataclass(frozen=True, slots=True)
class Scene:
    booking: Booking
    history: list[BookingChange]
    organization: Organization
    service: Service
    staff: Staff
    customer: Recipient | None  # None: no address to write to (a phone-only account)
    customer_name: str
    payment: Payment | None
    texted: Texted | None = None  # an account with a verified phone number
    # Every staff member the booking has had (its history names them), by id.
    staff_members: dict[uuid.UUID, StaffMember] = field(default_factory=dict)

    @property
    def staff_member(self) -> Recipient | None:
        """The booking's staff member's inbox, now."""
        member = self.staff_members.get(self.staff.id)
        return member.inbox if member is not None else None


async def scenes_of(
    conn: AsyncConnection, booking_ids: Sequence[uuid.UUID], letterhead: Letterhead
) -> dict[uuid.UUID, Scene]:
    """The scenes of the bookings that exist among `booking_ids`, in a fixed number of
    statements whatever their count."""
    found = await booking.bookings_by_id(conn, list(booking_ids))
    if not found:
        return {}
    ids = list(found)
    histories = await booking.history_of(conn, ids)
    services = await availability.services_by_id(conn, {b.service_id for b in found.values()})
    staff_ids = {b.staff_id for b in found.values()}
    staff_ids |= {c.staff_id for h in histories.values() for c in h if c.staff_id is not None}
    staff = await availability.staff_by_id(conn, staff_ids)
    staff_emails = await availability.staff_emails(conn, staff)
    accounts = {b.customer_id for b in found.values() if b.customer_id is not None}
    accounts |= {s.user_id for s in staff.values() if s.user_id is not None}
    people = await users.users_by_id(conn, accounts)
    orgs = await users.organizations_by_id(conn, {b.organization_id for b in found.values()})
    paid = await payments.payments_of_bookings(conn, ids)
    guests = [b.id for b in found.values() if b.customer_id is None]
    key = letterhead.manage_key
    tokens = await booking.manage_tokens(conn, key, guests) if key is not None else {}
    members = {}
    for member in staff.values():
        account = people.get(member.user_id) if member.user_id is not None else None
        # Their account's address (verified) first, else the one they were added with.
        email = (account.email if account is not None else None) or staff_emails.get(member.id)
        inbox = Recipient(member.name, email, member.time_zone, None) if email else None
        members[member.id] = StaffMember(member.name, inbox)
    scenes = {}
    for booking_id, b in found.items():
        org = orgs[b.organization_id]
        customer = people.get(b.customer_id) if b.customer_id is not None else None
        history = histories.get(booking_id, [])
        scenes[booking_id] = Scene(
            booking=b,
            history=history,
            organization=org,
            service=services[b.service_id],
            staff=staff[b.staff_id],
            customer=_customer(b, customer, org, letterhead, tokens.get(b.id)),
            customer_name=customer.name if customer is not None else (b.guest_name or "Guest"),
            payment=paid.get(booking_id),
            texted=(
                Texted(customer.verified_phone, customer.time_zone or org.time_zone, customer.id)
                if customer is not None and customer.verified_phone
                else None
            ),
            staff_members={
                i: members[i]
                for i in {b.staff_id} | {c.staff_id for c in history if c.staff_id}
                if i in members
            },
        )
    return scenes


def _customer(
    b: Booking,
    account: User | None,
    org: Organization,
    letterhead: Letterhead,
    token: str | None,
) -> Recipient | None:
    if account is not None:
        if not account.email:
            return None
        # Their own zone when they chose one; else the business's, where it takes place.
        return Recipient(
            account.name, account.email, account.time_zone or org.time_zone, account.id
        )
    if b.guest_email:
        return Recipient(
            b.guest_name or "there",
            b.guest_email,
            org.time_zone,
            None,
            # None for a booking whose token another key made: no link that fails.
            letterhead.manage_link(b.id, token) if token is not None else None,
        )
    return None
