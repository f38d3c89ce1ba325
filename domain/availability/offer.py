"""The offer: the slots of a service in a window, from its staff's calendars and claims."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import lru_cache

import orjson
from sqlalchemy.ext.asyncio import AsyncConnection

from domain.availability import engine
from domain.availability.records import Service, Staff
from domain.errors import DomainError, ErrorCode
from infra.database import driver

MAX_WINDOW = timedelta(days=62)


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
