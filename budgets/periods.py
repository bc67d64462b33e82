"""Budget periods: calendar days, weeks (from Monday), months and quarters in an
organization's time zone, half-open `[start, end)`. Pure: no ORM, no clock.

Boundaries are local midnights turned into aware datetimes of that zone, so a
period around a daylight-saving change is 23 or 25 hours (a day) long, and every
instant falls in exactly one period. A local midnight that does not exist (a zone
that springs forward at 00:00) resolves to the first instant after the gap, which
`zoneinfo` gives for fold=0 when normalized through UTC; a repeated one its first
occurrence.
"""
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

PERIODS = ("day", "week", "month", "quarter")


@dataclass(frozen=True)
class Period:
    # In UTC: Python compares and subtracts datetimes sharing one tzinfo by wall time,
    # which is wrong across a daylight-saving change.
    start: datetime
    end: datetime
    first_day: date  # local calendar days [first_day, end_day)
    end_day: date

    @property
    def length(self) -> timedelta:
        return self.end - self.start


def local_midnight(day: date, tz: ZoneInfo) -> datetime:
    """The first instant of local `day` (an aware datetime in `tz`)."""
    naive = datetime(day.year, day.month, day.day)
    aware = naive.replace(tzinfo=tz)
    # Round-trip through UTC: a non-existent wall time (inside a spring-forward gap)
    # becomes the real instant after the gap, and a repeated one its first occurrence.
    # (fold=0 reads a wall time in a gap with the offset from before the change, so it
    # lands after the gap.)
    return aware.astimezone(UTC).astimezone(tz)


def first_day_of(kind: str, day: date) -> date:
    if kind == "day":
        return day
    if kind == "week":
        return day - timedelta(days=day.weekday())
    if kind == "month":
        return day.replace(day=1)
    if kind == "quarter":
        return date(day.year, 3 * ((day.month - 1) // 3) + 1, 1)
    raise ValueError(f"unknown period {kind!r}; one of {', '.join(PERIODS)}")


def next_first_day(kind: str, first: date) -> date:
    if kind == "day":
        return first + timedelta(days=1)
    if kind == "week":
        return first + timedelta(days=7)
    months = 1 if kind == "month" else 3
    month = first.month - 1 + months
    return date(first.year + month // 12, month % 12 + 1, 1)


def period_containing(kind: str, moment: datetime, timezone_name: str) -> Period:
    """The period of `kind` that holds the aware instant `moment`."""
    if moment.tzinfo is None:
        raise ValueError("moment must be timezone-aware")
    tz = ZoneInfo(timezone_name)
    first = first_day_of(kind, moment.astimezone(tz).date())
    end_day = next_first_day(kind, first)
    return Period(start=local_midnight(first, tz).astimezone(UTC), end=local_midnight(end_day, tz).astimezone(UTC),
                  first_day=first, end_day=end_day)


def period_after(kind: str, period: Period, timezone_name: str) -> Period:
    return period_containing(kind, period.end, timezone_name)


def period_label(kind: str, period: Period) -> str:
    """For people: 'Thursday 3 December 2026', 'week of 30 November 2026', 'December 2026', 'Q4 2026'."""
    first = period.first_day
    if kind == "day":
        return f"{first:%A} {first.day} {first:%B %Y}"
    if kind == "week":
        return f"week of {first.day} {first:%B %Y}"
    if kind == "month":
        return f"{first:%B %Y}"
    return f"Q{(first.month - 1) // 3 + 1} {first.year}"
