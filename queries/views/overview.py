"""Overview: the period's cost, charge and margin against the previous period, the
daily cost by provider, margin over time, the top projects, models and customers."""
import re
from decimal import Decimal

from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse

from koala.exceptions import KoalaError
from koala.money import money_display
from queries.views import charts
from queries.views.access import Viewer, memberships_of, org_page
from queries.views.budget_panel import budget_rows
from queries.views.periods import PERIODS, period_from_request
from queries.views.present import table
from queries.views.reports import by_day, days_between, report

TILE_METRICS = ["count", "cost", "charge", "margin", "margin_pct"]
TOP_METRICS = ["cost", "charge", "margin", "margin_pct"]
TOP_LIMIT = 5
SLUG = re.compile(r"[-a-zA-Z0-9_]+")  # what the URL's <slug:org_slug> accepts
CHART_PROVIDERS = 6  # more than this many providers: the rest are drawn as "other"


def home(request):
    """`/`: the signed-in person's organization, or a choice when they have several."""
    if not request.user.is_authenticated:
        return redirect(f"{reverse('dashboard:login')}?next=/")
    memberships = memberships_of(user=request.user)
    if len(memberships) == 1:
        return redirect("dashboard:overview", org_slug=memberships[0].organization.slug)
    return render(request, "dashboard/choose_organization.html", {"memberships": memberships})


def switch(request):
    """The switcher's form (works without JavaScript): to the chosen organization's overview."""
    slug = request.GET.get("org", "")
    if not slug:
        return redirect("dashboard:home")
    if not SLUG.fullmatch(slug):
        raise Http404("No such organization.")
    return redirect("dashboard:overview", org_slug=slug)  # the page itself answers 404 to non-members


def _tile(name: str, label: str, current: dict, previous: dict, currency: str) -> dict:
    now, before = current.get(name), previous.get(name)
    now_number = None if now is None else Decimal(str(now))
    before_number = None if before is None else Decimal(str(before))
    if name == "margin_pct":
        text = "—" if now_number is None else f"{now_number:,.1f} %"
        previous_text = "—" if before_number is None else f"{before_number:,.1f} %"
    elif name == "count":
        text, previous_text = f"{now_number or 0:,}", f"{before_number or 0:,}"
    else:
        text, previous_text = money_display(now_number, currency), money_display(before_number, currency)
    # One sentence against the previous period, e.g. "+12.5 % vs 80.00 USD", "up from 0.00 USD".
    comparison, direction = "nothing to compare with", "flat"  # a margin % without charges
    if now_number is not None and before_number is not None:
        delta = now_number - before_number
        direction = "up" if delta > 0 else "down" if delta < 0 else "flat"
        if not delta:
            comparison = f"no change vs {previous_text}"
        elif name == "margin_pct":
            comparison = f"{delta:+,.1f} points vs {previous_text}"
        elif before_number:
            comparison = f"{delta / abs(before_number) * 100:+,.1f} % vs {previous_text}"
        else:
            comparison = f"{direction} from {previous_text}"
    return {"name": name, "label": label, "value": text, "comparison": comparison, "direction": direction,
            "negative": now_number is not None and now_number < 0}


def _top(organization, period, group: str) -> dict:
    return table(report(organization=organization, body={
        **period.window(), "group_by": [group], "metrics": TOP_METRICS, "order_by": "-cost", "limit": TOP_LIMIT}))


def _daily_charts(result: dict, period) -> dict:
    """Daily cost stacked by provider and margin per day, both from one report grouped
    by day and provider (margin and cost add up over providers, exactly)."""
    costs = by_day(result, metric="cost", group="provider")
    margins_by_provider = by_day(result, metric="margin", group="provider")
    spend: dict = {}
    margins: dict = {}
    for (day, provider), cost in costs.items():
        spend[provider] = spend.get(provider, Decimal(0)) + (cost or 0)
        margins[day] = margins.get(day, Decimal(0)) + (margins_by_provider[(day, provider)] or 0)
    ranked = sorted(spend, key=lambda provider: (-spend[provider], provider or ""))
    shown, rest = ranked[:CHART_PROVIDERS], ranked[CHART_PROVIDERS:]
    days = days_between(period.first_day, period.last_day)
    series = [(provider or "(none)", [costs.get((day, provider), Decimal(0)) for day in days]) for provider in shown]
    if rest:
        series.append(("other", [sum((costs.get((day, provider), Decimal(0)) or 0 for provider in rest), Decimal(0))
                                 for day in days]))
    labels = [day.strftime("%m-%d") for day in days]
    return {
        "cost_chart": charts.stacked_bars(title=f"Daily cost by provider, {period.label}", labels=labels,
                                          series=series),
        "cost_legend": [{"name": name, "colour": charts.colour(index)} for index, (name, _) in enumerate(series)],
        "margin_chart": charts.line(title=f"Margin per day, {period.label}", labels=labels,
                                    values=[margins.get(day) for day in days]),
    }


@org_page()
def overview(request, viewer: Viewer):
    organization = viewer.organization
    period = period_from_request(request.GET, timezone_name=organization.timezone)
    context = {"viewer": viewer, "period": period, "periods": PERIODS, "page": "overview", "compare": True}
    try:
        # One report feeds the tiles (its totals cover every event once) and both charts.
        current = report(organization=organization, body={**period.window(), "group_by": ["day", "provider"],
                                                          "metrics": TILE_METRICS, "limit": 10000})
        previous = report(organization=organization, body={**period.previous_window(), "metrics": TILE_METRICS})
        currency = current["currency"]
        labels = {"count": "Events", "cost": "Cost", "charge": "Charge", "margin": "Margin", "margin_pct": "Margin %"}
        context["tiles"] = [_tile(name, labels[name], current["totals"], previous["totals"], currency)
                            for name in TILE_METRICS]
        context.update(_daily_charts(current, period))
        context["top"] = [("Projects", "top-projects", _top(organization, period, "project")),
                          ("Models", "top-models", _top(organization, period, "model")),
                          ("Customers", "top-customers", _top(organization, period, "user"))]
        context["budgets"] = budget_rows(organization=organization)
    except KoalaError as error:
        context["error"] = error.message
        return render(request, "dashboard/overview.html", context, status=error.status)
    return render(request, "dashboard/overview.html", context)
