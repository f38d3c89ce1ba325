"""The availability engine: pure interval arithmetic over plain data, no I/O.

One function, `find_slots`, decides which starts are offered. The booking engine
calls the very same function at commit time, so a slot that is shown can be
booked and a slot that cannot be booked is never shown.

All instants are whole epoch seconds internally; schedules are wall-clock times
turned into instants per local date by `wallclock.wall_to_epoch`.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from domain.availability.wallclock import epoch_seconds, wall_to_epoch, zone

MINUTE = 60
DAY = 86_400


@dataclass(frozen=True, slots=True)
class ServiceRules:
    service_id: str
    duration_minutes: int
    buffer_before_minutes: int = 0
    buffer_after_minutes: int = 0
    slot_interval_minutes: int | None = None  # None: the duration
    min_notice_minutes: int = 0
    max_advance_days: int = 60
    capacity: int = 1

    @property
    def step_seconds(self) -> int:
        return (self.slot_interval_minutes or self.duration_minutes) * MINUTE


@dataclass(frozen=True, slots=True)
class Claim:
    """An active booking or live hold: a seat that takes the staff member's time."""

    service_id: str
    start: int  # epoch seconds, the appointment itself
    end: int
    buffer_before_minutes: int = 0
    buffer_after_minutes: int = 0

    @property
    def blocked_start(self) -> int:
        return self.start - self.buffer_before_minutes * MINUTE

    @property
    def blocked_end(self) -> int:
        return self.end + self.buffer_after_minutes * MINUTE


WallInterval = tuple[time, time]


@dataclass(frozen=True, slots=True)
class StaffCalendar:
    staff_id: str
    time_zone: str
    weekly: Mapping[int, Sequence[WallInterval]]  # weekday 0 = Monday
    overrides: Mapping[date, Sequence[WallInterval]] = field(default_factory=dict)
    time_off: Sequence[tuple[int, int]] = ()  # epoch seconds, half-open
    claims: Sequence[Claim] = ()


@dataclass(frozen=True, slots=True)
class Slot:
    start: int
    end: int
    staff_ids: tuple[str, ...]
    remaining_capacity: int


def merge(intervals: Iterable[tuple[int, int]]) -> tuple[list[int], list[int]]:
    """Union of half-open intervals as two sorted lists (starts, ends)."""
    starts: list[int] = []
    ends: list[int] = []
    for s, e in sorted(intervals):
        if e <= s:
            continue
        if ends and s <= ends[-1]:
            if e > ends[-1]:
                ends[-1] = e
        else:
            starts.append(s)
            ends.append(e)
    return starts, ends


def _overlaps(starts: list[int], ends: list[int], a: int, b: int) -> bool:
    """Does [a, b) overlap the merged intervals?"""
    i = bisect_right(starts, a) - 1
    if i >= 0 and ends[i] > a:
        return True
    return i + 1 < len(starts) and starts[i + 1] < b


def working_intervals(
    calendar: StaffCalendar, first_day: date, last_day: date
) -> list[tuple[int, int]]:
    """The staff member's working intervals, as instants, for local dates in range."""
    out: list[tuple[int, int]] = []
    tz = calendar.time_zone
    day = first_day
    one = timedelta(days=1)
    while day <= last_day:
        hours = calendar.overrides.get(day)
        if hours is None:
            hours = calendar.weekly.get(day.weekday(), ())
        for start, end in hours:
            s = wall_to_epoch(day, start, tz)
            e = wall_to_epoch(day, end, tz, True)
            if e > s:
                out.append((s, e))
        day += one
    out.sort()
    return out


def _local_day_range(tz_name: str, start: int, end: int) -> tuple[date, date]:
    tz = zone(tz_name)
    first = datetime.fromtimestamp(start, tz).date()
    last = datetime.fromtimestamp(max(start, end - 1), tz).date()
    return first, last


def staff_offers(
    rules: ServiceRules,
    calendar: StaffCalendar,
    org_time_off: tuple[list[int], list[int]],
    window_start: int,
    window_end: int,
    now: int,
) -> list[tuple[int, int]]:
    """Offered starts of one staff member as (start, remaining seats)."""
    duration = rules.duration_minutes * MINUTE
    before = rules.buffer_before_minutes * MINUTE
    after = rules.buffer_after_minutes * MINUTE
    step = rules.step_seconds
    lo = max(window_start, now + rules.min_notice_minutes * MINUTE)
    hi = min(window_end - 1, now + rules.max_advance_days * DAY)  # inclusive
    if hi < lo:
        return []

    off_starts, off_ends = merge(
        [*calendar.time_off, *zip(org_time_off[0], org_time_off[1], strict=True)]
    )
    busy_starts, busy_ends = merge((c.blocked_start, c.blocked_end) for c in calendar.claims)
    seats: dict[int, int] = {}
    for c in calendar.claims:
        if c.service_id == rules.service_id:
            seats[c.start] = seats.get(c.start, 0) + 1

    first_day, last_day = _local_day_range(calendar.time_zone, lo, hi + 1)
    # A working interval lies within one local day, so the dates around the
    # window are enough; widen by one day for zones far from UTC.
    first_day -= timedelta(days=1)
    # On the day clocks go back, intervals that touch in wall-clock time overlap in real
    # time (an end is the later instant, a start the earlier): a start is offered once.
    offers: dict[int, int] = {}
    for iv_start, iv_end in working_intervals(calendar, first_day, last_day):
        last_start = min(iv_end - duration, hi)
        k = 0 if lo <= iv_start else -(-(lo - iv_start) // step)
        t = iv_start + k * step
        while t <= last_start:
            a, b = t - before, t + duration + after
            if not _overlaps(off_starts, off_ends, a, b):
                taken = seats.get(t, 0)
                if taken == 0:
                    if not _overlaps(busy_starts, busy_ends, a, b):
                        offers[t] = rules.capacity
                elif taken < rules.capacity and not _foreign_claim(calendar.claims, rules, t, a, b):
                    offers[t] = rules.capacity - taken
            t += step
    return sorted(offers.items())


def _foreign_claim(claims: Sequence[Claim], rules: ServiceRules, t: int, a: int, b: int) -> bool:
    """Is [a, b) blocked by a claim other than the seats of the session at t?"""
    for c in claims:
        if c.service_id == rules.service_id and c.start == t:
            continue
        if c.blocked_start < b and c.blocked_end > a:
            return True
    return False


def _ceil_seconds(instant: datetime) -> int:
    return epoch_seconds(instant) + (1 if instant.microsecond else 0)


def find_slots(
    rules: ServiceRules,
    calendars: Sequence[StaffCalendar],
    org_time_off: Iterable[tuple[int, int]],
    window_start: datetime,
    window_end: datetime,
    now: datetime,
) -> list[Slot]:
    """Every offered start in [window_start, window_end), with who can take it."""
    # Starts are whole seconds: [start, end) holds the same ones as [ceil(start), ceil(end)).
    ws, we = _ceil_seconds(window_start), _ceil_seconds(window_end)
    n = epoch_seconds(now)
    if now.microsecond:  # `n` is rounded down, but no start may come before `now`
        ws = max(ws, n + 1 + rules.min_notice_minutes * MINUTE)
    org_off = merge(org_time_off)
    by_start: dict[int, list[tuple[str, int]]] = {}
    for calendar in sorted(calendars, key=lambda c: c.staff_id):
        for t, remaining in staff_offers(rules, calendar, org_off, ws, we, n):
            by_start.setdefault(t, []).append((calendar.staff_id, remaining))
    duration = rules.duration_minutes * MINUTE
    return [
        Slot(
            start=t,
            end=t + duration,
            staff_ids=tuple(s for s, _ in staff),
            remaining_capacity=sum(r for _, r in staff),
        )
        for t, staff in sorted(by_start.items())
    ]


def group_by_day(
    slots: Sequence[Slot], tz_name: str, window_start: datetime, window_end: datetime
) -> list[tuple[date, list[Slot]]]:
    """Every local date of the window in `tz_name`, empty ones included."""
    tz = zone(tz_name)
    first, last = _local_day_range(tz_name, epoch_seconds(window_start), epoch_seconds(window_end))
    days: dict[date, list[Slot]] = {}
    day = first
    while day <= last:
        days[day] = []
        day += timedelta(days=1)
    for slot in slots:
        local = datetime.fromtimestamp(slot.start, tz).date()
        days.setdefault(local, []).append(slot)
    return list(days.items())
