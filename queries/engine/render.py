"""How report values leave the engine: amounts as exact decimal strings, rates
and percentages as numbers (null where undefined), buckets as RFC 3339 with the
organization's offset."""
import csv
import io
from datetime import datetime
from zoneinfo import ZoneInfo

from koala.money import money_str
from queries.engine.metrics import MONEY, Metric
from queries.spec import TIME_GROUPS


def render_metric(metric: Metric, parts: dict):
    value = metric.finish(*(parts[part] for part in metric.parts))
    return money_str(value) if metric.kind == MONEY else value


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
