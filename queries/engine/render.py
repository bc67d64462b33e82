"""How report values leave the engine: amounts as exact decimal strings, rates
and percentages as numbers (null where undefined), buckets as RFC 3339 with the
organization's offset."""
import csv
import io
from datetime import datetime
from decimal import Decimal, localcontext
from zoneinfo import ZoneInfo

from koala.money import money_str
from queries.engine.metrics import MONEY, Metric
from queries.spec import TIME_GROUPS


def exact_money_str(amount: Decimal | None) -> str | None:
    """`money_str` with enough precision for any sum: `normalize()` rounds to the
    context's 28 digits, and numeric(38, 18) sums have more."""
    if amount is None:
        return None
    with localcontext() as context:
        context.prec = max(context.prec, len(amount.as_tuple().digits))
        return money_str(amount)


def render_metric(metric: Metric, parts: dict):
    value = metric.finish(*(parts[part] for part in metric.parts))
    return exact_money_str(value) if metric.kind == MONEY else value


def render_group(name: str, value, tz: ZoneInfo):
    if name in TIME_GROUPS and isinstance(value, datetime):
        return value.astimezone(tz).isoformat()
    return value


def _cell(value) -> str:
    return "" if value is None else str(value)


def report_csv(columns: list[str], rows: list[list]) -> str:
    """The report's table as CSV: a header row, then one line per row; null is empty."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_cell(value) for value in row])
    return buffer.getvalue()
