"""Taxonomy health: the playbook's five common problems as charts and tables, each
offender linking to its events (or to the report that lists them).

1. inconsistent environment values, 2. missing charge values, 3. metadata keys that
change names, 4. action names only backend engineers can decode: the numbers of
`queries.health.taxonomy_health`, the selector behind `GET /api/v1/taxonomy/health`;
5. no budget alerts for critical projects: projects by cost, those without an active
budget marked (budgets.selectors and one report).
"""
from decimal import Decimal
from urllib.parse import urlencode

from django.shortcuts import render
from django.urls import reverse

from budgets.selectors import budget_list
from koala.exceptions import KoalaError
from koala.money import money_display
from organizations.selectors import project_list_visible
from queries.health import taxonomy_health as taxonomy_health_report
from queries.views import charts
from queries.views.access import Viewer, org_page
from queries.views.periods import PERIODS, period_from_request
from queries.views.reports import report

TREND_SERIES = (("missing_charge", "Missing charge"), ("missing_traces", "Missing traces"), ("flagged", "Flagged"))


def _percent(share) -> str:
    return "—" if share is None else f"{share * 100:,.1f} %"


def _events_link(slug: str, period, **filters) -> str:
    """The event explorer filtered to the offender, over the page's period."""
    query = {name: value for name, value in filters.items() if value is not None}
    query.update(since=period.start.isoformat(), until=period.end.isoformat())
    return f"{reverse('dashboard:events', args=[slug])}?{urlencode(query)}"


def _explore_link(slug: str, period, *, group: str, metrics: list[str], order_by: str) -> str:
    query = [("range", "custom"), ("from", period.start.isoformat()), ("to", period.end.isoformat()),
             ("group1", group), ("order_by", order_by), ("limit", "20")] + [("metric", name) for name in metrics]
    return f"{reverse('dashboard:explore', args=[slug])}?{urlencode(query)}"


def _budget_coverage(viewer: Viewer, period) -> list[dict]:
    """Projects by cost in the period, each with its active budgets (an organization-wide
    budget covers every project)."""
    organization = viewer.organization
    budgets = list(budget_list(organization=organization).filter(active=True))
    organization_wide = [budget.name for budget in budgets if budget.project_id is None]
    by_project: dict = {}
    for budget in budgets:
        if budget.project_id is not None:
            by_project.setdefault(budget.project.slug, []).append(budget.name)
    result = report(organization=organization, body={**period.window(), "group_by": ["project"], "metrics": ["cost"],
                                                     "order_by": "-cost", "limit": 100})
    spend = {row[0]: Decimal(row[1]) for row in result["rows"]}
    slugs = sorted(project_list_visible(organization=organization).values_list("slug", flat=True),
                   key=lambda slug: (-spend.get(slug, Decimal(0)), slug))
    return [{"project": slug, "cost": money_display(spend.get(slug, Decimal(0)), organization.reporting_currency),
             "budgets": by_project.get(slug, []) + organization_wide,
             "uncovered": not (by_project.get(slug) or organization_wide)} for slug in slugs]


@org_page()
def taxonomy_health(request, viewer: Viewer):
    organization = viewer.organization
    slug = organization.slug
    period = period_from_request(request.GET, timezone_name=organization.timezone)
    project = request.GET.get("project") or None
    context = {"viewer": viewer, "page": "taxonomy", "period": period, "periods": PERIODS, "project": project,
               "project_choices": list(project_list_visible(organization=organization).values_list("slug", flat=True))}
    try:
        health = taxonomy_health_report(organization=organization, api_key=None, start=period.start, end=period.end,
                                        project_slug=project)
        coverage = _budget_coverage(viewer, period)
    except KoalaError as error:
        context["error"] = error.message
        return render(request, "dashboard/taxonomy_health.html", context, status=error.status)
    currency = health["currency"]
    environment = health["environment"]
    environment_values = [{**item, "link": _events_link(slug, period, environment=item["value"], project=project)}
                          for item in environment["values"]]
    days = [item["day"][5:] for item in health["trend"]]
    trend_series = [(label, [Decimal(item[key]) for item in health["trend"]]) for key, label in TREND_SERIES]
    context.update(
        health=health,
        events=f"{health['events']:,}",
        missing_charge={"count": f"{health['missing_charge']['count']:,}",
                        "share": _percent(health["missing_charge"]["share"]),
                        "cost": money_display(Decimal(health["missing_charge"]["cost"]), currency),
                        "link": _explore_link(slug, period, group="application",
                                              metrics=["uncharged_count", "uncharged_cost", "count"],
                                              order_by="-uncharged_cost")},
        missing_traces={"count": f"{health['missing_traces']['count']:,}",
                        "share": _percent(health["missing_traces"]["share"])},
        environment={"missing": f"{environment['missing']['count']:,}",
                     "missing_share": _percent(environment["missing"]["share"]),
                     "unknown": f"{environment['unknown']['count']:,}",
                     "unknown_share": _percent(environment["unknown"]["share"]), "values": environment_values},
        environment_chart=charts.stacked_bars(
            title="Events by environment value", labels=[str(item["value"]) for item in environment["values"]],
            series=[("events", [Decimal(item["count"]) for item in environment["values"]])])
        if environment["values"] else None,
        drift=[{**item, "applications": [{**app, "link": _events_link(slug, period, application=app["application"],
                                                                     project=project)}
                                         for app in item["applications"]]} for item in health["metadata_drift"]],
        actions=[{**item, "link": _events_link(slug, period, action=item["action"], project=project)}
                 for item in health["action_naming"]],
        flags=[{**item, "cost": money_display(Decimal(item["cost"]), currency)} for item in health["flags"]],
        trend_chart=charts.lines(title="Problems per day", labels=days, series=trend_series) if days else None,
        trend_legend=[{"name": label, "colour": charts.colour(index)} for index, (_, label) in enumerate(TREND_SERIES)],
        coverage=coverage, uncovered=sum(item["uncovered"] for item in coverage),
    )
    return render(request, "dashboard/taxonomy_health.html", context)
