"""The report body of the contract, parsed and validated without a database.

`report_spec_parse()` turns a request body (or a saved query) into a `ReportSpec`
or raises `InvalidRequest` with one sentence naming the field and what is allowed.
Relative ranges of saved queries (`range`) are resolved here too, in the
organization's time zone.
"""
import difflib
import json
import math
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from koala.exceptions import InvalidRequest

TIME_GROUPS = ("hour", "day", "week", "month")
GROUPS = TIME_GROUPS + (
    "project", "environment", "provider", "application", "action", "model", "user", "tag", "status",
)
METRICS = (
    "count", "cost", "charge", "margin", "margin_pct", "uncharged_count", "uncharged_cost", "error_count",
    "error_rate", "latency_avg", "latency_p50", "latency_p95", "latency_p99", "users",
)
DEFAULT_METRICS = ("count", "cost", "charge", "margin", "margin_pct")
# Filters on one column; a list means any of, and null in the list matches a missing value.
STRING_FILTERS = ("environment", "provider", "application", "action", "model", "user", "status")
FILTERS = STRING_FILTERS + ("tags", "metadata")
RANGES = ("today", "last_24_hours", "last_7_days", "last_30_days", "this_month", "previous_month")
REPORT_FIELDS = ("from", "to", "range", "projects", "filters", "group_by", "metrics", "order_by", "limit")
WINDOW_FIELDS = ("from", "to", "range")

MAX_SPAN = timedelta(days=400)
MAX_GROUPS = 3
DEFAULT_LIMIT = 100
MAX_LIMIT = 10_000
MAX_LIST_ITEMS = 1000
MAX_VALUE_LENGTH = 200
MAX_METADATA_BYTES = 16 * 1024
MAX_METADATA_DEPTH = 5
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(3000, 1, 1, tzinfo=UTC)

_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?([Zz]|[+-]\d{2}:\d{2})?$")


@dataclass(frozen=True)
class ReportSpec:
    """A validated report: the half-open window `[start, end)` in UTC and what to compute."""

    start: datetime
    end: datetime
    projects: tuple[str, ...] | None  # slugs; None = every project the key can read
    filters: dict  # STRING_FILTERS -> tuple[str | None, ...]; "tags" -> tuple[str, ...]; "metadata" -> dict
    group_by: tuple[str, ...]
    metrics: tuple[str, ...]
    order_by: str | None  # a column of the result, or None for the groups in order
    descending: bool
    limit: int

    @property
    def columns(self) -> tuple[str, ...]:
        return self.group_by + self.metrics


def _fail(field: str, message: str) -> InvalidRequest:
    return InvalidRequest(f"{field}: {message}", details={"field": field})


def _type_name(value) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null",
            int: "a number", float: "a number"}.get(type(value), type(value).__name__)


def _choices(values) -> str:
    return ", ".join(values)


def _did_you_mean(word, choices) -> str:
    if not isinstance(word, str):
        return ""
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _unstorable(text: str) -> bool:
    if "\x00" in text:
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate, which JSON can carry as \ud800
        return True
    return False


def reject_unstorable_text(value, *, field: str) -> None:
    """Refuses NUL and lone surrogates anywhere in a JSON value (keys included):
    PostgreSQL cannot store them and no answer may echo them. Messages name the
    field but never repeat the text."""
    if isinstance(value, str):
        if _unstorable(value):
            raise _fail(field, "contains a NUL character or an invalid Unicode code point.")
    elif isinstance(value, dict):
        for key, item in value.items():
            where = f"{field}.{str(key)[:40]}" if field else str(key)[:40]
            if _unstorable(str(key)):
                raise _fail(field or "body", "has a key with a NUL character or an invalid Unicode code point.")
            reject_unstorable_text(item, field=where)
    elif isinstance(value, list):
        for item in value:
            reject_unstorable_text(item, field=field or "body")


def parse_timestamp(value, *, field: str) -> datetime:
    """An RFC 3339 timestamp as an aware UTC datetime; no offset means UTC."""
    if not isinstance(value, str):
        raise _fail(field, f"must be an RFC 3339 timestamp string such as 2026-11-01T00:00:00Z, "
                           f"not {_type_name(value)}.")
    if not _RFC3339.match(value):
        raise _fail(field, f"'{value[:40]}' is not an RFC 3339 timestamp (for example 2026-11-01T00:00:00Z "
                           f"or 2026-11-01T00:00:00-05:00).")
    try:
        parsed = datetime.fromisoformat(value.upper().replace(" ", "T"))
    except ValueError:
        raise _fail(field, f"'{value[:40]}' is not a valid date and time.") from None
    parsed = parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    if not EARLIEST <= parsed < LATEST:
        raise _fail(field, f"{value} is outside the years 1970 to 2999.")
    return parsed


def _local_midnight(day: date, tz: ZoneInfo) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=tz).astimezone(UTC)


def resolve_range(name: str, *, tz: ZoneInfo, now: datetime, field: str = "range") -> tuple[datetime, datetime]:
    """A relative range as `[start, end)` in UTC.

    Every range but `last_24_hours` is made of whole local calendar days:
    `last_7_days` is today and the 6 days before it (like Stripe's "Last 7 days"),
    `last_30_days` today and the 29 before. Whole days are what a weekly review
    means, and what the daily rollups answer in milliseconds. `last_24_hours` is the
    rolling window ending now.
    """
    if name not in RANGES:
        raise _fail(field, f"'{str(name)[:40]}' is not a range{_did_you_mean(name, RANGES)}; "
                           f"the ranges are {_choices(RANGES)}.")
    now = now.astimezone(UTC)
    local_now = now.astimezone(tz)
    today = local_now.date()
    if name == "today":
        return _local_midnight(today, tz), _local_midnight(today + timedelta(days=1), tz)
    if name == "last_24_hours":
        return now - timedelta(hours=24), now
    if name in ("last_7_days", "last_30_days"):
        days = 7 if name == "last_7_days" else 30
        return _local_midnight(today - timedelta(days=days - 1), tz), _local_midnight(today + timedelta(days=1), tz)
    first = today.replace(day=1)
    next_first = (first + timedelta(days=32)).replace(day=1)
    if name == "this_month":
        return _local_midnight(first, tz), _local_midnight(next_first, tz)
    previous_first = (first - timedelta(days=1)).replace(day=1)
    return _local_midnight(previous_first, tz), _local_midnight(first, tz)


def _window(body: dict, *, tz: ZoneInfo, now: datetime, prefix: str, allow_range: bool):
    has_range = "range" in body
    if has_range and not allow_range:
        raise _fail(f"{prefix}range", "is only for saved queries; give from and to.")
    if has_range and ("from" in body or "to" in body):
        raise _fail(f"{prefix}range", "give either range or from and to, not both.")
    if has_range:
        return resolve_range(body["range"], tz=tz, now=now, field=f"{prefix}range")
    for name in ("from", "to"):
        if body.get(name) is None:
            also = f", or a range ({_choices(RANGES)})" if allow_range else ""
            raise _fail(f"{prefix}{name}", f"is required: the report covers [from, to) as RFC 3339 timestamps{also}.")
    return parse_timestamp(body["from"], field=f"{prefix}from"), parse_timestamp(body["to"], field=f"{prefix}to")


def _check_span(start: datetime, end: datetime, prefix: str) -> None:
    if start >= end:
        raise _fail(f"{prefix}to", f"must be after from ({start.isoformat()} is not before {end.isoformat()}); "
                                   "the range is half-open [from, to).")
    if end - start > MAX_SPAN:
        raise _fail(f"{prefix}to", f"the range spans {(end - start).days} days; at most {MAX_SPAN.days}.")


def _string(value, *, field: str) -> str:
    if not isinstance(value, str):
        raise _fail(field, f"must hold only strings, not {_type_name(value)}.")
    if not 1 <= len(value) <= MAX_VALUE_LENGTH:
        raise _fail(field, f"values must be 1-{MAX_VALUE_LENGTH} characters ('{value[:40]}' is {len(value)}).")
    if "\x00" in value:
        raise _fail(field, "a value contains a NUL character.")
    return value


def _list(value, *, field: str, what: str) -> list:
    if not isinstance(value, list):
        raise _fail(field, f"must be a list of {what}, not {_type_name(value)}.")
    if len(value) > MAX_LIST_ITEMS:
        raise _fail(field, f"holds {len(value)} items; at most {MAX_LIST_ITEMS}.")
    return value


def _check_json(value, *, field: str, depth: int) -> None:
    if depth > MAX_METADATA_DEPTH:
        raise _fail(field, f"is nested more than {MAX_METADATA_DEPTH} levels deep.")
    if isinstance(value, dict):
        for key, item in value.items():
            if "\x00" in key:
                raise _fail(field, "a key contains a NUL character.")
            _check_json(item, field=field, depth=depth + 1)
    elif isinstance(value, list):
        for item in value:
            _check_json(item, field=field, depth=depth + 1)
    elif isinstance(value, str) and "\x00" in value:
        raise _fail(field, "a value contains a NUL character.")
    elif isinstance(value, float) and not math.isfinite(value):
        raise _fail(field, "holds a number JSON cannot carry.")


def _filters(raw, prefix: str) -> dict:
    field = f"{prefix}filters"
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise _fail(field, f"must be an object of filters ({_choices(FILTERS)}), not {_type_name(raw)}.")
    filters = {}
    for name, value in raw.items():
        where = f"{field}.{name}"
        if name not in FILTERS:
            hint = " (filter projects with the top-level 'projects')" if name in ("project", "projects") else (
                _did_you_mean(name, FILTERS))
            raise _fail(where, f"'{name[:40]}' is not a filter{hint}; the filters are {_choices(FILTERS)}.")
        if value is None:
            continue
        if name == "metadata":
            if not isinstance(value, dict):
                raise _fail(where, f"must be an object the event's metadata contains "
                                   f"(for example {{\"region\": \"eu\"}}), not {_type_name(value)}.")
            _check_json(value, field=where, depth=1)
            if len(json.dumps(value)) > MAX_METADATA_BYTES:
                raise _fail(where, "is larger than 16 KiB serialized.")
            if value:
                filters[name] = value
            continue
        if name == "tags":
            items = [_string(item, field=where) for item in _list(value, field=where, what="tags")]
        else:
            items = [None if item is None else _string(item, field=where)
                     for item in _list(value, field=where, what="strings (null matches a missing value)")]
        if items:  # an empty list is no filter, as in the contract's example
            filters[name] = tuple(dict.fromkeys(items))
    return filters


def _as_list(raw, *, field: str, what: str) -> list:
    """A name or a list of names, as a list."""
    if isinstance(raw, str):
        raw = [raw]
    _list(raw, field=field, what=what)
    return raw


def _known_names(raw: list, *, field: str, known, noun: str, listing: str) -> tuple[str, ...]:
    """`raw` as a tuple when every name is in `known` and none repeats."""
    for name in raw:
        if name not in known:
            raise _fail(field, f"'{str(name)[:40]}' is not a {noun}{_did_you_mean(name, known)}; {listing}.")
    if len(set(raw)) != len(raw):
        raise _fail(field, f"names a {noun} twice.")
    return tuple(raw)


def _group_by(raw, prefix: str) -> tuple[str, ...]:
    field = f"{prefix}group_by"
    if raw is None:
        return ()
    raw = _as_list(raw, field=field, what="group names")
    if len(raw) > MAX_GROUPS:
        raise _fail(field, f"names {len(raw)} groups; at most {MAX_GROUPS}.")
    return _known_names(raw, field=field, known=GROUPS, noun="group", listing=f"group by {_choices(GROUPS)}")


def _metrics(raw, prefix: str) -> tuple[str, ...]:
    field = f"{prefix}metrics"
    if raw is None:
        return DEFAULT_METRICS
    raw = _as_list(raw, field=field, what="metric names")
    if not raw:
        raise _fail(field, f"must name at least one metric: {_choices(METRICS)}.")
    return _known_names(raw, field=field, known=METRICS, noun="metric",
                        listing=f"the metrics are {_choices(METRICS)}")


def _order_by(raw, columns: tuple[str, ...], prefix: str) -> tuple[str | None, bool]:
    field = f"{prefix}order_by"
    if raw is None:
        return None, False
    if not isinstance(raw, str):
        raise _fail(field, f"must be a column name, with '-' for descending, not {_type_name(raw)}.")
    descending = raw.startswith("-")
    name = raw[1:] if descending else raw
    if name not in columns:
        raise _fail(field, f"'{raw[:40]}' is not among the selected columns ({_choices(columns)}); order by "
                           "one of them, with '-' for descending.")
    return name, descending


def _limit(raw, prefix: str) -> int:
    field = f"{prefix}limit"
    if raw is None:
        return DEFAULT_LIMIT
    if isinstance(raw, bool) or not isinstance(raw, int) or not 1 <= raw <= MAX_LIMIT:
        raise _fail(field, f"must be a whole number from 1 to {MAX_LIMIT}, not {json.dumps(raw)[:40]}.")
    return raw


def _projects(raw, prefix: str) -> tuple[str, ...] | None:
    field = f"{prefix}projects"
    if raw is None:
        return None
    items = [_string(item, field=field) for item in _list(raw, field=field, what="project slugs")]
    return tuple(dict.fromkeys(items)) or None


def report_spec_parse(body, *, timezone_name: str, now: datetime, allow_range: bool = False,
                      window: dict | None = None, prefix: str = "") -> ReportSpec:
    """Validates a report body; raises InvalidRequest naming the field at fault.

    `allow_range` accepts a relative `range` instead of `from`/`to` (saved
    queries). `window` (the body of a saved query's run: `from`, `to` and/or
    `range`) overrides the body's window. `prefix` is put before field names in
    messages (`query.` for a saved query).
    """
    if not isinstance(body, dict):
        raise _fail(prefix.rstrip(".") or "body", f"must be a JSON object, not {_type_name(body)}.")
    reject_unstorable_text(body, field=prefix.rstrip("."))
    for name in body:
        if name not in REPORT_FIELDS:
            raise _fail(f"{prefix}{name[:40]}", f"is not a report field{_did_you_mean(name, REPORT_FIELDS)}; "
                                                f"the fields are {_choices(REPORT_FIELDS)}.")
    tz = ZoneInfo(timezone_name)
    start, end = _window(body, tz=tz, now=now, prefix=prefix, allow_range=allow_range)
    if window:
        if "range" in window:
            start, end = resolve_range(window["range"], tz=tz, now=now)
        if window.get("from") is not None:
            start = parse_timestamp(window["from"], field="from")
        if window.get("to") is not None:
            end = parse_timestamp(window["to"], field="to")
        _check_span(start, end, "")
    else:
        _check_span(start, end, prefix)
    group_by = _group_by(body.get("group_by"), prefix)
    metrics = _metrics(body.get("metrics"), prefix)
    order_by, descending = _order_by(body.get("order_by"), group_by + metrics, prefix)
    return ReportSpec(
        start=start, end=end, projects=_projects(body.get("projects"), prefix),
        filters=_filters(body.get("filters"), prefix), group_by=group_by, metrics=metrics,
        order_by=order_by, descending=descending, limit=_limit(body.get("limit"), prefix),
    )


def run_window_parse(body) -> dict:
    """The optional body of a saved query's run: `{"from", "to"}` or `{"range"}`."""
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise _fail("body", f"must be a JSON object with from and to (or a range), not {_type_name(body)}.")
    reject_unstorable_text(body, field="")
    for name in body:
        if name not in WINDOW_FIELDS:
            raise _fail(str(name)[:40], f"is not accepted when running a saved query; give from and to, "
                                        f"or a range ({_choices(RANGES)}).")
    if "range" in body and ("from" in body or "to" in body):
        raise _fail("range", "give either range or from and to, not both.")
    return body


def health_window_parse(params, *, timezone_name: str, now: datetime) -> tuple[datetime, datetime]:
    """`from`/`to` of a query string, each defaulting to the last 30 days' ends."""
    tz = ZoneInfo(timezone_name)
    default_start, default_end = resolve_range("last_30_days", tz=tz, now=now)
    start = parse_timestamp(params["from"], field="from") if params.get("from") else default_start
    end = parse_timestamp(params["to"], field="to") if params.get("to") else default_end
    _check_span(start, end, "")
    return start, end
