"""Organizations, services, staff and their schedules."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING, Annotated

import strawberry

from domain.availability import records as av
from domain.availability import service as availability
from domain.booking.records import BookingStatus
from domain.users import records as us
from infra.ids import to_global_id
from resolvers.access import can_manage_staff
from resolvers.organization_settings import organization_settings
from resolvers.paging import page_args, page_info
from resolvers.undelivered import organization_undelivered
from resolvers.webhooks import organization_webhook_endpoints
from schema.common import Money, Node, PageInfo, Weekday, encode_cursor
from schema.context import Info, forbidden, invalid_argument
from schema.organization_settings import OrganizationSettings
from schema.undelivered import UndeliveredMessage
from schema.webhooks import WebhookEndpoint

if TYPE_CHECKING:
    from schema.booking import BookingConnection


@strawberry.type(name="Organization")
class Organization(Node):
    record: strawberry.Private[us.Organization]
    name: str
    slug: str
    time_zone: str = strawberry.field(description='IANA name, e.g. "Europe/Berlin"')
    currency: str

    @classmethod
    def of(cls, record: us.Organization) -> Organization:
        return cls(
            id=strawberry.ID(to_global_id("Organization", record.id)),
            record=record,
            name=record.name,
            slug=record.slug,
            time_zone=record.time_zone,
            currency=record.currency,
        )

    @strawberry.field
    async def services(
        self, info: Info, first: int | None = 50, after: str | None = None
    ) -> ServiceConnection:
        count, key = page_args(first, after)
        async with info.context.read() as conn:
            rows = await availability.services_page(conn, self.record.id, count, key)
        shown = rows[:count]
        return ServiceConnection(
            edges=[ServiceEdge(node=Service.of(r), cursor=encode_cursor(r.id)) for r in shown],
            page_info=page_info(
                [encode_cursor(r.id) for r in shown], len(rows) > count, key is not None
            ),
        )

    @strawberry.field
    async def staff(
        self, info: Info, first: int | None = 50, after: str | None = None
    ) -> StaffConnection:
        count, key = page_args(first, after)
        async with info.context.read() as conn:
            rows = await availability.staff_page(conn, self.record.id, count, key)
        shown = rows[:count]
        return StaffConnection(
            edges=[StaffEdge(node=Staff.of(r), cursor=encode_cursor(r.id)) for r in shown],
            page_info=page_info(
                [encode_cursor(r.id) for r in shown], len(rows) > count, key is not None
            ),
        )

    @strawberry.field(description="OWNER/ADMIN only: the booking and refund policy.")  # type: ignore[untyped-decorator]
    async def settings(self, info: Info) -> OrganizationSettings:
        return await organization_settings(info, self.record)

    @strawberry.field(description="OWNER/ADMIN only: where its events are POSTed.")  # type: ignore[untyped-decorator]
    async def webhook_endpoints(self, info: Info) -> list[WebhookEndpoint]:
        return await organization_webhook_endpoints(info, self.record)

    @strawberry.field(  # type: ignore[untyped-decorator]
        description="OWNER/ADMIN only: the newest e-mails about its bookings that could not"
        " be delivered (retryMessage sends one again)."
    )
    async def undelivered_messages(self, info: Info) -> list[UndeliveredMessage]:
        return await organization_undelivered(info, self.record)

    @strawberry.field(description="Members (OWNER, ADMIN) see all; STAFF see their own.")  # type: ignore[untyped-decorator]
    async def bookings(
        self,
        info: Info,
        first: int | None = 50,
        after: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        status: list[BookingStatus] | None = None,
    ) -> Annotated[BookingConnection, strawberry.lazy("schema.booking")]:
        from resolvers.booking import organization_bookings

        return await organization_bookings(info, self.record.id, first, after, start, end, status)


@strawberry.type(name="Service")
class Service(Node):
    record: strawberry.Private[av.Service]
    name: str
    description: str | None
    duration_minutes: int
    buffer_before_minutes: int
    buffer_after_minutes: int
    slot_interval_minutes: int
    min_notice_minutes: int
    max_advance_days: int
    capacity: int = strawberry.field(
        description="Bookings one staff member takes at the same start (1 = one-to-one)."
    )
    requires_confirmation: bool

    @classmethod
    def of(cls, r: av.Service) -> Service:
        return cls(
            id=strawberry.ID(to_global_id("Service", r.id)),
            record=r,
            name=r.name,
            description=r.description,
            duration_minutes=r.duration_minutes,
            buffer_before_minutes=r.buffer_before_minutes,
            buffer_after_minutes=r.buffer_after_minutes,
            slot_interval_minutes=r.slot_interval_minutes,
            min_notice_minutes=r.min_notice_minutes,
            max_advance_days=r.max_advance_days,
            capacity=r.capacity,
            requires_confirmation=r.requires_confirmation,
        )

    @strawberry.field
    async def organization(self, info: Info) -> Organization:
        org = await info.context.loaders.organizations.load(self.record.organization_id)
        assert org is not None
        return Organization.of(org)

    @strawberry.field(description="Null when free.")  # type: ignore[untyped-decorator]
    async def price(self, info: Info) -> Money | None:
        if self.record.price_amount == 0:
            return None
        org = await info.context.loaders.organizations.load(self.record.organization_id)
        assert org is not None
        return Money(amount=self.record.price_amount, currency=org.currency)

    @strawberry.field
    async def staff(self, info: Info) -> list[Staff]:
        loaders = info.context.loaders
        ids = await loaders.staff_ids_of_service.load(self.record.id) or []
        return [Staff.of(s) for s in await loaders.staff.load_many(ids) if s is not None]


@strawberry.type(name="WorkingHours")
class WorkingHours:
    weekday: Weekday
    start: time = strawberry.field(description="Wall-clock time in the staff member's zone.")
    end: time


@strawberry.type(name="TimeInterval")
class TimeInterval:
    start: time
    end: time


@strawberry.type(name="DateOverride")
class DateOverride:
    date: date
    intervals: list[TimeInterval] = strawberry.field(
        description="Replaces the weekly hours of that date; empty = not working."
    )


@strawberry.type(name="Staff")
class Staff(Node):
    record: strawberry.Private[av.Staff]
    name: str
    time_zone: str = strawberry.field(description="Defaults to the organization's.")

    @classmethod
    def of(cls, r: av.Staff) -> Staff:
        return cls(
            id=strawberry.ID(to_global_id("Staff", r.id)),
            record=r,
            name=r.name,
            time_zone=r.time_zone,
        )

    @strawberry.field
    async def organization(self, info: Info) -> Organization:
        org = await info.context.loaders.organizations.load(self.record.organization_id)
        assert org is not None
        return Organization.of(org)

    @strawberry.field
    async def services(self, info: Info) -> list[Service]:
        loaders = info.context.loaders
        ids = await loaders.service_ids_of_staff.load(self.record.id) or []
        return [Service.of(s) for s in await loaders.services.load_many(ids) if s is not None]

    @strawberry.field
    async def weekly_schedule(self, info: Info) -> list[WorkingHours]:
        hours = await info.context.loaders.weekly_hours.load(self.record.id) or []
        return [WorkingHours(weekday=Weekday(h.weekday), start=h.start, end=h.end) for h in hours]

    @strawberry.field
    async def date_overrides(self, info: Info, start: date, end: date) -> list[DateOverride]:
        if end < start:
            raise invalid_argument("`end` must not be before `start`.", "end")
        if end - start > timedelta(days=366):
            raise invalid_argument("Ask for at most 366 days at once.", "end")
        found = await info.context.loaders.overrides.load((self.record.id, start, end))
        return [
            DateOverride(
                date=o.date, intervals=[TimeInterval(start=s, end=e) for s, e in o.intervals]
            )
            for o in found
        ]

    @strawberry.field(description="Members only: OWNER/ADMIN and the staff member.")  # type: ignore[untyped-decorator]
    async def time_off(self, info: Info, start: datetime, end: datetime) -> list[TimeOff]:
        if end <= start:
            raise invalid_argument("`end` must be after `start`.", "end")
        if not await can_manage_staff(info, self.record):
            raise forbidden("Only the organization's admins and this staff member see time off.")
        found = await info.context.loaders.time_off_of_staff.load(
            (self.record.id, self.record.organization_id, start, end)
        )
        return [TimeOff.of(t) for t in found]


@strawberry.type(name="TimeOff")
class TimeOff(Node):
    record: strawberry.Private[av.TimeOff]
    start: datetime
    end: datetime
    reason: str | None

    @classmethod
    def of(cls, r: av.TimeOff) -> TimeOff:
        return cls(
            id=strawberry.ID(to_global_id("TimeOff", r.id)),
            record=r,
            start=r.start,
            end=r.end,
            reason=r.reason,
        )

    @strawberry.field(description="Null: the whole organization is closed (holiday, blackout).")  # type: ignore[untyped-decorator]
    async def staff(self, info: Info) -> Staff | None:
        if self.record.staff_id is None:
            return None
        found = await info.context.loaders.staff.load(self.record.staff_id)
        return Staff.of(found) if found else None


@strawberry.type(name="ServiceEdge")
class ServiceEdge:
    node: Service
    cursor: str


@strawberry.type(name="ServiceConnection")
class ServiceConnection:
    edges: list[ServiceEdge]
    page_info: PageInfo


@strawberry.type(name="StaffEdge")
class StaffEdge:
    node: Staff
    cursor: str


@strawberry.type(name="StaffConnection")
class StaffConnection:
    edges: list[StaffEdge]
    page_info: PageInfo
