"""Explore: a report builder over the report engine, with a chart, a table, CSV and
"save as a saved query"; the form's fields are the report body's, one for one."""
import json
from decimal import Decimal

from django.contrib import messages
from django.http import HttpResponse, QueryDict
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from koala.exceptions import KoalaError
from organizations.selectors import project_list_visible
from queries.engine import report_csv
from queries.services import saved_query_create
from queries.spec import DEFAULT_METRICS, GROUPS, METRICS, RANGES, STRING_FILTERS, TIME_GROUPS
from queries.views import charts
from queries.views.access import Viewer, org_page
from queries.views.present import LABELS, bucket_label, table, window_label
from queries.views.reports import report_with_range

RANGE_LABELS = {"today": "Today", "last_24_hours": "Last 24 hours", "last_7_days": "Last 7 days",
                "last_30_days": "Last 30 days", "this_month": "This month", "previous_month": "Previous month",
                "custom": "Custom (from/to)"}
FILTER_FIELDS = STRING_FILTERS + ("tags",)
CHART_ROWS = 30
CHART_SERIES = 6
PREFERRED_CHART_METRICS = ("cost", "margin", "charge", "count")


def _list(params: QueryDict, name: str) -> list[str]:
    """A comma-separated text field as a list (blank items dropped)."""
    return [item.strip() for item in params.get(name, "").split(",") if item.strip()]


def default_window(*, timezone_name: str) -> dict:
    """The first view: the last 7 days, whole local days with today (what the rollups answer)."""
    return {"range": "last_7_days"}


def body_from_form(params: QueryDict, *, timezone_name: str) -> dict:
    """The report body the form describes; the engine validates it, as for the API."""
    if not params.get("range"):
        params = params.copy()
        params.update(default_window(timezone_name=timezone_name))
    chosen_range = params["range"]
    body: dict = {}
    if chosen_range == "custom":
        body["from"], body["to"] = params.get("from", ""), params.get("to", "")
    else:
        body["range"] = chosen_range
    projects = [slug for slug in params.getlist("project") if slug]
    if projects:
        body["projects"] = projects
    filters = {name: _list(params, name) for name in FILTER_FIELDS if _list(params, name)}
    if filters:
        body["filters"] = filters
    group_by = [params.get(f"group{index}") for index in (1, 2, 3) if params.get(f"group{index}")]
    body["group_by"] = group_by if "group1" in params else ["day"]
    body["metrics"] = params.getlist("metric") or list(DEFAULT_METRICS)
    if params.get("order_by"):
        body["order_by"] = params["order_by"]
    if params.get("limit"):
        try:
            body["limit"] = int(params["limit"])
        except ValueError:
            body["limit"] = params["limit"]  # the engine's message names the field
    return body


def _chart_metric(metrics: list[str]) -> str | None:
    for name in PREFERRED_CHART_METRICS:
        if name in metrics:
            return name
    return metrics[0] if metrics else None


def report_chart(result: dict, *, title: str):
    """A chart of one report: time first: bars (stacked by the second group) or a line;
    otherwise bars of the first rows by the first group. None when nothing fits."""
    columns = result["columns"]
    groups = [name for name in columns if name in GROUPS]
    metric = _chart_metric([name for name in columns if name in METRICS])
    if not groups or metric is None or not result["rows"]:
        return None
    at = columns.index(metric)

    def value(row) -> Decimal:
        return Decimal(str(row[at])) if row[at] is not None else Decimal(0)

    label = f"{title}: {LABELS.get(metric, metric)}"
    first = groups[0]
    if first in TIME_GROUPS:
        buckets = sorted({row[0] for row in result["rows"]})
        labels = [bucket_label(bucket, first) for bucket in buckets]
        if len(groups) > 1:
            totals: dict = {}
            for row in result["rows"]:
                totals[row[1]] = totals.get(row[1], Decimal(0)) + value(row)
            names = sorted(totals, key=lambda name: (-totals[name], str(name)))[:CHART_SERIES]
            series = [(str(name) if name is not None else "(none)",
                       [sum((value(row) for row in result["rows"] if row[0] == bucket and row[1] == name), Decimal(0))
                        for bucket in buckets]) for name in names]
            return charts.stacked_bars(title=label, labels=labels, series=series), series
        values = {row[0]: (Decimal(str(row[at])) if row[at] is not None else None) for row in result["rows"]}
        return charts.line(title=label, labels=labels, values=[values.get(bucket) for bucket in buckets]), None
    rows = result["rows"][:CHART_ROWS]
    labels = [str(row[0]) if row[0] is not None else "(none)" for row in rows]
    return charts.stacked_bars(title=label, labels=labels, series=[(metric, [value(row) for row in rows])]), None


def chart_context(result: dict, *, title: str) -> dict:
    drawn = report_chart(result, title=title)
    if drawn is None:
        return {"chart": None, "legend": []}
    chart, series = drawn
    legend = [{"name": name, "colour": charts.colour(index)} for index, (name, _) in enumerate(series or [])]
    return {"chart": chart, "legend": legend}


def csv_response(result: dict, *, filename: str) -> HttpResponse:
    return HttpResponse(report_csv(result["columns"], result["rows"]), content_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": f'attachment; filename="{filename}.csv"'})


@org_page()
def explore(request, viewer: Viewer):
    organization = viewer.organization
    params = request.GET
    if not params.get("range"):
        params = params.copy()
        params.update(default_window(timezone_name=organization.timezone))
    body = body_from_form(params, timezone_name=organization.timezone)
    context = {
        "viewer": viewer, "page": "explore", "params": params, "body": body,
        "body_json": json.dumps(body), "ranges": RANGE_LABELS, "chosen_range": params["range"],
        "projects": list(project_list_visible(organization=organization).values_list("slug", flat=True)),
        "chosen_projects": params.getlist("project"), "groups": GROUPS, "metrics": METRICS,
        "chosen_groups": body["group_by"] + [""] * (3 - len(body["group_by"])), "labels": LABELS,
        "chosen_metrics": body["metrics"], "filter_fields": FILTER_FIELDS,
        "filter_values": {name: params.get(name, "") for name in FILTER_FIELDS},
        "order_choices": [(f"-{name}", f"{LABELS[name]}, highest first") for name in METRICS]
                         + [(name, f"{LABELS[name]}, ascending") for name in GROUPS],
        "query_string": params.urlencode(),
    }
    try:
        result = report_with_range(organization=organization, body=body)
    except KoalaError as error:
        context["error"] = error.message
        return render(request, "dashboard/explore.html", context, status=error.status)
    if params.get("format") == "csv":
        return csv_response(result, filename="report")
    context.update(result=table(result), window=window_label(result),
                   **chart_context(result, title="Report"))
    return render(request, "dashboard/explore.html", context)


@require_POST
@org_page(manage=True)
def explore_save(request, viewer: Viewer):
    """Saves the report the form described (its relative range kept) as a saved query."""
    organization = viewer.organization
    back = f"{reverse('dashboard:explore', args=[organization.slug])}?{request.POST.get('query_string', '')}"
    try:
        query = json.loads(request.POST.get("query", ""))
        saved_query = saved_query_create(organization=organization, api_key=None, name=request.POST.get("name", ""),
                                         description=request.POST.get("description", ""), query=query)
    except (ValueError, KoalaError) as error:
        messages.error(request, getattr(error, "message", "The report could not be read; build it again."))
        return redirect(back)
    messages.success(request, f"Saved as '{saved_query.name}'.")
    return redirect("dashboard:saved_query", org_slug=organization.slug, saved_query_id=saved_query.pk)
