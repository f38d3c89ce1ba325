"""Reads of the catalog and the schedules, each taking many keys: the dataloaders call
these (one statement per batch)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import date, datetime, time

from sqlalchemy import Column, and_, or_, select
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import ColumnElement

from domain.availability.records import DateOverride, Service, Staff, TimeOff, WorkingHours
from domain.availability.tables import (
    date_override_intervals,
    date_overrides,
    service_staff,
    services,
    staff,
    time_off,
    working_hours,
)
from domain.kept import KeptRecords
from infra.database import driver


def service_from_row(row: RowMapping) -> Service:
    return Service(**{f: row[f] for f in Service.__slots__})


def staff_from_row(row: RowMapping) -> Staff:
    return Staff(**{f: row[f] for f in Staff.__slots__})


def time_off_from_row(row: RowMapping) -> TimeOff:
    return TimeOff(
        id=row["id"],
        organization_id=row["organization_id"],
        staff_id=row["staff_id"],
        start=row["start_at"],
        end=row["end_at"],
        reason=row["reason"],
    )


async def services_by_id(
    conn: AsyncConnection, ids: Iterable[uuid.UUID]
) -> dict[uuid.UUID, Service]:
    rows = await (await driver(conn)).fetch(
        "SELECT * FROM services WHERE id = ANY($1::uuid[])", list(ids)
    )
    return {row["id"]: service_from_row(row) for row in rows}


_SERVICES: KeptRecords[uuid.UUID, Service] = KeptRecords(seconds=60, most=10_000)


async def service_by_id(conn: AsyncConnection, service_id: uuid.UUID) -> Service | None:
    """One service, kept in memory a minute (services are not edited: domain/kept.py)."""

    async def load(key: uuid.UUID) -> Service | None:
        return (await services_by_id(conn, [key])).get(key)

    return await _SERVICES.get_or_load(service_id, load)


async def staff_by_id(conn: AsyncConnection, ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, Staff]:
    rows = (await conn.execute(select(staff).where(staff.c.id.in_(list(ids))))).mappings()
    return {row["id"]: staff_from_row(row) for row in rows}


async def staff_emails(conn: AsyncConnection, ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, str]:
    """The address each staff member was added with (those without one are left out):
    where their booking messages go unless their linked account has its own."""
    rows = await conn.execute(
        select(staff.c.id, staff.c.email).where(
            staff.c.id.in_(list(ids)), staff.c.email.is_not(None)
        )
    )
    return {row.id: row.email for row in rows}


async def time_off_by_id(
    conn: AsyncConnection, ids: Iterable[uuid.UUID]
) -> dict[uuid.UUID, TimeOff]:
    rows = (await conn.execute(select(time_off).where(time_off.c.id.in_(list(ids))))).mappings()
    return {row["id"]: time_off_from_row(row) for row in rows}


async def _linked(
    conn: AsyncConnection, by: Column[uuid.UUID], to: Column[uuid.UUID], keys: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[uuid.UUID]]:
    """service_staff read one way round: for each of `keys` (in `by`), its `to` ids."""
    rows = await conn.execute(select(by, to).where(by.in_(keys)).order_by(by, to))
    out: dict[uuid.UUID, list[uuid.UUID]] = {k: [] for k in keys}
    for key, value in rows:
        out[key].append(value)
    return out


async def staff_ids_of_services(
    conn: AsyncConnection, service_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[uuid.UUID]]:
    return await _linked(conn, service_staff.c.service_id, service_staff.c.staff_id, service_ids)


async def service_ids_of_staff(
    conn: AsyncConnection, staff_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[uuid.UUID]]:
    return await _linked(conn, service_staff.c.staff_id, service_staff.c.service_id, staff_ids)


async def staff_ids_of_user(conn: AsyncConnection, user_id: uuid.UUID) -> list[uuid.UUID]:
    return list(await conn.scalars(select(staff.c.id).where(staff.c.user_id == user_id)))


async def services_page(
    conn: AsyncConnection, org_id: uuid.UUID, first: int, after: uuid.UUID | None
) -> list[Service]:
    """`first + 1` rows in creation order: the extra one tells whether there is more."""
    query = select(services).where(services.c.organization_id == org_id)
    if after is not None:
        query = query.where(services.c.id > after)
    rows = (await conn.execute(query.order_by(services.c.id).limit(first + 1))).mappings()
    return [service_from_row(r) for r in rows]


async def staff_page(
    conn: AsyncConnection, org_id: uuid.UUID, first: int, after: uuid.UUID | None
) -> list[Staff]:
    query = select(staff).where(staff.c.organization_id == org_id)
    if after is not None:
        query = query.where(staff.c.id > after)
    rows = (await conn.execute(query.order_by(staff.c.id).limit(first + 1))).mappings()
    return [staff_from_row(r) for r in rows]


async def weekly_hours_of_staff(
    conn: AsyncConnection, staff_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[WorkingHours]]:
    rows = await conn.execute(
        select(working_hours)
        .where(working_hours.c.staff_id.in_(staff_ids))
        .order_by(working_hours.c.staff_id, working_hours.c.weekday, working_hours.c.start_time)
    )
    out: dict[uuid.UUID, list[WorkingHours]] = {s: [] for s in staff_ids}
    for staff_id, weekday, start, end in rows:
        out[staff_id].append(WorkingHours(weekday, start, end))
    return out


async def overrides_of_staff(
    conn: AsyncConnection, staff_ids: Sequence[uuid.UUID], first: date, last: date
) -> dict[uuid.UUID, list[DateOverride]]:
    """Date overrides with `first <= date <= last`, by staff member, oldest first."""
    rows = await conn.execute(
        select(
            date_overrides.c.staff_id,
            date_overrides.c.date,
            date_override_intervals.c.start_time,
            date_override_intervals.c.end_time,
        )
        .select_from(
            date_overrides.outerjoin(
                date_override_intervals,
                and_(
                    date_override_intervals.c.staff_id == date_overrides.c.staff_id,
                    date_override_intervals.c.date == date_overrides.c.date,
                ),
            )
        )
        .where(
            date_overrides.c.staff_id.in_(staff_ids),
            date_overrides.c.date >= first,
            date_overrides.c.date <= last,
        )
        .order_by(
            date_overrides.c.staff_id, date_overrides.c.date, date_override_intervals.c.start_time
        )
    )
    grouped: dict[tuple[uuid.UUID, date], list[tuple[time, time]]] = {}
    for staff_id, day, start, end in rows:
        intervals = grouped.setdefault((staff_id, day), [])
        if start is not None:
            intervals.append((start, end))
    out: dict[uuid.UUID, list[DateOverride]] = {s: [] for s in staff_ids}
    for (staff_id, day), intervals in grouped.items():
        out[staff_id].append(DateOverride(day, tuple(intervals)))
    return out


async def time_off_in(
    conn: AsyncConnection,
    staff_ids: Sequence[uuid.UUID],
    start: datetime,
    end: datetime,
    org_id: uuid.UUID | None = None,
) -> list[TimeOff]:
    """Time off of these staff (and of the whole organization, when given) overlapping
    [start, end), oldest first."""
    owner: ColumnElement[bool] = time_off.c.staff_id.in_(staff_ids)
    if org_id is not None:
        owner = or_(
            owner, and_(time_off.c.organization_id == org_id, time_off.c.staff_id.is_(None))
        )
    rows = (
        await conn.execute(
            select(time_off)
            .where(owner, time_off.c.start_at < end, time_off.c.end_at > start)
            .order_by(time_off.c.start_at, time_off.c.id)
        )
    ).mappings()
    return [time_off_from_row(r) for r in rows]
