"""Wall-clock schedule times to real instants, DST-correct.

Schedules are written in local wall-clock time; slots are real instants. On the
days clocks change, a wall-clock time may not exist (spring forward) or exist
twice (fall back). The contract says a start that does not exist begins at the
first instant after the gap. For a time that exists twice we take the earlier
instant for a start and the later one for an end, so an interval covers every
instant whose wall clock reads inside it.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from functools import lru_cache
from zoneinfo import ZoneInfo

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def epoch_seconds(instant: datetime) -> int:
    """Whole seconds since the epoch of an aware datetime."""
    return int((instant - _EPOCH).total_seconds())


def from_epoch(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


@lru_cache(maxsize=256)
def zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def _wall(seconds: int, tz: ZoneInfo) -> datetime:
    return datetime.fromtimestamp(seconds, tz).replace(tzinfo=None)


@lru_cache(maxsize=65536)
def wall_to_epoch(day: date, at: time, tz_name: str, is_end: bool = False) -> int:
    """The real instant (epoch seconds) of wall-clock `at` on `day` in `tz_name`."""
    tz = zone(tz_name)
    naive = datetime.combine(day, at)
    earlier = epoch_seconds(naive.replace(tzinfo=tz, fold=0))
    later = epoch_seconds(naive.replace(tzinfo=tz, fold=1))
    lo, hi = min(earlier, later), max(earlier, later)
    exists_lo = _wall(lo, tz) == naive
    exists_hi = _wall(hi, tz) == naive
    if exists_lo or exists_hi:
        if exists_lo and exists_hi:  # ambiguous: fall-back hour
            return hi if is_end else lo
        return lo if exists_lo else hi
    # In a gap: the transition instant is the first x in [lo, hi] whose wall clock
    # has jumped past `naive`. Wall time is monotone on this short range.
    while lo < hi:
        mid = (lo + hi) // 2
        if _wall(mid, tz) > naive:
            hi = mid
        else:
            lo = mid + 1
    return lo
