"""Secret calendar feeds: an .ics URL a customer or a staff member subscribes to in their
calendar app, listing their bookings.

Each owner has at most one feed; its token (32 random bytes, URL-safe) is handed out once,
by `rotate_feed`, and only its SHA-256 is stored. Rotating replaces the owner's row, so the
old URL stops working at once. A request's token is hashed and looked up by the hash: the
database compares digests, so how far a guessed token matches a real one tells nothing.

A feed's events are the e-mailed invites' events (invites.uid_of, invites.sequence_of):
a client that took an invite and also subscribes sees one event, updated by either.
Bookings that ended without taking place stay in the window as STATUS:CANCELLED, so
subscribed clients remove them instead of keeping a stale copy.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from icalendar import Calendar, Event, vDuration
from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from domain.availability import service as availability
from domain.booking import service as booking
from domain.booking.records import Booking, BookingChange
from domain.errors import DomainError, ErrorCode
from domain.notifications import invites
from domain.notifications.feed_tables import calendar_feeds as feeds
from domain.users import service as users
from domain.users.records import MANAGERS
from infra.ids import uuid7

# The route that serves a feed (web/calendar_feed.py); `token` is the secret.
ROUTE = "/calendar/{token}.ics"
TOKEN_BYTES = 32
# What token_urlsafe(32) makes: anything else is unknown without asking the database.
TOKEN_SHAPE = re.compile(r"[A-Za-z0-9_-]{43}")

# The window a feed shows, around the time it is read, and at most this many events (the
# earliest): enough for any calendar, bounded for the server.
PAST = timedelta(days=30)
AHEAD = timedelta(days=365)
MOST_EVENTS = 1_000

PRODID = "-//booking-api//feed//EN"
# How often subscribed clients are asked to look again (RFC 7986 and Outlook's own).
REFRESH = timedelta(hours=1)


def feed_path(token: str) -> str:
    return ROUTE.format(token=token)


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


async def rotate_feed(conn: AsyncConnection, viewer: uuid.UUID, staff_id: uuid.UUID | None) -> str:
    """A new token for a feed, replacing the one before: the viewer's own customer feed
    (staff_id None), or a staff member's, for that staff member or an OWNER/ADMIN of
    their organization (else FORBIDDEN; an unknown staff member NOT_FOUND)."""
    if staff_id is not None:
        await _require_feed_of_staff(conn, viewer, staff_id)
    owner, owner_id = ("user_id", viewer) if staff_id is None else ("staff_id", staff_id)
    token = secrets.token_urlsafe(TOKEN_BYTES)
    statement = insert(feeds).values(id=uuid7(), token_hash=_digest(token), **{owner: owner_id})
    await conn.execute(
        statement.on_conflict_do_update(
            index_elements=[owner],
            set_={
                "id": statement.excluded.id,
                "token_hash": statement.excluded.token_hash,
                "created_at": func.now(),
            },
        )
    )
    return token


async def _require_feed_of_staff(
    conn: AsyncConnection, viewer: uuid.UUID, staff_id: uuid.UUID
) -> None:
    staff = (await availability.staff_by_id(conn, [staff_id])).get(staff_id)
    if staff is None:
        raise DomainError(ErrorCode.NOT_FOUND, "No such staff member.", "staffId")
    if staff.user_id == viewer:
        return
    if await users.role_in(conn, viewer, staff.organization_id) not in MANAGERS:
        raise DomainError(
            ErrorCode.FORBIDDEN,
            "Only this staff member and the organization's owners and admins may do this.",
            "staffId",
        )


@dataclass(frozen=True, slots=True)
class Feed:
    """A feed as served: the .ics bytes, and when what it shows last changed."""

    body: bytes
    last_modified: datetime


async def feed_for(conn: AsyncConnection, token: str, now: datetime) -> Feed | None:
    """The feed of this token as of `now`; None when no feed has it (unknown, malformed
    or rotated away: the same answer for each)."""
    if not TOKEN_SHAPE.fullmatch(token):
        return None
    row = (
        await conn.execute(
            select(feeds.c.user_id, feeds.c.staff_id, feeds.c.created_at).where(
                feeds.c.token_hash == _digest(token)
            )
        )
    ).one_or_none()
    if row is None:
        return None
    if row.staff_id is not None:
        staff = (await availability.staff_by_id(conn, [row.staff_id])).get(row.staff_id)
        if staff is None:
            return None  # removed since the read above (the row goes with it)
        org = await users.organization_by_id(conn, staff.organization_id)
        name = f"{staff.name}, {org.name}" if org else staff.name
        page = await booking.bookings_page(
            conn,
            first=MOST_EVENTS,
            after=None,
            staff_ids=[staff.id],
            start=now - PAST,
            end=now + AHEAD,
        )
        return await _feed(conn, name, page.bookings, row.created_at, with_customer=True)
    user = (await users.users_by_id(conn, [row.user_id])).get(row.user_id)
    if user is None:
        return None
    page = await booking.bookings_page(
        conn, first=MOST_EVENTS, after=None, customer_id=user.id, start=now - PAST, end=now + AHEAD
    )
    return await _feed(conn, f"Bookings of {user.name}", page.bookings, row.created_at)


async def _feed(
    conn: AsyncConnection,
    name: str,
    found: Sequence[Booking],
    since: datetime,
    *,
    with_customer: bool = False,
) -> Feed:
    """The calendar of these bookings; a few batched reads whatever their number."""
    ids = [b.id for b in found]
    history = await booking.history_of(conn, ids)
    services = await availability.services_by_id(conn, {b.service_id for b in found})
    orgs = await users.organizations_by_id(conn, {b.organization_id for b in found})
    customers = {}
    if with_customer:
        customer_ids = {b.customer_id for b in found if b.customer_id is not None}
        customers = await users.users_by_id(conn, customer_ids)

    calendar = Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    # No METHOD: a feed is a published calendar, not an iTIP message (RFC 5545 3.7.2
    # ties METHOD to the Content-Type's method parameter, which a feed has none of).
    calendar.add("x-wr-calname", name)
    calendar.add("refresh-interval", REFRESH, parameters={"VALUE": "DURATION"})
    calendar.add("x-published-ttl", vDuration(REFRESH))  # an X- property: typed by hand
    latest = since
    for b in found:
        changes = history.get(b.id, [])
        stamp = _last_change(b, changes)
        latest = max(latest, stamp)
        service = services.get(b.service_id)
        title = service.name if service else "Booking"
        if with_customer:
            customer = customers.get(b.customer_id) if b.customer_id else None
            who = customer.name if customer else b.guest_name
            title = f"{title}: {who}" if who else title
        org = orgs.get(b.organization_id)
        event = Event()
        event.add("uid", invites.uid_of(b.id))
        event.add("sequence", invites.sequence_of(changes))
        # From the booking's own history, not the clock: the same bookings make the same
        # bytes, so the ETag holds until something changes.
        event.add("dtstamp", stamp)
        event.add("last-modified", stamp)
        event.add("created", b.created_at.astimezone(UTC))
        event.add("dtstart", b.start.astimezone(UTC))
        event.add("dtend", b.end.astimezone(UTC))
        event.add("status", _status(b))
        event.add("summary", title)
        where = f" at {org.name}" if org else ""
        event.add("description", f"Booking {b.reference}{where}")
        event.add("transp", "TRANSPARENT" if _status(b) == "CANCELLED" else "OPAQUE")
        calendar.add_component(event)
    body: bytes = calendar.to_ical()  # icalendar leaves to_ical untyped
    return Feed(body, latest)


def _last_change(b: Booking, changes: Sequence[BookingChange]) -> datetime:
    return (changes[-1].at if changes else b.created_at).astimezone(UTC)


def _status(b: Booking) -> str:
    if b.status in invites.CANCELLING:
        return "CANCELLED"
    return "TENTATIVE" if b.status in invites.TENTATIVE else "CONFIRMED"
