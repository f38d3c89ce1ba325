"""The catalog: services and the staff who give them."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Table, insert, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from domain import events
from domain.availability.reads import services_by_id, staff_by_id
from domain.availability.records import Service, Staff
from domain.availability.tables import (
    service_staff,
    services,
    staff,
)
from domain.errors import Problems
from domain.validation import is_email, is_time_zone
from infra.ids import uuid7

MAX_DURATION_MINUTES = 24 * 60


async def _all_of_org(
    conn: AsyncConnection,
    table: Table,
    org_id: uuid.UUID,
    ids: Sequence[uuid.UUID | None],
    field: str,
    problems: Problems,
    missing: str,
) -> None:
    """A problem at `field.i` for each of `ids` that is not a row of `table` (staff or
    services) in the organization."""
    known = set(
        await conn.scalars(
            select(table.c.id).where(
                table.c.organization_id == org_id,
                table.c.id.in_([i for i in ids if i is not None]),
            )
        )
    )
    for i, given in enumerate(ids):
        if given not in known:
            problems.add(f"{field}.{i}", missing)


@dataclass(frozen=True, slots=True)
class ServiceDraft:
    name: str
    description: str | None
    duration_minutes: int
    buffer_before_minutes: int
    buffer_after_minutes: int
    slot_interval_minutes: int | None
    min_notice_minutes: int
    max_advance_days: int
    capacity: int
    price_amount: int
    requires_confirmation: bool


def _check_draft(draft: ServiceDraft, problems: Problems) -> None:
    if not draft.name.strip():
        problems.add("input.name", "Enter a name.")
    if not 0 < draft.duration_minutes <= MAX_DURATION_MINUTES:
        problems.add("input.durationMinutes", "The duration must be 1 to 1440 minutes.")
    if draft.buffer_before_minutes < 0:
        problems.add("input.bufferBeforeMinutes", "A buffer cannot be negative.")
    if draft.buffer_after_minutes < 0:
        problems.add("input.bufferAfterMinutes", "A buffer cannot be negative.")
    if draft.slot_interval_minutes is not None and draft.slot_interval_minutes <= 0:
        problems.add("input.slotIntervalMinutes", "The slot interval must be positive.")
    if draft.min_notice_minutes < 0:
        problems.add("input.minNoticeMinutes", "The notice cannot be negative.")
    if draft.max_advance_days < 0:
        problems.add("input.maxAdvanceDays", "The booking horizon cannot be negative.")
    if draft.capacity < 1:
        problems.add("input.capacity", "The capacity must be at least 1.")
    if draft.price_amount < 0:
        problems.add("input.priceAmount", "The price cannot be negative.")


async def create_service(
    conn: AsyncConnection,
    org_id: uuid.UUID,
    draft: ServiceDraft,
    staff_ids: Sequence[uuid.UUID | None],
) -> Service:
    problems = Problems()
    _check_draft(draft, problems)
    await _all_of_org(
        conn,
        staff,
        org_id,
        staff_ids,
        "input.staffIds",
        problems,
        "No such staff member in this organization.",
    )
    problems.check()
    service_id = uuid7()
    await conn.execute(
        insert(services).values(
            id=service_id,
            organization_id=org_id,
            name=draft.name.strip(),
            description=draft.description,
            duration_minutes=draft.duration_minutes,
            buffer_before_minutes=draft.buffer_before_minutes,
            buffer_after_minutes=draft.buffer_after_minutes,
            slot_interval_minutes=draft.slot_interval_minutes or draft.duration_minutes,
            min_notice_minutes=draft.min_notice_minutes,
            max_advance_days=draft.max_advance_days,
            capacity=draft.capacity,
            price_amount=draft.price_amount,
            requires_confirmation=draft.requires_confirmation,
        )
    )
    if staff_ids:
        await conn.execute(
            pg_insert(service_staff)
            .values([{"service_id": service_id, "staff_id": s} for s in staff_ids])
            .on_conflict_do_nothing()
        )
    return (await services_by_id(conn, [service_id]))[service_id]


async def add_staff(
    conn: AsyncConnection,
    org_id: uuid.UUID,
    org_time_zone: str,
    name: str,
    email: str | None,
    time_zone: str | None,
    service_ids: Sequence[uuid.UUID | None],
    user_id: uuid.UUID | None,
) -> Staff:
    problems = Problems()
    if not name.strip():
        problems.add("input.name", "Enter a name.")
    if email is not None and not is_email(email.strip().lower()):
        problems.add("input.email", "Enter a valid e-mail address.")
    if time_zone is not None and not is_time_zone(time_zone):
        problems.add("input.timeZone", "Use an IANA time zone name, like 'Europe/Berlin'.")
    await _all_of_org(
        conn,
        services,
        org_id,
        service_ids,
        "input.serviceIds",
        problems,
        "No such service in this organization.",
    )
    problems.check()
    staff_id = uuid7()
    await conn.execute(
        insert(staff).values(
            id=staff_id,
            organization_id=org_id,
            name=name.strip(),
            email=email.strip().lower() if email else None,
            user_id=user_id,
            time_zone=time_zone or org_time_zone,
        )
    )
    if service_ids:
        await conn.execute(
            pg_insert(service_staff)
            .values([{"service_id": s, "staff_id": staff_id} for s in service_ids])
            .on_conflict_do_nothing()
        )
        await events.record(
            conn,
            events.AvailabilityChanged(
                org_id, (staff_id,), tuple(s for s in service_ids if s), None, None
            ),
        )
    return (await staff_by_id(conn, [staff_id]))[staff_id]


async def link_staff_user(conn: AsyncConnection, email: str, user_id: uuid.UUID) -> None:
    """A person with this e-mail signed up: they are the staff member(s) named so."""
    await conn.execute(
        staff.update()
        .where(staff.c.email == email.strip().lower(), staff.c.user_id.is_(None))
        .values(user_id=user_id)
    )
