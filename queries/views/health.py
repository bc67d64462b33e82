"""Taxonomy health and budgets pages."""
from django.shortcuts import render

from queries.views.access import Viewer, org_page
from queries.views.budget_panel import budget_alert_history, budget_rows
from queries.views.periods import PERIODS, period_from_request


@org_page()
def budgets(request, viewer: Viewer):
    organization = viewer.organization
    context = {"viewer": viewer, "page": "budgets", "budgets": budget_rows(organization=organization),
               "alerts": budget_alert_history(organization=organization)}
    return render(request, "dashboard/budgets.html", context)


@org_page()
def taxonomy_health(request, viewer: Viewer):
    period = period_from_request(request.GET, timezone_name=viewer.organization.timezone)
    context = {"viewer": viewer, "page": "taxonomy", "period": period, "periods": PERIODS, "health": None}
    return render(request, "dashboard/taxonomy_health.html", context)
