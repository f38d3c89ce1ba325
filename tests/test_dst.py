"""Availability on the days clocks change (contract: "Time" and "Availability").

Schedules are wall-clock times in the staff member's zone; slots are real instants. A
day has as many real hours as it has, the grid counts real elapsed minutes from the
interval's start, and a start that does not exist begins at the first instant after the
gap. The change dates are found with zoneinfo here, not taken on trust.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest

from domain.availability.engine import (
    ServiceRules,
    Slot,
    StaffCalendar,
    WallInterval,
    find_slots,
    group_by_day,
)
from domain.availability.wallclock import from_epoch, wall_to_epoch

NY = "America/New_York"
BERLIN = "Europe/Berlin"
LORD_HOWE = "Australia/Lord_Howe"
MINUTE = 60
HOUR = 3_600
FORWARD, BACK = "forward", "back"


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> int:
    return int(datetime(year, month, day, hour, minute, tzinfo=UTC).timestamp())


def changes_in(zone: str, year: int) -> list[tuple[date, int, int]]:
    """(local date, shift in minutes, instant) of every UTC offset change in `year`."""
    tz = ZoneInfo(zone)
    out = []
    t, end = utc(year, 1, 1), utc(year + 1, 1, 1)
    before = datetime.fromtimestamp(t, tz).utcoffset()
    while t < end:
        t += 15 * MINUTE  # changes here fall on whole quarter hours
        local = datetime.fromtimestamp(t, tz)
        after = local.utcoffset()
        assert before is not None
        assert after is not None
        if after != before:
            out.append((local.date(), int((after - before).total_seconds()) // MINUTE, t))
        before = after
    return out


CHANGES = {zone: changes_in(zone, 2026) for zone in (NY, BERLIN, LORD_HOWE)}


def change(zone: str, direction: str) -> tuple[date, int, int]:
    """The day clocks go `direction` in `zone` in 2026: (date, shift minutes, instant)."""
    (found,) = [c for c in CHANGES[zone] if (c[1] > 0) == (direction == FORWARD)]
    return found


def test_the_days_clocks_change_in_2026() -> None:
    assert [(d, m) for d, m, _ in CHANGES[NY]] == [(date(2026, 3, 8), 60), (date(2026, 11, 1), -60)]
    assert [(d, m) for d, m, _ in CHANGES[BERLIN]] == [
        (date(2026, 3, 29), 60),
        (date(2026, 10, 25), -60),
    ]
    assert [(d, m) for d, m, _ in CHANGES[LORD_HOWE]] == [
        (date(2026, 4, 5), -30),
        (date(2026, 10, 4), 30),
    ]
    assert [t for _, _, t in CHANGES[NY]] == [utc(2026, 3, 8, 7), utc(2026, 11, 1, 6)]
    assert [t for _, _, t in CHANGES[BERLIN]] == [utc(2026, 3, 29, 1), utc(2026, 10, 25, 1)]
    assert [t for _, _, t in CHANGES[LORD_HOWE]] == [
        utc(2026, 4, 4, 15),
        utc(2026, 10, 3, 15, 30),
    ]


def hm(text: str) -> time:
    return time.fromisoformat(text)


def hours(spec: str) -> list[WallInterval]:
    """ "01:00-04:00 05:00-06:00" as wall-clock intervals."""
    return [(hm(a), hm(b)) for a, b in (part.split("-") for part in spec.split())]


def offer(
    zone: str,
    day: date,
    spec: str,
    duration: int,
    step: int | None = None,
    *,
    weekly: bool = False,
    capacity: int = 1,
) -> list[Slot]:
    """Slots of one staff member working `spec` on `day`, in a window of the days around."""
    intervals = hours(spec)
    calendar = StaffCalendar(
        "sam",
        zone,
        weekly={day.weekday(): intervals} if weekly else {},
        overrides={} if weekly else {day: intervals},
    )
    rules = ServiceRules(
        "svc", duration, slot_interval_minutes=step, max_advance_days=365, capacity=capacity
    )
    start = datetime.combine(day - timedelta(days=1), time(), UTC)
    end = datetime.combine(day + timedelta(days=2), time(), UTC)
    return find_slots(rules, [calendar], [], start, end, datetime(2026, 1, 1, tzinfo=UTC))


def walls(slots: list[Slot], zone: str) -> list[str]:
    """Local wall-clock starts; a ' marks the second time a wall time comes round."""
    out = []
    for slot in slots:
        local = datetime.fromtimestamp(slot.start, ZoneInfo(zone))
        out.append(local.strftime("%H:%M") + ("'" if local.fold else ""))
    return out


ALL_CHANGES = [
    (NY, FORWARD),
    (NY, BACK),
    (BERLIN, FORWARD),
    (BERLIN, BACK),
    (LORD_HOWE, FORWARD),
    (LORD_HOWE, BACK),
]


@pytest.mark.parametrize(("zone", "direction"), ALL_CHANGES)
@pytest.mark.parametrize("weekly", [True, False])
def test_nine_to_five_is_eight_real_hours(zone: str, direction: str, weekly: bool) -> None:
    day, _, _ = change(zone, direction)
    hourly = offer(zone, day, "09:00-17:00", 60, weekly=weekly)
    assert walls(hourly, zone) == [f"{h:02}:00" for h in range(9, 17)]
    assert hourly[-1].end - hourly[0].start == 8 * HOUR
    assert all(s.staff_ids == ("sam",) and s.remaining_capacity == 1 for s in hourly)

    quarterly = offer(zone, day, "09:00-17:00", 30, 15, weekly=weekly)
    assert walls(quarterly, zone) == [f"{m // 60:02}:{m % 60:02}" for m in range(540, 991, 15)]
    assert quarterly[-1].end - quarterly[0].start == 8 * HOUR
    assert [b.start - a.start for a, b in pairwise(quarterly)] == [15 * MINUTE] * 30

    days = group_by_day(
        quarterly,
        zone,
        datetime.combine(day, time(), ZoneInfo(zone)),
        datetime.combine(day + timedelta(days=1), time(), ZoneInfo(zone)),
    )
    assert days == [(day, quarterly)]


# Half-hour slots in the small hours; the real length is the number of slots / 2.
SMALL_HOURS = [
    (NY, FORWARD, "01:00-04:00", "01:00 01:30 03:00 03:30"),
    (NY, FORWARD, "00:00-03:00", "00:00 00:30 01:00 01:30"),
    (NY, BACK, "01:00-04:00", "01:00 01:30 01:00' 01:30' 02:00 02:30 03:00 03:30"),
    (NY, BACK, "00:00-03:00", "00:00 00:30 01:00 01:30 01:00' 01:30' 02:00 02:30"),
    (BERLIN, FORWARD, "01:00-04:00", "01:00 01:30 03:00 03:30"),
    (BERLIN, FORWARD, "00:00-03:00", "00:00 00:30 01:00 01:30"),
    (BERLIN, BACK, "01:00-04:00", "01:00 01:30 02:00 02:30 02:00' 02:30' 03:00 03:30"),
    (BERLIN, BACK, "00:00-03:00", "00:00 00:30 01:00 01:30 02:00 02:30 02:00' 02:30'"),
    (LORD_HOWE, FORWARD, "01:00-04:00", "01:00 01:30 02:30 03:00 03:30"),
    (LORD_HOWE, FORWARD, "00:00-03:00", "00:00 00:30 01:00 01:30 02:30"),
    (LORD_HOWE, BACK, "01:00-04:00", "01:00 01:30 01:30' 02:00 02:30 03:00 03:30"),
    (LORD_HOWE, BACK, "00:00-03:00", "00:00 00:30 01:00 01:30 01:30' 02:00 02:30"),
]


@pytest.mark.parametrize(("zone", "direction", "spec", "expected"), SMALL_HOURS)
def test_small_hours_have_as_many_real_hours_as_they_have(
    zone: str, direction: str, spec: str, expected: str
) -> None:
    day, shift, _ = change(zone, direction)
    slots = offer(zone, day, spec, 30)
    assert walls(slots, zone) == expected.split()
    # Three wall-clock hours, less the hour (or half hour) skipped, or plus the one repeated.
    assert slots[-1].end - slots[0].start == 3 * HOUR - shift * MINUTE
    assert all(b.start - a.start == 30 * MINUTE for a, b in pairwise(slots))
    assert {datetime.fromtimestamp(s.start, ZoneInfo(zone)).date() for s in slots} == {day}


# Intervals starting inside the gap: the first slot is at the first instant after it.
IN_THE_GAP = [
    (NY, "02:30-05:00", 40, 20, "03:00 03:20 03:40 04:00 04:20"),
    (BERLIN, "02:15-04:00", 30, 25, "03:00 03:25"),
    (LORD_HOWE, "02:10-04:00", 30, 20, "02:30 02:50 03:10 03:30"),
]


@pytest.mark.parametrize(("zone", "spec", "duration", "step", "expected"), IN_THE_GAP)
def test_a_start_in_the_gap_begins_when_the_gap_ends(
    zone: str, spec: str, duration: int, step: int, expected: str
) -> None:
    day, _, instant = change(zone, FORWARD)
    slots = offer(zone, day, spec, duration, step)
    assert walls(slots, zone) == expected.split()
    assert slots[0].start == instant
    assert all((s.start - instant) % (step * MINUTE) == 0 for s in slots)


# The grid counts real minutes from the interval's start, across the change.
ACROSS_THE_CHANGE = [
    (NY, FORWARD, "01:00-04:00", 30, 45, "01:00 01:45 03:30"),
    (BERLIN, FORWARD, "01:00-04:00", 30, 45, "01:00 01:45 03:30"),
    (LORD_HOWE, FORWARD, "01:00-04:00", 30, 45, "01:00 01:45 03:00"),
    (NY, BACK, "00:00-03:00", 30, 50, "00:00 00:50 01:40 01:30' 02:20"),
    (BERLIN, BACK, "01:00-04:00", 30, 50, "01:00 01:50 02:40 02:30' 03:20"),
    (LORD_HOWE, BACK, "01:00-04:00", 30, 50, "01:00 01:50 02:10 03:00"),
]


@pytest.mark.parametrize(
    ("zone", "direction", "spec", "duration", "step", "expected"), ACROSS_THE_CHANGE
)
def test_the_grid_counts_real_minutes_across_the_change(
    zone: str, direction: str, spec: str, duration: int, step: int, expected: str
) -> None:
    day, _, _ = change(zone, direction)
    slots = offer(zone, day, spec, duration, step)
    assert walls(slots, zone) == expected.split()
    first = int(datetime.combine(day, hours(spec)[0][0], ZoneInfo(zone)).timestamp())
    assert slots[0].start == first
    assert [s.start - first for s in slots] == [
        k * step * MINUTE for k in range(len(expected.split()))
    ]


def test_touching_intervals_on_the_day_clocks_go_back_offer_each_start_once() -> None:
    # 00:00-01:30 ends at the later 01:30 and 01:30-03:00 begins at the earlier one: the
    # two overlap for an hour of real time, and the staff member is still one person.
    day, _, _ = change(NY, BACK)
    slots = offer(NY, day, "00:00-01:30 01:30-03:00", 30, capacity=3)
    expected = "00:00 00:30 01:00 01:30 01:00' 01:30' 02:00 02:30"
    assert walls(slots, NY) == expected.split()
    assert all(s.staff_ids == ("sam",) and s.remaining_capacity == 3 for s in slots)


# wall_to_epoch: (zone, date, wall time, instant for a start, instant for an end)
WALL_TIMES = [
    # The gap: every wall time in it begins at the first instant after it.
    (NY, date(2026, 3, 8), "01:59", utc(2026, 3, 8, 6, 59), utc(2026, 3, 8, 6, 59)),
    (NY, date(2026, 3, 8), "02:00", utc(2026, 3, 8, 7), utc(2026, 3, 8, 7)),
    (NY, date(2026, 3, 8), "02:30", utc(2026, 3, 8, 7), utc(2026, 3, 8, 7)),
    (NY, date(2026, 3, 8), "02:59", utc(2026, 3, 8, 7), utc(2026, 3, 8, 7)),
    (NY, date(2026, 3, 8), "03:00", utc(2026, 3, 8, 7), utc(2026, 3, 8, 7)),
    (BERLIN, date(2026, 3, 29), "02:00", utc(2026, 3, 29, 1), utc(2026, 3, 29, 1)),
    (BERLIN, date(2026, 3, 29), "02:30", utc(2026, 3, 29, 1), utc(2026, 3, 29, 1)),
    (LORD_HOWE, date(2026, 10, 4), "01:59", utc(2026, 10, 3, 15, 29), utc(2026, 10, 3, 15, 29)),
    (LORD_HOWE, date(2026, 10, 4), "02:00", utc(2026, 10, 3, 15, 30), utc(2026, 10, 3, 15, 30)),
    (LORD_HOWE, date(2026, 10, 4), "02:15", utc(2026, 10, 3, 15, 30), utc(2026, 10, 3, 15, 30)),
    (LORD_HOWE, date(2026, 10, 4), "02:30", utc(2026, 10, 3, 15, 30), utc(2026, 10, 3, 15, 30)),
    # Twice: the earlier instant for a start, the later for an end.
    (NY, date(2026, 11, 1), "00:59", utc(2026, 11, 1, 4, 59), utc(2026, 11, 1, 4, 59)),
    (NY, date(2026, 11, 1), "01:00", utc(2026, 11, 1, 5), utc(2026, 11, 1, 6)),
    (NY, date(2026, 11, 1), "01:30", utc(2026, 11, 1, 5, 30), utc(2026, 11, 1, 6, 30)),
    (NY, date(2026, 11, 1), "01:59", utc(2026, 11, 1, 5, 59), utc(2026, 11, 1, 6, 59)),
    (NY, date(2026, 11, 1), "02:00", utc(2026, 11, 1, 7), utc(2026, 11, 1, 7)),
    (BERLIN, date(2026, 10, 25), "02:00", utc(2026, 10, 25, 0), utc(2026, 10, 25, 1)),
    (BERLIN, date(2026, 10, 25), "02:30", utc(2026, 10, 25, 0, 30), utc(2026, 10, 25, 1, 30)),
    (BERLIN, date(2026, 10, 25), "03:00", utc(2026, 10, 25, 2), utc(2026, 10, 25, 2)),
    (LORD_HOWE, date(2026, 4, 5), "01:29", utc(2026, 4, 4, 14, 29), utc(2026, 4, 4, 14, 29)),
    (LORD_HOWE, date(2026, 4, 5), "01:30", utc(2026, 4, 4, 14, 30), utc(2026, 4, 4, 15)),
    (LORD_HOWE, date(2026, 4, 5), "01:45", utc(2026, 4, 4, 14, 45), utc(2026, 4, 4, 15, 15)),
    (LORD_HOWE, date(2026, 4, 5), "02:00", utc(2026, 4, 4, 15, 30), utc(2026, 4, 4, 15, 30)),
    # Ordinary days.
    (NY, date(2026, 6, 15), "09:00", utc(2026, 6, 15, 13), utc(2026, 6, 15, 13)),
    (LORD_HOWE, date(2026, 6, 15), "09:00", utc(2026, 6, 14, 22, 30), utc(2026, 6, 14, 22, 30)),
    ("Asia/Kolkata", date(2026, 3, 8), "09:00", utc(2026, 3, 8, 3, 30), utc(2026, 3, 8, 3, 30)),
    ("UTC", date(2026, 3, 8), "00:00", utc(2026, 3, 8), utc(2026, 3, 8)),
]


@pytest.mark.parametrize(("zone", "day", "wall", "as_start", "as_end"), WALL_TIMES)
def test_wall_to_epoch(zone: str, day: date, wall: str, as_start: int, as_end: int) -> None:
    assert wall_to_epoch(day, hm(wall), zone) == as_start
    assert wall_to_epoch(day, hm(wall), zone, True) == as_end


def test_fractional_window_edges_keep_slots_inside_the_window() -> None:
    """A window edge with fractional seconds neither shows a slot before `start` nor
    hides the slot at the whole second just before `end`."""
    rules = ServiceRules("svc", 30, slot_interval_minutes=30, max_advance_days=3650)
    calendar = StaffCalendar("ann", "UTC", {d: [(time(9), time(12))] for d in range(7)})
    day = datetime(2027, 3, 3, tzinfo=UTC)
    now = day - timedelta(days=1)
    late = find_slots(
        rules,
        [calendar],
        [],
        day.replace(hour=9, microsecond=400_000),
        day.replace(hour=10, microsecond=500_000),
        now,
    )
    assert [from_epoch(s.start).strftime("%H:%M") for s in late] == ["09:30", "10:00"]
