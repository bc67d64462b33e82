"""The period picker: whole local days in the organization's time zone, half-open.

Whole days keep every page's reports on the daily rollups, and the previous period
(the same number of days just before; the previous calendar month for a month)
is what the overview compares against.
"""
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from django.utils import timezone

PERIODS = {
    "7d": "Last 7 days",
    "30d": "Last 30 days",
    "90d": "Last 90 days",
    "month": "This month",
    "previous_month": "Previous month",
    "custom": "Custom",
}
DEFAULT_PERIOD = "30d"
MAX_DAYS = 400  # the report engine's longest window


@dataclass(frozen=True)
class Period:
    key: str
    label: str
    start: datetime  # aware, local midnight
    end: datetime  # exclusive
    previous_start: datetime
    previous_end: datetime
    error: str | None = None

    @property
    def first_day(self) -> date:
        return self.start.date()

    @property
    def last_day(self) -> date:
        return (self.end - timedelta(days=1)).date()

    def window(self) -> dict:
        """The report body's window: `{"from", "to"}` as RFC 3339 with the local offset."""
        return {"from": self.start.isoformat(), "to": self.end.isoformat()}

    def previous_window(self) -> dict:
        return {"from": self.previous_start.isoformat(), "to": self.previous_end.isoformat()}

    def query_string(self) -> str:
        if self.key == "custom":
            return f"period=custom&from={self.first_day.isoformat()}&to={self.last_day.isoformat()}"
        return f"period={self.key}"


def _midnight(day: date, tz: ZoneInfo) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=tz)


def _month_start(day: date) -> date:
    return day.replace(day=1)


def _add_month(day: date, months: int) -> date:
    index = day.year * 12 + day.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def _parse_day(text: str | None) -> date | None:
    try:
        return date.fromisoformat(text) if text else None
    except ValueError:
        return None


def period_from_request(params, *, timezone_name: str, now: datetime | None = None) -> Period:
    """`?period=7d|30d|90d|month|previous_month` or `?period=custom&from=YYYY-MM-DD&to=YYYY-MM-DD`
    (both days included). Anything unreadable falls back to the default, with `error` saying why."""
    tz = ZoneInfo(timezone_name)
    today = (now or timezone.now()).astimezone(tz).date()
    key = params.get("period") or DEFAULT_PERIOD
    error = None
    if key not in PERIODS:
        error, key = f"'{key[:20]}' is not a period; showing {PERIODS[DEFAULT_PERIOD].lower()}.", DEFAULT_PERIOD
    if key == "custom":
        first, last = _parse_day(params.get("from")), _parse_day(params.get("to"))
        if first is None or last is None or last < first or (last - first).days >= MAX_DAYS:
            error = f"Give a start and an end day (the end not before the start, at most {MAX_DAYS} days)."
            key = DEFAULT_PERIOD
        else:
            days = (last - first).days + 1
            return Period(key, f"{first.isoformat()} to {last.isoformat()}", _midnight(first, tz),
                          _midnight(last + timedelta(days=1), tz), _midnight(first - timedelta(days=days), tz),
                          _midnight(first, tz))
    if key in ("month", "previous_month"):
        start = _add_month(_month_start(today), -1 if key == "previous_month" else 0)
        end = _add_month(start, 1)
        return Period(key, PERIODS[key], _midnight(start, tz), _midnight(end, tz),
                      _midnight(_add_month(start, -1), tz), _midnight(start, tz), error)
    days = int(key.rstrip("d"))
    first = today - timedelta(days=days - 1)
    return Period(key, PERIODS[key], _midnight(first, tz), _midnight(today + timedelta(days=1), tz),
                  _midnight(first - timedelta(days=days), tz), _midnight(first, tz), error)
