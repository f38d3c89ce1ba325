"""The availability domain's public API: the catalog, schedules and offered slots."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache

import orjson
from sqlalchemy import and_, delete, insert, or_, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import ColumnElement

from domain import events
from domain.availability import engine
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
from domain.errors import DomainError, ErrorCode, Problems
from domain.kept import KeptRecords
from domain.validation import is_email, is_time_zone
from infra.database import driver
from infra.ids import uuid7

MAX_WINDOW = timedelta(days=62)
MAX_DURATION_MINUTES = 24 * 60


def _service(row: RowMapping) -> Service:
    return Service(**{f: row[f] for f in Service.__slots__})


def _staff(row: RowMapping) -> Staff:
    return Staff(**{f: row[f] for f in Staff.__slots__})


def _time_off(row: RowMapping) -> TimeOff:
    return TimeOff(
        id=row["id"],
        organization_id=row["organization_id"],
        staff_id=row["staff_id"],
        start=row["start_at"],
        end=row["end_at"],
        reason=row["reason"],
    )


# ---- catalog ------------------------------------------------------------------------------


async def _staff_of_org(
    conn: AsyncConnection,
    org_id: uuid.UUID,
    staff_ids: Sequence[uuid.UUID | None],
    field: str,
    problems: Problems,
) -> None:
    known = set(
        await conn.scalars(
            select(staff.c.id).where(
                staff.c.organization_id == org_id,
                staff.c.id.in_([s for s in staff_ids if s is not None]),
            )
        )
    )
    for i, sid in enumerate(staff_ids):
        if sid not in known:
            problems.add(f"{field}.{i}", "No such staff member in this organization.")


async def _services_of_org(
    conn: AsyncConnection,
    org_id: uuid.UUID,
    service_ids: Sequence[uuid.UUID | None],
    field: str,
    problems: Problems,
) -> None:
    known = set(
        await conn.scalars(
            select(services.c.id).where(
                services.c.organization_id == org_id,
                services.c.id.in_([s for s in service_ids if s is not None]),
            )
        )
    )
    for i, sid in enumerate(service_ids):
        if sid not in known:
            problems.add(f"{field}.{i}", "No such service in this organization.")


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
    await _staff_of_org(conn, org_id, staff_ids, "input.staffIds", problems)
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
    await _services_of_org(conn, org_id, service_ids, "input.serviceIds", problems)
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


def _check_intervals(
    intervals: Sequence[tuple[time, time]], field: str, problems: Problems
) -> None:
    """End after start, and no two intervals of one day overlap."""
    indexed = sorted(range(len(intervals)), key=lambda i: intervals[i])
    previous_end: time | None = None
    for i in indexed:
        start, end = intervals[i]
        if end <= start:
            problems.add(f"{field}.{i}.end", "The end must be after the start.")
            continue
        if previous_end is not None and start < previous_end:
            problems.add(f"{field}.{i}.start", "This interval overlaps another one of that day.")
        previous_end = end if previous_end is None else max(previous_end, end)


async def set_weekly_schedule(
    conn: AsyncConnection, member: Staff, hours: Sequence[WorkingHours]
) -> None:
    staff_id = member.id
    problems = Problems()
    for weekday in range(7):
        positions = [i for i, h in enumerate(hours) if h.weekday == weekday]
        day = [(hours[i].start, hours[i].end) for i in positions]
        day_problems = Problems()
        _check_intervals(day, "", day_problems)
        for field, message in day_problems.items:
            # field is ".{k}.start": map the day's k back to the input's position.
            _, k, leaf = (field or "").split(".")
            problems.add(f"input.hours.{positions[int(k)]}.{leaf}", message)
    problems.check()
    await conn.execute(delete(working_hours).where(working_hours.c.staff_id == staff_id))
    if hours:
        await conn.execute(
            insert(working_hours).values(
                [
                    {
                        "staff_id": staff_id,
                        "weekday": h.weekday,
                        "start_time": h.start,
                        "end_time": h.end,
                    }
                    for h in hours
                ]
            )
        )
    await events.record(
        conn, events.AvailabilityChanged(member.organization_id, (staff_id,), None, None, None)
    )


async def set_date_override(
    conn: AsyncConnection, member: Staff, day: date, intervals: Sequence[tuple[time, time]]
) -> None:
    staff_id = member.id
    problems = Problems()
    _check_intervals(intervals, "input.intervals", problems)
    problems.check()
    await conn.execute(
        pg_insert(date_overrides).values(staff_id=staff_id, date=day).on_conflict_do_nothing()
    )
    await conn.execute(
        delete(date_override_intervals).where(
            date_override_intervals.c.staff_id == staff_id, date_override_intervals.c.date == day
        )
    )
    if intervals:
        await conn.execute(
            insert(date_override_intervals).values(
                [
                    {"staff_id": staff_id, "date": day, "start_time": s, "end_time": e}
                    for s, e in intervals
                ]
            )
        )
    # The local day lies within a day of the UTC one, whatever the staff member's zone.
    around = datetime.combine(day, time(0), UTC)
    await events.record(
        conn,
        events.AvailabilityChanged(
            member.organization_id,
            (staff_id,),
            None,
            around - timedelta(days=1),
            around + timedelta(days=2),
        ),
    )


async def add_time_off(
    conn: AsyncConnection,
    org_id: uuid.UUID,
    staff_id: uuid.UUID | None,
    start: datetime,
    end: datetime,
    reason: str | None,
) -> TimeOff:
    problems = Problems()
    if end <= start:
        problems.add("input.end", "The end must be after the start.")
    if staff_id is not None:
        known = await conn.scalar(
            select(staff.c.id).where(staff.c.id == staff_id, staff.c.organization_id == org_id)
        )
        if known is None:
            problems.add("input.staffId", "No such staff member in this organization.")
    problems.check()
    row = (
        (
            await conn.execute(
                insert(time_off)
                .values(
                    id=uuid7(),
                    organization_id=org_id,
                    staff_id=staff_id,
                    start_at=start,
                    end_at=end,
                    reason=reason,
                )
                .returning(*time_off.c)
            )
        )
        .mappings()
        .one()
    )
    await events.record(
        conn,
        events.AvailabilityChanged(
            org_id, None if staff_id is None else (staff_id,), None, start, end
        ),
    )
    return _time_off(row)


# ---- reads (each takes many keys: the dataloaders call these) --------------------------------


async def services_by_id(
    conn: AsyncConnection, ids: Iterable[uuid.UUID]
) -> dict[uuid.UUID, Service]:
    rows = await (await driver(conn)).fetch(
        "SELECT * FROM services WHERE id = ANY($1::uuid[])", list(ids)
    )
    return {row["id"]: _service(row) for row in rows}


_SERVICES: KeptRecords[uuid.UUID, Service] = KeptRecords(seconds=60, most=10_000)


async def service_by_id(conn: AsyncConnection, service_id: uuid.UUID) -> Service | None:
    """One service, kept in memory a minute (services are not edited: domain/kept.py)."""

    async def load(key: uuid.UUID) -> Service | None:
        return (await services_by_id(conn, [key])).get(key)

    return await _SERVICES.get_or_load(service_id, load)


async def staff_by_id(conn: AsyncConnection, ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, Staff]:
    rows = (await conn.execute(select(staff).where(staff.c.id.in_(list(ids))))).mappings()
    return {row["id"]: _staff(row) for row in rows}


async def time_off_by_id(
    conn: AsyncConnection, ids: Iterable[uuid.UUID]
) -> dict[uuid.UUID, TimeOff]:
    rows = (await conn.execute(select(time_off).where(time_off.c.id.in_(list(ids))))).mappings()
    return {row["id"]: _time_off(row) for row in rows}


async def staff_ids_of_services(
    conn: AsyncConnection, service_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[uuid.UUID]]:
    rows = await conn.execute(
        select(service_staff.c.service_id, service_staff.c.staff_id)
        .where(service_staff.c.service_id.in_(service_ids))
        .order_by(service_staff.c.service_id, service_staff.c.staff_id)
    )
    out: dict[uuid.UUID, list[uuid.UUID]] = {s: [] for s in service_ids}
    for service_id, staff_id in rows:
        out[service_id].append(staff_id)
    return out


async def service_ids_of_staff(
    conn: AsyncConnection, staff_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[uuid.UUID]]:
    rows = await conn.execute(
        select(service_staff.c.staff_id, service_staff.c.service_id)
        .where(service_staff.c.staff_id.in_(staff_ids))
        .order_by(service_staff.c.staff_id, service_staff.c.service_id)
    )
    out: dict[uuid.UUID, list[uuid.UUID]] = {s: [] for s in staff_ids}
    for staff_id, service_id in rows:
        out[staff_id].append(service_id)
    return out


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
    return [_service(r) for r in rows]


async def staff_page(
    conn: AsyncConnection, org_id: uuid.UUID, first: int, after: uuid.UUID | None
) -> list[Staff]:
    query = select(staff).where(staff.c.organization_id == org_id)
    if after is not None:
        query = query.where(staff.c.id > after)
    rows = (await conn.execute(query.order_by(staff.c.id).limit(first + 1))).mappings()
    return [_staff(r) for r in rows]


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
    return [_time_off(r) for r in rows]


# ---- availability -------------------------------------------------------------------------


# (connection, staff ids, start, end) -> live claims on those staff touching [start, end)
ClaimsLoader = Callable[
    [AsyncConnection, list[uuid.UUID], datetime, datetime],
    Awaitable[dict[uuid.UUID, list[engine.Claim]]],
]


@dataclass(frozen=True, slots=True)
class Offer:
    """The slots offered in a window, and the staff members they name."""

    slots: list[engine.Slot]
    staff: dict[str, Staff]


def check_window(start: datetime, end: datetime) -> None:
    if end <= start:
        raise DomainError(ErrorCode.INVALID_INPUT, "The end must be after the start.", "end")
    if end - start > MAX_WINDOW:
        raise DomainError(ErrorCode.INVALID_INPUT, "Ask for at most 62 days at once.", "end")


async def availability(
    conn: AsyncConnection,
    service: Service,
    start: datetime,
    end: datetime,
    staff_id: uuid.UUID | None,
    now: datetime,
    claims: ClaimsLoader | None = None,
) -> Offer:
    """Offered slots of `service` in [start, end): four SQL statements whatever the
    number of staff or days."""
    check_window(start, end)
    # Buffers reach outside the window: time off there can still block a slot inside.
    reach = timedelta(
        minutes=service.buffer_before_minutes
        + service.buffer_after_minutes
        + service.duration_minutes
    )
    inputs = await _calendar_inputs(conn, service, staff_id, start, end, reach)
    members = inputs.members
    if not members:
        return Offer([], {})
    ids = [m.id for m in members]
    claimed = await claims(conn, ids, start - reach, end + reach) if claims else {}
    calendars = [
        engine.StaffCalendar(
            staff_id=str(m.id),
            time_zone=m.time_zone,
            weekly=inputs.weekly.get(m.id, {}),
            overrides=inputs.overrides.get(m.id, {}),
            time_off=inputs.time_off.get(m.id, []),
            claims=claimed.get(m.id, ()),
        )
        for m in members
    ]
    slots = engine.find_slots(rules_of(service), calendars, inputs.org_time_off, start, end, now)
    return Offer(slots, {str(m.id): m for m in members})


# Everything the engine needs about the service's staff, in one round trip. Times off
# arrive as whole epoch seconds (start rounded down, end up): the engine wants plain
# integers, and PostgreSQL converts thousands of rows faster than Python builds them.
_CALENDAR_INPUTS = """
WITH members AS (
    SELECT s.id, s.organization_id, s.name, s.time_zone, s.user_id
    FROM staff s JOIN service_staff ss ON ss.staff_id = s.id
    WHERE ss.service_id = $1 AND ($2::uuid IS NULL OR s.id = $2::uuid)
)
SELECT
  (SELECT coalesce(json_agg(json_build_array(
       m.id, m.organization_id, m.name, m.time_zone, m.user_id)), '[]'::json)
   FROM members m),
  (SELECT coalesce(json_agg(json_build_array(
       w.staff_id, w.weekday, w.start_time, w.end_time)), '[]'::json)
   FROM working_hours w WHERE w.staff_id IN (SELECT id FROM members)),
  (SELECT coalesce(json_agg(json_build_array(
       o.staff_id, o.date, i.start_time, i.end_time)), '[]'::json)
   FROM date_overrides o
   LEFT JOIN date_override_intervals i ON i.staff_id = o.staff_id AND i.date = o.date
   WHERE o.staff_id IN (SELECT id FROM members) AND o.date BETWEEN $3 AND $4),
  (SELECT coalesce(json_agg(json_build_array(
       t.staff_id,
       floor(extract(epoch FROM t.start_at))::bigint,
       ceil(extract(epoch FROM t.end_at))::bigint)), '[]'::json)
   FROM time_off t
   WHERE (t.staff_id IN (SELECT id FROM members)
          OR (t.organization_id = $5 AND t.staff_id IS NULL))
     AND t.start_at < $7 AND t.end_at > $6)
"""


@dataclass(slots=True)
class CalendarInputs:
    members: list[Staff]
    weekly: dict[uuid.UUID, dict[int, list[tuple[time, time]]]]
    overrides: dict[uuid.UUID, dict[date, list[tuple[time, time]]]]
    time_off: dict[uuid.UUID, list[tuple[int, int]]]
    org_time_off: list[tuple[int, int]]


@lru_cache(maxsize=4096)
def _time(text_value: str) -> time:
    return time.fromisoformat(text_value)


async def _calendar_inputs(
    conn: AsyncConnection,
    service: Service,
    staff_id: uuid.UUID | None,
    start: datetime,
    end: datetime,
    reach: timedelta,
) -> CalendarInputs:
    row = await (await driver(conn)).fetchrow(
        _CALENDAR_INPUTS,
        service.id,
        staff_id,
        # Local dates of the window in any zone lie within a day of its UTC dates.
        (start - timedelta(days=1)).date(),
        (end + timedelta(days=1)).date(),
        service.organization_id,
        start - reach,
        end + reach,
    )
    members_json, hours_json, overrides_json, time_off_json = (
        v if isinstance(v, list) else orjson.loads(v) for v in row
    )
    members = [
        Staff(
            id=uuid.UUID(sid),
            organization_id=uuid.UUID(org),
            name=name,
            time_zone=zone_name,
            user_id=uuid.UUID(user) if user else None,
        )
        for sid, org, name, zone_name, user in members_json
    ]
    inputs = CalendarInputs(members, {}, {}, {}, [])
    for sid, weekday, s_time, e_time in hours_json:
        inputs.weekly.setdefault(uuid.UUID(sid), {}).setdefault(weekday, []).append(
            (_time(s_time), _time(e_time))
        )
    for sid, day, s_time, e_time in overrides_json:
        intervals = inputs.overrides.setdefault(uuid.UUID(sid), {}).setdefault(
            date.fromisoformat(day), []
        )
        if s_time is not None:
            intervals.append((_time(s_time), _time(e_time)))
    for sid, off_start, off_end in time_off_json:
        if sid is None:
            inputs.org_time_off.append((off_start, off_end))
        else:
            inputs.time_off.setdefault(uuid.UUID(sid), []).append((off_start, off_end))
    return inputs


def rules_of(service: Service) -> engine.ServiceRules:
    return engine.ServiceRules(
        service_id=str(service.id),
        duration_minutes=service.duration_minutes,
        buffer_before_minutes=service.buffer_before_minutes,
        buffer_after_minutes=service.buffer_after_minutes,
        slot_interval_minutes=service.slot_interval_minutes,
        min_notice_minutes=service.min_notice_minutes,
        max_advance_days=service.max_advance_days,
        capacity=service.capacity,
    )
