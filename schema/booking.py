"""Bookings, holds and their payloads."""

from __future__ import annotations

import uuid
from datetime import datetime

import strawberry

from domain.booking import records as bk
from domain.booking import service as booking
from infra.ids import to_global_id
from schema.catalog import Service, Staff
from schema.common import Money, Node, PageInfo, UserError
from schema.context import Info
from schema.identity import User
from schema.payment import Payment

BookingStatus = strawberry.enum(bk.BookingStatus, name="BookingStatus")


async def service_of(info: Info, service_id: uuid.UUID) -> Service:
    found = await info.context.loaders.services.load(service_id)
    assert found is not None  # a booking or hold always names an existing service
    return Service.of(found)


async def staff_of(info: Info, staff_id: uuid.UUID) -> Staff:
    found = await info.context.loaders.staff.load(staff_id)
    assert found is not None
    return Staff.of(found)


@strawberry.type(name="BookingChange")
class BookingChange:
    at: datetime
    status: BookingStatus  # type: ignore[valid-type]
    start: datetime
    end: datetime
    actor: str = strawberry.field(
        description='"customer", "guest", "staff", "admin", "system" or "payment"'
    )
    reason: str | None


@strawberry.type(name="Booking")
class Booking(Node):
    record: strawberry.Private[bk.Booking]
    # Whoever pays for it (its customer, its guest with the manage token, the request
    # that made it) is shown the payment's client secret.
    payer: strawberry.Private[bool]
    # What the viewer was found to be to it where the resolver asked (the customer, the
    # guest holding its manage token, its staff member, an admin): schema/access_rules.py
    # trusts these, and otherwise works it out from the viewer.
    roles: strawberry.Private[frozenset[bk.Actor]] = frozenset()
    reference: str = strawberry.field(description="Short, human-readable, unique.")
    status: BookingStatus  # type: ignore[valid-type]
    guest_name: str | None
    guest_email: str | None
    start: datetime
    end: datetime
    notes: str | None
    expires_at: datetime | None = strawberry.field(description="Set while PENDING_PAYMENT.")
    created_at: datetime
    cancelled_at: datetime | None
    cancellation_reason: str | None

    @classmethod
    def of(
        cls, r: bk.Booking, *, payer: bool = False, roles: frozenset[bk.Actor] = frozenset()
    ) -> Booking:
        return cls(
            id=strawberry.ID(to_global_id("Booking", r.id)),
            record=r,
            payer=payer,
            roles=roles,
            reference=r.reference,
            status=r.status,
            guest_name=r.guest_name,
            guest_email=r.guest_email,
            start=r.start,
            end=r.end,
            notes=r.notes,
            expires_at=r.expires_at,
            created_at=r.created_at,
            cancelled_at=r.cancelled_at,
            cancellation_reason=r.cancellation_reason,
        )

    @classmethod
    def as_read_by(cls, r: bk.Booking, roles: frozenset[bk.Actor]) -> Booking:
        """The booking for someone who is `roles` to it: its payer sees the secret."""
        return cls.of(r, payer=bool(roles & booking.PAYERS), roles=roles)

    @strawberry.field
    async def service(self, info: Info) -> Service:
        return await service_of(info, self.record.service_id)

    @strawberry.field
    async def staff(self, info: Info) -> Staff:
        return await staff_of(info, self.record.staff_id)

    @strawberry.field(description="Null for a guest booking.")  # type: ignore[untyped-decorator]
    async def customer(self, info: Info) -> User | None:
        if self.record.customer_id is None:
            return None
        found = await info.context.loaders.users.load(self.record.customer_id)
        # Shown to whoever may read the booking: its contact details are theirs to see.
        return User.of(found, contact=True) if found else None

    @strawberry.field
    def price(self) -> Money | None:
        if self.record.price_amount == 0:
            return None
        return Money(amount=self.record.price_amount, currency=self.record.currency)

    @strawberry.field(description="Null for a free booking.")  # type: ignore[untyped-decorator]
    async def payment(self, info: Info) -> Payment | None:
        if self.record.price_amount == 0:
            return None  # free: nothing to load
        found = await info.context.loaders.payments.load(self.record.id)
        if found is None:
            return None
        viewer = info.context.viewer_id
        payer = self.payer or (viewer is not None and viewer == self.record.customer_id)
        return Payment.of(found, payer=payer)

    @strawberry.field(description="Oldest first: every status or time change, and who made it.")  # type: ignore[untyped-decorator]
    async def history(self, info: Info) -> list[BookingChange]:
        changes = await info.context.loaders.history.load(self.record.id) or []
        return [
            BookingChange(
                at=c.at,
                status=c.status,
                start=c.start,
                end=c.end,
                actor=c.actor.value,
                reason=c.reason,
            )
            for c in changes
        ]


@strawberry.type(name="Hold")
class Hold:
    record: strawberry.Private[bk.Hold]
    id: strawberry.ID
    start: datetime
    end: datetime
    expires_at: datetime

    @classmethod
    def of(cls, r: bk.Hold) -> Hold:
        return cls(
            record=r,
            id=strawberry.ID(to_global_id("Hold", r.id)),
            start=r.start,
            end=r.end,
            expires_at=r.expires_at,
        )

    @strawberry.field
    async def service(self, info: Info) -> Service:
        return await service_of(info, self.record.service_id)

    @strawberry.field
    async def staff(self, info: Info) -> Staff:
        return await staff_of(info, self.record.staff_id)


@strawberry.type(name="BookingEdge")
class BookingEdge:
    node: Booking
    cursor: str


@strawberry.type(name="BookingConnection")
class BookingConnection:
    edges: list[BookingEdge]
    page_info: PageInfo


@strawberry.type
class HoldPayload:
    hold: Hold | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class BookingPayload:
    booking: Booking | None = None
    manage_token: str | None = strawberry.field(
        default=None,
        description="Only on createBooking for a guest: lets the guest cancel or reschedule.",
    )
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.input
class GuestInput:
    name: str
    email: str
    phone: str | None = None


@strawberry.input
class HoldSlotInput:
    service_id: strawberry.ID
    start: datetime
    staff_id: strawberry.ID | None = None


@strawberry.input
class CreateBookingInput:
    service_id: strawberry.ID
    start: datetime
    staff_id: strawberry.ID | None = strawberry.field(
        default=None, description="Null: any staff member who can take the slot."
    )
    idempotency_key: str = strawberry.field(
        description="Same key + same input = the same booking, however often it is sent."
    )
    hold_id: strawberry.ID | None = strawberry.field(
        default=None, description="Turn a hold into the booking."
    )
    notes: str | None = None
    guest: GuestInput | None = strawberry.field(
        default=None, description="Required when not signed in; ignored when signed in."
    )


@strawberry.input
class CancelBookingInput:
    booking_id: strawberry.ID
    reason: str | None = None
    manage_token: str | None = None


@strawberry.input
class RescheduleBookingInput:
    booking_id: strawberry.ID
    start: datetime
    staff_id: strawberry.ID | None = None
    idempotency_key: str
    manage_token: str | None = None
