"""When staff work: weekly hours, date overrides and time off."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import delete, insert, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from domain import events
from domain.availability.reads import time_off_from_row
from domain.availability.records import Staff, TimeOff, WorkingHours
from domain.availability.tables import (
    date_override_intervals,
    date_overrides,
    staff,
    time_off,
    working_hours,
)
from domain.errors import Problems
from infra.ids import uuid7


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


async def _lock_schedule(conn: AsyncConnection, staff_id: uuid.UUID) -> None:
    """One save of a staff member's hours at a time: two at once would each delete the
    old rows, then both insert, and the no-overlap constraint would refuse the second.
    (NO KEY UPDATE: bookings referencing the staff row are not held up.)"""
    await conn.execute(
        select(staff.c.id).where(staff.c.id == staff_id).with_for_update(key_share=True)
    )


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
    await _lock_schedule(conn, staff_id)
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
    await _lock_schedule(conn, staff_id)
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
    return time_off_from_row(row)
