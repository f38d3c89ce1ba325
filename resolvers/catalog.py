"""The catalog a business sets up: organizations, services, staff, schedules, time off."""

from __future__ import annotations

import uuid

import strawberry
from sqlalchemy.ext.asyncio import AsyncConnection

from domain.availability import records as av
from domain.availability import service as availability
from domain.errors import DomainError, ErrorCode
from domain.users import records as us
from domain.users import service as users
from infra.ids import key_of
from resolvers.attempt import attempt, key
from schema.catalog import Organization, Service, Staff, TimeOff
from schema.catalog_inputs import (
    AddStaffInput,
    AddTimeOffInput,
    CreateOrganizationInput,
    CreateServiceInput,
    OrganizationPayload,
    ServicePayload,
    SetDateOverrideInput,
    SetWeeklyScheduleInput,
    StaffPayload,
    TimeOffPayload,
)
from schema.context import Info


async def create_organization(info: Info, input: CreateOrganizationInput) -> OrganizationPayload:
    viewer = info.context.require_viewer()

    async def work(conn: AsyncConnection) -> us.Organization:
        return await users.create_organization(
            conn, viewer, input.name, input.slug, input.time_zone, input.currency
        )

    org, errors = await attempt(info, work)
    return OrganizationPayload(organization=Organization.of(org) if org else None, errors=errors)


async def _managed_org(
    conn: AsyncConnection, viewer: uuid.UUID, org_global_id: str
) -> us.Organization:
    org_id = key(org_global_id, "Organization", "input.organizationId")
    org = (await users.organizations_by_id(conn, [org_id])).get(org_id)
    if org is None:
        raise DomainError(ErrorCode.NOT_FOUND, "No such organization.", "input.organizationId")
    await users.require_manager(conn, viewer, org.id)
    return org


async def _managed_staff(
    conn: AsyncConnection, viewer: uuid.UUID, staff_global_id: str
) -> av.Staff:
    staff_id = key(staff_global_id, "Staff", "input.staffId")
    found = (await availability.staff_by_id(conn, [staff_id])).get(staff_id)
    if found is None:
        raise DomainError(ErrorCode.NOT_FOUND, "No such staff member.", "input.staffId")
    await users.require_manager(conn, viewer, found.organization_id)
    return found


def _keys(ids: list[strawberry.ID] | None, type_name: str) -> list[uuid.UUID | None]:
    return [key_of(i, type_name) for i in ids or []]


async def create_service(info: Info, input: CreateServiceInput) -> ServicePayload:
    viewer = info.context.require_viewer()

    def default(value: int | None, fallback: int) -> int:
        return fallback if value is None else value

    draft = availability.ServiceDraft(
        name=input.name,
        description=input.description,
        duration_minutes=input.duration_minutes,
        buffer_before_minutes=default(input.buffer_before_minutes, 0),
        buffer_after_minutes=default(input.buffer_after_minutes, 0),
        slot_interval_minutes=input.slot_interval_minutes,
        min_notice_minutes=default(input.min_notice_minutes, 0),
        max_advance_days=default(input.max_advance_days, 60),
        capacity=default(input.capacity, 1),
        price_amount=default(input.price_amount, 0),
        requires_confirmation=bool(input.requires_confirmation),
    )

    async def work(conn: AsyncConnection) -> av.Service:
        org = await _managed_org(conn, viewer, input.organization_id)
        return await availability.create_service(
            conn, org.id, draft, _keys(input.staff_ids, "Staff")
        )

    service, errors = await attempt(info, work)
    return ServicePayload(service=Service.of(service) if service else None, errors=errors)


async def add_staff(info: Info, input: AddStaffInput) -> StaffPayload:
    viewer = info.context.require_viewer()

    async def work(conn: AsyncConnection) -> av.Staff:
        org = await _managed_org(conn, viewer, input.organization_id)
        user_id = None
        if input.email:
            user_id = await users.invite(conn, org.id, input.email, us.Role.STAFF)
        return await availability.add_staff(
            conn,
            org.id,
            org.time_zone,
            input.name,
            input.email,
            input.time_zone,
            _keys(input.service_ids, "Service"),
            user_id,
        )

    staff, errors = await attempt(info, work)
    return StaffPayload(staff=Staff.of(staff) if staff else None, errors=errors)


async def set_weekly_schedule(info: Info, input: SetWeeklyScheduleInput) -> StaffPayload:
    viewer = info.context.require_viewer()

    async def work(conn: AsyncConnection) -> av.Staff:
        staff = await _managed_staff(conn, viewer, input.staff_id)
        hours = [av.WorkingHours(h.weekday.value, h.start, h.end) for h in input.hours]
        await availability.set_weekly_schedule(conn, staff, hours)
        return staff

    staff, errors = await attempt(info, work)
    return StaffPayload(staff=Staff.of(staff) if staff else None, errors=errors)


async def set_date_override(info: Info, input: SetDateOverrideInput) -> StaffPayload:
    viewer = info.context.require_viewer()

    async def work(conn: AsyncConnection) -> av.Staff:
        staff = await _managed_staff(conn, viewer, input.staff_id)
        intervals = [(i.start, i.end) for i in input.intervals]
        await availability.set_date_override(conn, staff, input.date, intervals)
        return staff

    staff, errors = await attempt(info, work)
    return StaffPayload(staff=Staff.of(staff) if staff else None, errors=errors)


async def add_time_off(info: Info, input: AddTimeOffInput) -> TimeOffPayload:
    viewer = info.context.require_viewer()

    async def work(conn: AsyncConnection) -> av.TimeOff:
        org = await _managed_org(conn, viewer, input.organization_id)
        staff_id = None
        if input.staff_id is not None:
            staff_id = key(input.staff_id, "Staff", "input.staffId")
        return await availability.add_time_off(
            conn, org.id, staff_id, input.start, input.end, input.reason
        )

    time_off, errors = await attempt(info, work)
    return TimeOffPayload(time_off=TimeOff.of(time_off) if time_off else None, errors=errors)


async def organization(info: Info, slug: str) -> Organization | None:
    org = await info.context.loaders.organizations_by_slug.load(slug)
    if org is None:
        return None
    info.context.loaders.organizations.prime(org.id, org)
    return Organization.of(org)


async def service(info: Info, id: strawberry.ID) -> Service | None:
    service_id = key_of(id, "Service")
    found = await info.context.loaders.services.load(service_id) if service_id else None
    return Service.of(found) if found else None
