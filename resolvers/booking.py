"""Holds and bookings: authorize, call the booking domain, shape the payload."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable
from datetime import datetime

import strawberry

from domain.availability import service as availability
from domain.booking import records as bk
from domain.booking import service as booking
from domain.booking.records import BookingStatus
from domain.errors import DomainError
from domain.payments import service as payments
from domain.users.records import MANAGERS
from infra.ids import key_of
from resolvers.access import viewer_role
from resolvers.limited import rate_limited
from resolvers.paging import page_info, page_size
from schema.booking import (
    Booking,
    BookingConnection,
    BookingEdge,
    BookingPayload,
    CancelBookingInput,
    CreateBookingInput,
    Hold,
    HoldPayload,
    HoldSlotInput,
    RescheduleBookingInput,
)
from schema.common import UserError, decode_cursor, encode_cursor
from schema.context import Info, forbidden, invalid_argument


async def _booking_payload(
    change: Awaitable[bk.Booking], manage_token: str | None = None
) -> BookingPayload:
    """The payload of a mutation that changes one booking: it, or why not. A change made
    with a manage token was made by the guest holding it (the domain checked the token,
    or the viewer was allowed anyway): the booking is theirs to read."""
    roles = frozenset({bk.Actor.GUEST}) if manage_token else frozenset()
    try:
        return BookingPayload(booking=Booking.of(await change, roles=roles))
    except DomainError as error:
        return BookingPayload(errors=UserError.list_from(error))


def _staff(global_id: strawberry.ID | None) -> tuple[uuid.UUID | None, bool]:
    """(staff key, any staff?) of an optional staffId argument."""
    if global_id is None:
        return None, True
    return key_of(global_id, "Staff"), False


async def hold_slot(info: Info, input: HoldSlotInput) -> HoldPayload:
    staff_id, any_staff = _staff(input.staff_id)
    try:
        hold = await booking.hold_slot(
            info.context.engine,
            info.context.slot_lock,
            info.context.policy,
            info.context.viewer_id,
            key_of(input.service_id, "Service"),
            input.start,
            staff_id,
            any_staff,
            info.context.now,
        )
    except DomainError as error:
        return HoldPayload(errors=UserError.list_from(error))
    return HoldPayload(hold=Hold.of(hold))


async def create_booking(info: Info, input: CreateBookingInput) -> BookingPayload:
    # A guest books without an account: only their address keeps one from taking a
    # whole calendar (docs/identity.md).
    if info.context.viewer_id is None and (limited := await rate_limited(info, "guest_booking")):
        return BookingPayload(errors=limited)
    staff_id, any_staff = _staff(input.staff_id)
    guest = input.guest
    request = booking.BookingRequest(
        service_id=key_of(input.service_id, "Service"),
        start=input.start,
        staff_id=staff_id,
        any_staff=any_staff,
        idempotency_key=input.idempotency_key,
        hold_id=key_of(input.hold_id, "Hold") if input.hold_id is not None else None,
        hold_id_given=input.hold_id is not None,
        notes=input.notes,
        guest=booking.Guest(guest.name, guest.email, guest.phone) if guest else None,
    )
    try:
        result = await payments.book(
            info.context.engine,
            info.context.payments,
            info.context.slot_lock,
            info.context.policy,
            info.context.viewer_id,
            request,
            info.context.now,
        )
    except DomainError as error:
        return BookingPayload(errors=UserError.list_from(error))
    loaders = info.context.loaders
    if result.service is not None:
        loaders.services.prime(result.service.id, result.service)
    if result.staff is not None:
        loaders.staff.prime(result.staff.id, result.staff)
    # Whoever made (or replayed) it pays for it: the client secret is theirs.
    return BookingPayload(
        booking=Booking.of(result.booking, payer=True), manage_token=result.manage_token
    )


async def cancel_booking(info: Info, input: CancelBookingInput) -> BookingPayload:
    return await _booking_payload(
        booking.cancel_booking(
            info.context.engine,
            info.context.viewer_id,
            key_of(input.booking_id, "Booking"),
            input.reason,
            input.manage_token,
            info.context.now,
        ),
        input.manage_token,
    )


async def reschedule_booking(info: Info, input: RescheduleBookingInput) -> BookingPayload:
    staff_id, any_staff = _staff(input.staff_id)
    return await _booking_payload(
        booking.reschedule_booking(
            info.context.engine,
            info.context.slot_lock,
            info.context.viewer_id,
            key_of(input.booking_id, "Booking"),
            input.start,
            staff_id,
            any_staff,
            input.idempotency_key,
            input.manage_token,
            info.context.now,
        ),
        input.manage_token,
    )


async def confirm_booking(info: Info, booking_id: strawberry.ID) -> BookingPayload:
    viewer = info.context.require_viewer()
    return await _booking_payload(
        booking.confirm_booking(
            info.context.engine, viewer, key_of(booking_id, "Booking"), info.context.now
        )
    )


async def decline_booking(
    info: Info, booking_id: strawberry.ID, reason: str | None = None
) -> BookingPayload:
    viewer = info.context.require_viewer()
    return await _booking_payload(
        booking.decline_booking(
            info.context.engine, viewer, key_of(booking_id, "Booking"), reason, info.context.now
        )
    )


async def booking_by_id(
    info: Info, id: strawberry.ID, manage_token: str | None = None
) -> Booking | None:
    key = key_of(id, "Booking")
    if key is None:
        return None
    async with info.context.read() as conn:
        found = await booking.booking_and_roles(conn, key, info.context.viewer_id, manage_token)
    return Booking.as_read_by(*found) if found else None


def _booking_page_args(after: str | None) -> tuple[datetime, uuid.UUID] | None:
    if after is None:
        return None
    try:
        raw = decode_cursor(after)
        start_text, _, key = str(raw).partition("|")
        return datetime.fromisoformat(start_text), uuid.UUID(key)
    except ValueError:
        raise invalid_argument("`after` is not a cursor of this list.", "after") from None


def _connection(page: booking.Page, after_given: bool) -> BookingConnection:
    cursors = [encode_cursor(f"{b.start.isoformat()}|{b.id}") for b in page.bookings]
    return BookingConnection(
        edges=[
            BookingEdge(node=Booking.of(b), cursor=c)
            for b, c in zip(page.bookings, cursors, strict=True)
        ],
        page_info=page_info(cursors, page.has_next, after_given),
    )


async def my_bookings(
    info: Info,
    first: int | None = 20,
    after: str | None = None,
    status: list[BookingStatus] | None = None,
) -> BookingConnection:
    viewer = info.context.require_viewer()
    count = page_size(first, 20)
    cursor = _booking_page_args(after)
    async with info.context.read() as conn:
        page = await booking.bookings_page(
            conn, first=count, after=cursor, customer_id=viewer, statuses=status
        )
    return _connection(page, cursor is not None)


async def organization_bookings(
    info: Info,
    organization_id: uuid.UUID,
    first: int | None,
    after: str | None,
    start: datetime | None,
    end: datetime | None,
    status: list[BookingStatus] | None,
) -> BookingConnection:
    """OWNER/ADMIN see all; STAFF their own; anyone else is FORBIDDEN."""
    viewer = info.context.require_viewer()
    role = await viewer_role(info, organization_id)
    if role is None:
        raise forbidden("Only members of the organization see its bookings.")
    count = page_size(first, 50)
    cursor = _booking_page_args(after)
    async with info.context.read() as conn:
        staff_ids = None
        if role not in MANAGERS:
            staff_ids = await availability.staff_ids_of_user(conn, viewer)
        page = await booking.bookings_page(
            conn,
            first=count,
            after=cursor,
            organization_id=organization_id,
            staff_ids=staff_ids,
            start=start,
            end=end,
            statuses=status,
        )
    return _connection(page, cursor is not None)


async def confirm_payment(
    info: Info, booking_id: strawberry.ID, manage_token: str | None = None
) -> BookingPayload:
    """The server asks the payment provider itself (with the offline provider, this is
    where the test payment is made); the answer is the booking as it now stands."""
    try:
        paid = await payments.confirm_payment(
            info.context.engine,
            info.context.payments,
            info.context.viewer_id,
            key_of(booking_id, "Booking"),
            manage_token,
            info.context.now,
        )
    except DomainError as error:
        return BookingPayload(errors=UserError.list_from(error))
    # Anyone who may read the booking may ask; only its payer (the customer, the guest
    # with the token) is shown the client secret, not its staff member or an admin.
    async with info.context.read() as conn:
        found = await booking.booking_and_roles(conn, paid.id, info.context.viewer_id, manage_token)
    return BookingPayload(booking=Booking.as_read_by(*found) if found else Booking.of(paid))
