"""Property-based tests of the availability engine (contract: "Availability" and "Time").

Random services, staff calendars in zones with and without DST, time off, bookings and
holds, windows and `now`s are drawn around the days clocks change. Each property is
checked against the engine's output; `test_matches_brute_force_reference` compares it
with a brute-force reference written here from the contract rules alone, with its own
wall-clock conversion (`ref_instant`), so the two share no code.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from fractions import Fraction
from functools import cache
from itertools import pairwise
from typing import TypeVar
from zoneinfo import ZoneInfo

from hypothesis import example, given, settings
from hypothesis import strategies as st

from domain.availability.engine import (
    Claim,
    ServiceRules,
    Slot,
    StaffCalendar,
    WallInterval,
    find_slots,
    group_by_day,
)
from domain.availability.wallclock import wall_to_epoch

MINUTE = 60
HOUR = 3_600
DAY = 86_400
SERVICE = "svc"
OTHER = "other"
ZONES = ("America/New_York", "Europe/Berlin", "Australia/Lord_Howe", "Asia/Kolkata", "UTC")
# Days clocks change in 2026 in the zone beside them, and two ordinary days.
ANCHORS = (
    (date(2026, 3, 8), "America/New_York"),
    (date(2026, 11, 1), "America/New_York"),
    (date(2026, 3, 29), "Europe/Berlin"),
    (date(2026, 10, 25), "Europe/Berlin"),
    (date(2026, 4, 5), "Australia/Lord_Howe"),
    (date(2026, 10, 4), "Australia/Lord_Howe"),
    (date(2026, 6, 15), "Asia/Kolkata"),
    (date(2026, 1, 1), "UTC"),
)
NAMES = ("ann", "bob", "cy", "dee", "eve")
_NAIVE_EPOCH = datetime(1970, 1, 1)
T = TypeVar("T")

PROPERTY = settings(max_examples=200, deadline=None)


@dataclass(frozen=True)
class Scenario:
    rules: ServiceRules
    calendars: tuple[StaffCalendar, ...]
    org_off: tuple[tuple[int, int], ...]
    window_start: int
    window_end: int
    now: int
    zone: str  # the zone the request's datetimes are written in, and `days` are grouped by
    now_micros: int = 0  # the server's clock has microseconds: now is `now` and a bit

    def instant(self, seconds: int, micros: int = 0) -> datetime:
        return datetime.fromtimestamp(seconds, ZoneInfo(self.zone)).replace(microsecond=micros)

    @property
    def exact_now(self) -> Fraction:
        return self.now + Fraction(self.now_micros, 1_000_000)

    def calendar(self, staff_id: str) -> StaffCalendar:
        (found,) = [c for c in self.calendars if c.staff_id == staff_id]
        return found


def run(sc: Scenario, calendars: Sequence[StaffCalendar] | None = None) -> list[Slot]:
    return find_slots(
        sc.rules,
        sc.calendars if calendars is None else calendars,
        sc.org_off,
        sc.instant(sc.window_start),
        sc.instant(sc.window_end),
        sc.instant(sc.now, sc.now_micros),
    )


# --- an independent reference ------------------------------------------------------------


def _wall(seconds: int, tz: ZoneInfo) -> datetime:
    return datetime.fromtimestamp(seconds, tz).replace(tzinfo=None)


@cache
def ref_instant(day: date, at: time, tz_name: str, is_end: bool) -> int:
    """Wall clock to instant by search: every instant whose local clock reads `at`."""
    tz = ZoneInfo(tz_name)
    naive = datetime.combine(day, at)
    as_utc = int((naive - _NAIVE_EPOCH).total_seconds())
    # Every UTC offset in force within 16 hours either side (offsets last > 1 hour).
    offsets = {
        int((_wall(x, tz) - _NAIVE_EPOCH).total_seconds()) - x
        for x in range(as_utc - 16 * HOUR, as_utc + 17 * HOUR, HOUR)
    }
    matches = sorted(as_utc - off for off in offsets if _wall(as_utc - off, tz) == naive)
    if matches:  # one, or two when the clock went back
        return matches[-1] if is_end else matches[0]
    # Clocks jumped over `naive`: the first instant after the gap (transitions fall on
    # whole minutes in these zones).
    x = min(as_utc - off for off in offsets)
    while _wall(x, tz) <= naive:
        x += MINUTE
    return x


def ref_hours(calendar: StaffCalendar, day: date) -> Sequence[WallInterval]:
    if day in calendar.overrides:
        return calendar.overrides[day]
    return calendar.weekly.get(day.weekday(), ())


def ref_working_intervals(
    calendar: StaffCalendar, first: date, last: date
) -> list[tuple[int, int]]:
    out = []
    day = first
    while day <= last:
        for a, b in ref_hours(calendar, day):
            s = ref_instant(day, a, calendar.time_zone, False)
            e = ref_instant(day, b, calendar.time_zone, True)
            out.append((s, e))
        day += timedelta(days=1)
    return out


def ref_days(window_start: int, window_end: int) -> tuple[date, date]:
    """Local dates that can hold a slot of the window, in any zone (generously)."""
    first = datetime.fromtimestamp(window_start, UTC).date() - timedelta(days=2)
    last = datetime.fromtimestamp(window_end, UTC).date() + timedelta(days=2)
    return first, last


def step_of(rules: ServiceRules) -> int:
    return (rules.slot_interval_minutes or rules.duration_minutes) * MINUTE


def ref_grid(rules: ServiceRules, calendar: StaffCalendar, first: date, last: date) -> list[int]:
    """Every start on the grid of a working interval, where the appointment fits."""
    duration = rules.duration_minutes * MINUTE
    out = []
    for s, e in ref_working_intervals(calendar, first, last):
        t = s
        while t + duration <= e:
            out.append(t)
            t += step_of(rules)
    return out


def overlaps(a: int, b: int, c: int, d: int) -> bool:
    """Do the half-open [a, b) and [c, d) share an instant?"""
    return max(a, c) < min(b, d)


def reference(sc: Scenario) -> list[Slot]:
    """The offered slots, by brute force over every grid start, rule by rule."""
    rules = sc.rules
    duration = rules.duration_minutes * MINUTE
    before = rules.buffer_before_minutes * MINUTE
    after = rules.buffer_after_minutes * MINUTE
    first, last = ref_days(sc.window_start, sc.window_end)
    offered: dict[tuple[int, str], int] = {}
    for cal in sc.calendars:
        for t in ref_grid(rules, cal, first, last):
            # 4. window, notice and advance
            if not sc.window_start <= t < sc.window_end:
                continue
            if not sc.exact_now + rules.min_notice_minutes * MINUTE <= t:
                continue
            if not t <= sc.exact_now + rules.max_advance_days * 24 * HOUR:
                continue
            a, b = t - before, t + duration + after
            # 3. time off of the staff member or of the organization
            if any(overlaps(a, b, s, e) for s, e in [*cal.time_off, *sc.org_off]):
                continue
            # 3. bookings and holds, except seats of the same session while not full
            taken = sum(1 for c in cal.claims if c.service_id == rules.service_id and c.start == t)
            if taken >= rules.capacity:
                continue
            blocked = False
            for c in cal.claims:
                if c.service_id == rules.service_id and c.start == t:
                    continue
                if overlaps(
                    a,
                    b,
                    c.start - c.buffer_before_minutes * MINUTE,
                    c.end + c.buffer_after_minutes * MINUTE,
                ):
                    blocked = True
            if not blocked:
                offered[(t, cal.staff_id)] = rules.capacity - taken
    starts = sorted({t for t, _ in offered})
    slots = []
    for t in starts:
        staff = sorted(s for u, s in offered if u == t)
        slots.append(Slot(t, t + duration, tuple(staff), sum(offered[(t, s)] for s in staff)))
    return slots


# --- strategies ----------------------------------------------------------------------
# Strategies are built once, at import: building them in every draw costs more than
# drawing from them.


def _t(minutes: int) -> time:
    return time(minutes // 60, minutes % 60)


# Wall-clock minutes in and at the edges of the hours the clocks change: New York
# 01:00-02:00 (back) and 02:00-03:00 (forward), Berlin 02:00-03:00 both ways, Lord Howe
# 01:30-02:00 (back) and 02:00-02:30 (forward).
CHANGE_MINUTES = {
    "America/New_York": (0, 60, 75, 90, 105, 120, 150, 180, 240),
    "Europe/Berlin": (60, 120, 135, 150, 165, 180, 210, 240),
    "Australia/Lord_Howe": (60, 90, 100, 105, 120, 130, 135, 150, 180),
}
WALL_MINUTE = st.one_of(
    st.integers(0, 1439),
    st.integers(0, 95).map(lambda q: q * 15),
    st.integers(0, 20).map(lambda q: q * 15),  # 00:00 to 05:00
    st.sampled_from(sorted({m for ms in CHANGE_MINUTES.values() for m in ms})),
)
SECONDS = st.one_of(st.just(0), st.integers(0, 59))
MICROS = st.one_of(st.just(0), st.integers(1, 999_999))
BITS = st.integers(0, 31)
BUFFER = st.integers(0, 60)
FIVE_MINUTES = 5 * MINUTE
LONG = st.one_of(st.integers(1, 48), st.integers(1, 3 * 288)).map(lambda q: q * FIVE_MINUTES)
SHORT = st.integers(1, 24).map(lambda q: q * FIVE_MINUTES)


@st.composite
def wall_intervals(
    draw: st.DrawFn, minutes: st.SearchStrategy[int], sizes: st.SearchStrategy[int]
) -> list[WallInterval]:
    """Sorted, non-overlapping intervals of a day, often touching; [] is a day off."""
    points = sorted({draw(minutes) for _ in range(draw(sizes))})
    # Every span between two points is worked but a quarter of them: many touch.
    dropped = draw(BITS) & draw(BITS)
    return [(_t(a), _t(b)) for i, (a, b) in enumerate(pairwise(points)) if not dropped >> i & 1]


HOURS = wall_intervals(WALL_MINUTE, st.sampled_from([2, 3, 4, 5, 0, 1]))
HOURS_AROUND_CHANGE = {
    zone: wall_intervals(st.sampled_from(minutes), st.integers(3, 5))
    for zone, minutes in CHANGE_MINUTES.items()
}
PATTERNS = st.lists(HOURS, min_size=1, max_size=3)
WHICH_PATTERN = {n: st.lists(st.integers(-1, n - 1), min_size=7, max_size=7) for n in (1, 2, 3)}
OVERRIDES = st.dictionaries(st.one_of(st.just(0), st.integers(-4, 14)), HOURS, max_size=3)


@st.composite
def service_rules(draw: st.DrawFn, short: bool) -> ServiceRules:
    """`short`: appointments and steps that fit in the hour clocks change, mostly."""
    durations = [10, 15, 20, 30, 45] if short else [15, 30, 60, 90]
    steps = [5, 10, 15, 30] if short else [15, 30]
    return ServiceRules(
        service_id=SERVICE,
        duration_minutes=draw(
            st.one_of(st.sampled_from(durations), st.integers(5, 60 if short else 240))
        ),
        buffer_before_minutes=draw(st.one_of(st.just(0), BUFFER)),
        buffer_after_minutes=draw(st.one_of(st.just(0), BUFFER)),
        slot_interval_minutes=draw(
            st.one_of(st.none(), st.sampled_from(steps), st.integers(5, 120))
        ),
        min_notice_minutes=draw(st.one_of(st.just(0), st.integers(0, 600))),
        max_advance_days=draw(st.one_of(st.integers(0, 90), st.integers(1, 3))),
        capacity=draw(st.one_of(st.just(1), st.integers(2, 6))),
    )


RULES = {short: service_rules(short) for short in (False, True)}


def grid_starts(
    rules: ServiceRules, intervals: Sequence[tuple[int, int]], lo: int, hi: int
) -> st.SearchStrategy[int] | None:
    """Starts on the grid of one of the intervals, where the appointment fits, in [lo, hi]."""
    step = step_of(rules)
    ranges = []
    for s, e in intervals:
        first = max(0, -(-(lo - s) // step))
        last = (min(hi, e - rules.duration_minutes * MINUTE) - s) // step
        if first <= last:
            ranges.append((s, first, last))
    if not ranges:
        return None
    return st.sampled_from(ranges).flatmap(
        lambda r: st.integers(r[1], r[2]).map(lambda k: r[0] + k * step)
    )


@st.composite
def staff_hours(
    draw: st.DrawFn, anchor: date, focus_zone: str | None
) -> tuple[Mapping[int, Sequence[WallInterval]], Mapping[date, Sequence[WallInterval]]]:
    """Weekly hours and date overrides; `focus_zone`: hours near its change on `anchor`."""
    # A few patterns of hours shared by the weekdays, as in most businesses.
    patterns = draw(PATTERNS)
    which = draw(WHICH_PATTERN[len(patterns)])
    weekly = {day: patterns[i] for day, i in enumerate(which) if i >= 0}
    overrides = {anchor + timedelta(days=k): hours for k, hours in draw(OVERRIDES).items()}
    if focus_zone is not None:
        overrides[anchor] = draw(HOURS_AROUND_CHANGE[focus_zone])
    elif draw(st.booleans()):
        overrides[anchor] = draw(HOURS)
    return weekly, overrides


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    anchor, anchor_zone = draw(st.sampled_from(ANCHORS))
    # Half the time, focus on the day clocks change: everyone in the zone that
    # changes, hours near the change, and a window around it with room to book it.
    focus = anchor_zone in CHANGE_MINUTES and draw(st.booleans())
    rules = draw(RULES[focus])
    duration = rules.duration_minutes * MINUTE
    before = rules.buffer_before_minutes * MINUTE
    after = rules.buffer_after_minutes * MINUTE
    zones = (
        st.just(anchor_zone) if focus else st.one_of(st.just(anchor_zone), st.sampled_from(ZONES))
    )
    zone = draw(zones)

    # Staff and their hours.
    hours: list[StaffCalendar] = []
    for name in draw(st.permutations(NAMES))[: draw(st.integers(1, 4))]:
        if len(hours) > 0 and draw(st.booleans()):  # the same hours as a colleague's
            weekly, overrides = hours[-1].weekly, hours[-1].overrides
        else:
            weekly, overrides = draw(staff_hours(anchor, anchor_zone if focus else None))
        hours.append(StaffCalendar(name, draw(zones), weekly, overrides))
    days = (anchor - timedelta(days=5), anchor + timedelta(days=15))
    intervals = [iv for cal in hours for iv in ref_working_intervals(cal, *days)]
    at_grid = grid_starts(rules, intervals, -(2**40), 2**40)  # None: no room anywhere

    # The window and `now`, on a 5-minute grid from a UTC midnight, or whole local days,
    # and now and then with an edge exactly at a start.
    base = int(datetime.combine(anchor, time(), UTC).timestamp())
    if focus:
        start_q = draw(st.integers(-288, -144))
        end_q = start_q + draw(st.integers(720, 3 * 288))
        now_q = draw(st.integers(0, 288))
    else:
        start_q = draw(st.integers(-3 * 288, 288))
        end_q = start_q + draw(st.one_of(st.integers(288, 10 * 288), st.integers(1, 10 * 288)))
        now_q = draw(st.one_of(st.integers(0, 288), st.integers(-288, 2 * 288)))
    window_start = base + start_q * FIVE_MINUTES + draw(SECONDS)
    window_end = base + end_q * FIVE_MINUTES + draw(SECONDS)
    if not focus and draw(st.booleans()):  # whole local days of the request's zone
        first_day = anchor + timedelta(days=draw(st.integers(-3, 1)))
        last_day = first_day + timedelta(days=draw(st.integers(1, 10)))
        window_start, window_end = (
            int(datetime.combine(d, time(), ZoneInfo(zone)).timestamp())
            for d in (first_day, last_day)
        )
    now = window_start - now_q * FIVE_MINUTES + draw(SECONDS)
    in_window = grid_starts(rules, intervals, window_start, window_end - 1)
    if in_window is not None:
        edge = draw(st.sampled_from(["none", "none", "start", "end", "notice", "advance"]))
        t = draw(in_window) + draw(st.sampled_from([0, 1, -1]))  # at, after or before it
        if edge == "start":
            window_start = t
            window_end = max(window_end, t + 1)
        elif edge == "end":
            window_end = t
            window_start = min(window_start, t - 1)
        elif edge == "notice":
            now = t - rules.min_notice_minutes * MINUTE
        elif edge == "advance":
            now = t - rules.max_advance_days * DAY
    lo = max(window_start, now + rules.min_notice_minutes * MINUTE)
    hi = min(window_end - 1, now + rules.max_advance_days * DAY)
    inside = grid_starts(rules, intervals, lo, hi)
    if inside is None:
        inside = at_grid

    # Time off and bookings: anywhere near the window, or just touching a start.
    near = st.integers(
        (window_start - base) // FIVE_MINUTES - 288, (window_end - base) // FIVE_MINUTES + 288
    ).map(lambda q: base + q * FIVE_MINUTES)
    edges = near if at_grid is None else at_grid
    spans = st.one_of(
        st.tuples(near, LONG).map(lambda p: (p[0], p[0] + p[1])),
        st.tuples(edges, SHORT).map(lambda p: (p[0] - before - p[1], p[0] - before)),
        st.tuples(edges, SHORT).map(
            lambda p: (p[0] + duration + after, p[0] + duration + after + p[1])
        ),
    )
    time_offs = st.lists(spans, max_size=3)
    calendars = []
    for cal in hours:
        claims: list[Claim] = []
        if inside is not None:
            # Group sessions of this service at grid starts, up to one seat too many.
            for _ in range(draw(st.integers(0, 3))):
                t = draw(inside)
                pads = (rules.buffer_before_minutes, rules.buffer_after_minutes)
                if draw(st.booleans()):  # the service's buffers changed since
                    pads = (draw(BUFFER), draw(BUFFER))
                claim = Claim(SERVICE, t, t + duration, *pads)
                claims += [claim] * draw(st.integers(1, rules.capacity + 1))
        # Bookings of this service (off the grid, mostly) or of another one: anywhere,
        # or with their buffer ending just where a start's buffer begins.
        for _ in range(draw(st.integers(0, 3))):
            minutes = draw(st.integers(5, 240)) * MINUTE
            pad_before, pad_after = draw(BUFFER), draw(BUFFER)
            service = draw(st.sampled_from([SERVICE, OTHER]))
            if draw(st.booleans()):
                start = draw(edges) - before - pad_after - minutes
            else:
                start = draw(near)
            claims.append(Claim(service, start, start + minutes, pad_before, pad_after))
        calendars.append(replace(cal, time_off=tuple(draw(time_offs)), claims=tuple(claims)))

    return Scenario(
        rules=rules,
        calendars=tuple(calendars),
        org_off=tuple(draw(time_offs)),
        window_start=window_start,
        window_end=window_end,
        now=now,
        zone=zone,
        now_micros=draw(MICROS),
    )


# --- properties ----------------------------------------------------------------------

# Found by these properties: on the day clocks go back in Berlin, 00:00-02:30 and
# 02:30-05:00 overlap in real time from 02:30 CEST to 02:30 CET (an end is the later
# instant, a start the earlier), and starts there were offered twice by the same person.
FALL_BACK_TOUCHING = Scenario(
    rules=ServiceRules(SERVICE, 30, capacity=2),
    calendars=(
        StaffCalendar(
            "ann", "Europe/Berlin", {6: [(time(0, 0), time(2, 30)), (time(2, 30), time(5, 0))]}
        ),
    ),
    org_off=(),
    window_start=int(datetime(2026, 10, 24, tzinfo=UTC).timestamp()),
    window_end=int(datetime(2026, 10, 27, tzinfo=UTC).timestamp()),
    now=int(datetime(2026, 10, 1, tzinfo=UTC).timestamp()),
    zone="Europe/Berlin",
)


# Found by these properties: the server's `now` has microseconds, and a start in the
# very second `now` falls in was offered although it had begun.
JUST_BEGUN = Scenario(
    rules=ServiceRules(SERVICE, 30),
    calendars=(StaffCalendar("ann", "UTC", {0: [(time(9, 0), time(10, 0))]}),),
    org_off=(),
    window_start=int(datetime(2026, 6, 15, tzinfo=UTC).timestamp()),
    window_end=int(datetime(2026, 6, 16, tzinfo=UTC).timestamp()),
    now=int(datetime(2026, 6, 15, 9, tzinfo=UTC).timestamp()),
    zone="UTC",
    now_micros=400_000,
)


@PROPERTY
@given(scenarios())
def test_no_slot_touches_time_off(sc: Scenario) -> None:
    rules = sc.rules
    for slot in run(sc):
        a = slot.start - rules.buffer_before_minutes * MINUTE
        b = slot.start + (rules.duration_minutes + rules.buffer_after_minutes) * MINUTE
        for staff_id in slot.staff_ids:
            for s, e in [*sc.calendar(staff_id).time_off, *sc.org_off]:
                assert not overlaps(a, b, s, e), (slot, staff_id, (s, e))


@PROPERTY
@given(scenarios())
@example(FALL_BACK_TOUCHING)
def test_claims_block_except_open_seats_of_the_same_session(sc: Scenario) -> None:
    rules = sc.rules
    for slot in run(sc):
        assert slot.end == slot.start + rules.duration_minutes * MINUTE
        assert len(set(slot.staff_ids)) == len(slot.staff_ids), slot
        assert list(slot.staff_ids) == sorted(slot.staff_ids), slot
        a = slot.start - rules.buffer_before_minutes * MINUTE
        b = slot.start + (rules.duration_minutes + rules.buffer_after_minutes) * MINUTE
        remaining = 0
        for staff_id in slot.staff_ids:
            claims = sc.calendar(staff_id).claims
            session = [c for c in claims if c.service_id == SERVICE and c.start == slot.start]
            assert len(session) < rules.capacity, (slot, staff_id)
            for c in claims:
                if c not in session:
                    assert not overlaps(a, b, c.blocked_start, c.blocked_end), (slot, staff_id, c)
            remaining += rules.capacity - len(session)
        assert slot.remaining_capacity == remaining, slot


@PROPERTY
@given(scenarios())
def test_slots_lie_on_the_grid_of_one_working_interval(sc: Scenario) -> None:
    duration = sc.rules.duration_minutes * MINUTE
    step = step_of(sc.rules)
    for slot in run(sc):
        for staff_id in slot.staff_ids:
            cal = sc.calendar(staff_id)
            day = datetime.fromtimestamp(slot.start, ZoneInfo(cal.time_zone)).date()
            intervals = [
                (wall_to_epoch(day, a, cal.time_zone), wall_to_epoch(day, b, cal.time_zone, True))
                for a, b in ref_hours(cal, day)
            ]
            assert any(
                s <= slot.start and slot.start + duration <= e and (slot.start - s) % step == 0
                for s, e in intervals
            ), (slot, staff_id, day, intervals)


@PROPERTY
@given(scenarios())
@example(JUST_BEGUN)
def test_slots_respect_window_notice_and_advance(sc: Scenario) -> None:
    rules = sc.rules
    for slot in run(sc):
        assert sc.window_start <= slot.start < sc.window_end
        assert sc.exact_now + rules.min_notice_minutes * MINUTE <= slot.start
        assert slot.start <= sc.exact_now + rules.max_advance_days * 24 * HOUR


@settings(max_examples=300, deadline=None)
@given(scenarios())
@example(FALL_BACK_TOUCHING)
@example(JUST_BEGUN)
def test_matches_brute_force_reference(sc: Scenario) -> None:
    assert run(sc) == reference(sc)


@PROPERTY
@given(scenarios(), st.randoms(use_true_random=False))
def test_input_order_does_not_matter(sc: Scenario, rnd: random.Random) -> None:
    def shuffled(items: Sequence[T]) -> list[T]:
        out = list(items)
        rnd.shuffle(out)
        return out

    calendars = [
        replace(
            c,
            weekly={d: shuffled(hours) for d, hours in shuffled(list(c.weekly.items()))},
            overrides={d: shuffled(hours) for d, hours in shuffled(list(c.overrides.items()))},
            time_off=shuffled(c.time_off),
            claims=shuffled(c.claims),
        )
        for c in shuffled(sc.calendars)
    ]
    mixed = replace(sc, org_off=tuple(shuffled(sc.org_off)))
    assert run(mixed, calendars) == run(sc)


@PROPERTY
@given(scenarios())
def test_days_list_every_local_date_of_the_window(sc: Scenario) -> None:
    slots = run(sc)
    tz = ZoneInfo(sc.zone)
    days = group_by_day(slots, sc.zone, sc.instant(sc.window_start), sc.instant(sc.window_end))
    first = datetime.fromtimestamp(sc.window_start, tz).date()
    last = datetime.fromtimestamp(sc.window_end - 1, tz).date()
    assert [d for d, _ in days] == [
        first + timedelta(days=k) for k in range((last - first).days + 1)
    ]
    for day, day_slots in days:
        for slot in day_slots:
            assert datetime.fromtimestamp(slot.start, tz).date() == day
    assert [s for _, day_slots in days for s in day_slots] == slots
