"""A report answer (the API's body) as cells people read: same numbers, display format.

Amounts are rounded to the currency's minor units by `money_display` (the API keeps
the exact decimals); percentages to one decimal; time buckets as local dates.
"""
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from koala.money import money_display
from queries.spec import TIME_GROUPS

AMOUNT_METRICS = ("cost", "charge", "margin", "uncharged_cost")
PERCENT_METRICS = ("margin_pct",)
RATE_METRICS = ("error_rate",)
LATENCY_METRICS = ("latency_avg", "latency_p50", "latency_p95", "latency_p99")
LABELS = {
    "count": "Events", "cost": "Cost", "charge": "Charge", "margin": "Margin", "margin_pct": "Margin %",
    "uncharged_count": "Events without charge", "uncharged_cost": "Cost without charge", "error_count": "Errors",
    "error_rate": "Error rate", "latency_avg": "Latency avg (ms)", "latency_p50": "Latency p50 (ms)",
    "latency_p95": "Latency p95 (ms)", "latency_p99": "Latency p99 (ms)", "users": "Customers",
    "hour": "Hour", "day": "Day", "week": "Week", "month": "Month", "project": "Project",
    "environment": "Environment", "provider": "Provider", "application": "Application", "action": "Action",
    "model": "Model", "user": "Customer", "tag": "Tag", "status": "Status",
}


@dataclass(frozen=True)
class Cell:
    text: str
    numeric: bool = False
    negative: bool = False


def bucket_label(value: str, group: str) -> str:
    moment = datetime.fromisoformat(value)
    if group == "hour":
        return moment.strftime("%Y-%m-%d %H:%M")
    if group == "month":
        return moment.strftime("%Y-%m")
    return moment.date().isoformat()


def number_value(name: str, value) -> Decimal | None:
    """A metric's value as a Decimal for charts and comparisons (None stays None)."""
    if value is None:
        return None
    return Decimal(str(value))


def display(name: str, value, currency: str) -> Cell:
    """One value of a report column, as people read it."""
    if name in TIME_GROUPS:
        return Cell(bucket_label(value, name) if value is not None else "—")
    if name in LABELS and name not in METRIC_NAMES:
        return Cell("(none)" if value is None else str(value))
    if value is None:
        return Cell("—", numeric=True)
    number = Decimal(str(value))
    if name in AMOUNT_METRICS:
        text = money_display(number, currency)
    elif name in PERCENT_METRICS:
        text = f"{number:,.1f} %"
    elif name in RATE_METRICS:
        text = f"{number * 100:,.1f} %"
    elif name in LATENCY_METRICS:
        text = f"{number:,.0f}"
    else:
        text = f"{number:,}"
    return Cell(text, numeric=True, negative=number < 0)


METRIC_NAMES = frozenset(("count", "cost", "charge", "margin", "margin_pct", "uncharged_count", "uncharged_cost",
                          "error_count", "error_rate", "latency_avg", "latency_p50", "latency_p95", "latency_p99",
                          "users"))


def table(result: dict) -> dict:
    """`{"headers": [...], "rows": [[Cell, ...]], "totals": [Cell | None, ...]}` for a template."""
    currency = result["currency"]
    columns = result["columns"]
    rows = [[display(name, value, currency) for name, value in zip(columns, row)] for row in result["rows"]]
    totals = [display(name, result["totals"].get(name), currency) if name in result["totals"] else None
              for name in columns]
    headers = [{"name": name, "label": LABELS.get(name, name), "numeric": name in METRIC_NAMES} for name in columns]
    return {"headers": headers, "rows": rows, "totals": totals, "truncated": result.get("truncated", False)}


def window_label(result: dict) -> str:
    """The report's half-open window as people read it, in the organization's offset."""
    start, end = (datetime.fromisoformat(result[name]) for name in ("from", "to"))
    return f"{start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} (UTC{start:%z}), end excluded"
