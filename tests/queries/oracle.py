"""A plain-Python report over a list of events: what the SQL engine must answer.

Written independently of `queries.engine`; it shares only the parsed spec.
Events are dicts: project (slug), timestamp (aware), cost (Decimal), charge
(Decimal or None), environment, provider, application, action, user, model,
status, latency_ms, tags (list), metadata (dict).
"""
import math
from datetime import UTC, datetime, timedelta
from decimal import Decimal, localcontext
from zoneinfo import ZoneInfo

from koala.money import money_str
from queries.spec import ReportSpec

MONEY = {"cost", "charge", "margin", "uncharged_cost"}


def json_contains(doc, pattern) -> bool:
    """PostgreSQL's jsonb `@>` below the top level (objects, arrays, scalars)."""
    if isinstance(pattern, dict):
        return isinstance(doc, dict) and all(key in doc and json_contains(doc[key], value)
                                             for key, value in pattern.items())
    if isinstance(pattern, list):
        return isinstance(doc, list) and all(any(json_contains(item, wanted) for item in doc) for wanted in pattern)
    if isinstance(pattern, bool) or isinstance(doc, bool):
        return type(pattern) is type(doc) and pattern == doc
    if isinstance(pattern, (int, float, Decimal)):
        return isinstance(doc, (int, float, Decimal)) and Decimal(str(doc)) == Decimal(str(pattern))
    return pattern == doc


def _matches(event: dict, spec: ReportSpec, projects: set[str]) -> bool:
    if not (spec.start <= event["timestamp"] < spec.end) or event["project"] not in projects:
        return False
    for name, wanted in spec.filters.items():
        if name == "tags":
            if not set(wanted) & set(event.get("tags", [])):
                return False
        elif name == "metadata":
            if not json_contains(event.get("metadata", {}), wanted):
                return False
        elif event.get(name) not in wanted:
            return False
    return True


def _bucket(name: str, moment: datetime, tz: ZoneInfo) -> datetime:
    local = moment.astimezone(tz)
    if name == "hour":
        return local.replace(minute=0, second=0, microsecond=0)  # keeps the fold of a repeated hour
    day = local.date()
    if name == "week":
        day -= timedelta(days=day.weekday())
    elif name == "month":
        day = day.replace(day=1)
    return datetime(day.year, day.month, day.day, tzinfo=tz)


def _keys(event: dict, group_by, tz) -> list[tuple]:
    keys = [()]
    for name in group_by:
        if name in ("hour", "day", "week", "month"):
            # As an instant: aware datetimes sharing a zone compare by wall time and
            # would merge the two 01:00 hours of a DST fall-back.
            values = [_bucket(name, event["timestamp"], tz).astimezone(UTC)]
        elif name == "tag":
            values = sorted(set(event.get("tags", []))) or [None]
        else:
            values = [event.get(name)]
        keys = [key + (value,) for key in keys for value in values]
    return keys


def _percentile(values: list[int], fraction: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    position = fraction * (len(ordered) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return float(ordered[low]) + (float(ordered[high]) - float(ordered[low])) * (position - low)


def metric(name: str, events: list[dict]):
    charged = [event for event in events if event.get("charge") is not None]
    latencies = [event["latency_ms"] for event in events if event.get("latency_ms") is not None]
    charge = sum((event["charge"] for event in charged), Decimal(0))
    margin = sum((event["charge"] - event["cost"] for event in charged), Decimal(0))
    errors = sum(1 for event in events if event.get("status") == "error")
    if name == "count":
        return len(events)
    if name == "cost":
        return sum((event["cost"] for event in events), Decimal(0))
    if name == "charge":
        return charge
    if name == "margin":
        return margin
    if name == "margin_pct":
        return float(margin / charge * 100) if charge else None
    if name == "uncharged_count":
        return len(events) - len(charged)
    if name == "uncharged_cost":
        return sum((event["cost"] for event in events if event.get("charge") is None), Decimal(0))
    if name == "error_count":
        return errors
    if name == "error_rate":
        return errors / len(events) if events else None
    if name == "latency_avg":
        return float(sum(latencies)) / len(latencies) if latencies else None
    if name.startswith("latency_p"):
        return _percentile(latencies, int(name.removeprefix("latency_p")) / 100)
    if name == "users":
        return len({event["user"] for event in events if event.get("user") is not None})
    raise AssertionError(name)


def _render(name: str, value, tz):
    if isinstance(value, datetime):
        return value.astimezone(tz).isoformat()
    if name in MONEY:
        return money_str(value)
    return value


def _nulls_last_sort(rows: list, key, descending: bool) -> list:
    present = [row for row in rows if key(row) is not None]
    missing = [row for row in rows if key(row) is None]
    return sorted(present, key=key, reverse=descending) + missing


def oracle_report(events: list[dict], spec: ReportSpec, *, timezone_name: str, visible: set[str]) -> dict:
    """`{"columns", "rows", "totals", "truncated"}` as the engine must answer them."""
    with localcontext() as context:
        context.prec = 200  # sums stay exact, as in PostgreSQL
        return _report(events, spec, timezone_name=timezone_name, visible=visible)


def _report(events: list[dict], spec: ReportSpec, *, timezone_name: str, visible: set[str]) -> dict:
    tz = ZoneInfo(timezone_name)
    projects = set(spec.projects) & visible if spec.projects else visible
    selected = [event for event in events if _matches(event, spec, projects)]
    groups: dict[tuple, list] = {}
    for event in selected:
        for key in _keys(event, spec.group_by, tz):
            groups.setdefault(key, []).append(event)
    if not spec.group_by:
        groups = {(): selected}
    rows = [list(key) + [metric(name, members) for name in spec.metrics] for key, members in groups.items()]
    # Least significant first: stable sorts make the requested column win, groups break ties.
    for index in reversed(range(len(spec.group_by))):
        rows = _nulls_last_sort(rows, lambda row, index=index: _instant(row[index]), False)
    if spec.order_by is not None:
        index = spec.columns.index(spec.order_by)
        rows = _nulls_last_sort(rows, lambda row: _instant(row[index]), spec.descending)
    table = [[_render(column, value, tz) for column, value in zip(spec.columns, row)] for row in rows]
    totals = {name: _render(name, metric(name, selected), tz) for name in spec.metrics}
    # Events whose amounts no exchange rate converted yet (cost None) are counted, not summed.
    totals["unconverted_count"] = sum(1 for event in selected if event.get("cost") is None)
    return {"columns": list(spec.columns), "rows": table[:spec.limit], "totals": totals,
            "truncated": len(table) > spec.limit}


def _instant(value):
    # Buckets compare as instants; strings compare by code point, like COLLATE "C".
    return value.timestamp() if isinstance(value, datetime) else value


def assert_same_report(actual: dict, expected: dict) -> None:
    """Equal, with floats compared to 1e-9 relative."""
    assert actual["columns"] == expected["columns"]
    assert len(actual["rows"]) == len(expected["rows"]), (actual["rows"], expected["rows"])
    for got, want in zip(actual["rows"], expected["rows"]):
        assert _close(got, want), (actual["rows"], expected["rows"])
    assert _close(actual["totals"], expected["totals"]), (actual["totals"], expected["totals"])
    assert actual["truncated"] == expected["truncated"]


def _close(got, want) -> bool:
    if isinstance(want, dict):
        return isinstance(got, dict) and got.keys() == want.keys() and all(_close(got[k], want[k]) for k in want)
    if isinstance(want, list):
        return isinstance(got, list) and len(got) == len(want) and all(map(_close, got, want))
    if isinstance(want, float) and isinstance(got, (int, float)) and not isinstance(got, bool):
        return math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-12)
    return type(got) is type(want) and got == want
