"""Reports for pages: the API's own selectors, run for a person (the whole organization)."""
from datetime import date, datetime, timedelta
from decimal import Decimal

from organizations.models import Organization
from queries.selectors import report_execute, report_run
from queries.spec import report_spec_parse

from django.utils import timezone


def report(*, organization: Organization, body: dict) -> dict:
    """`POST /api/v1/reports` for an organization member: the same selector, so the same
    numbers; no API key, so every project of the organization."""
    return report_run(organization=organization, api_key=None, body=body)


def report_with_range(*, organization: Organization, body: dict) -> dict:
    """Like `report`, but the body may give a saved query's relative `range`."""
    spec = report_spec_parse(body, timezone_name=organization.timezone, now=timezone.now(), allow_range=True)
    return report_execute(organization=organization, api_key=None, spec=spec)


def days_between(first: date, last: date) -> list[date]:
    return [first + timedelta(days=offset) for offset in range((last - first).days + 1)]


def by_day(result: dict, *, metric: str, group: str | None = None) -> dict:
    """`{(day, group value): Decimal}` from a report grouped by day (and one more group)."""
    columns = result["columns"]
    day_at, metric_at = columns.index("day"), columns.index(metric)
    group_at = columns.index(group) if group else None
    values = {}
    for row in result["rows"]:
        day = datetime.fromisoformat(row[day_at]).date()
        key = (day, row[group_at]) if group else day
        values[key] = Decimal(str(row[metric_at])) if row[metric_at] is not None else None
    return values
