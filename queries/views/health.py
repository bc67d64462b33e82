"""Taxonomy health: the playbook's common problems as charts, offenders linking to their events."""
from django.shortcuts import render

from queries.views.access import Viewer, org_page
from queries.views.periods import PERIODS, period_from_request


@org_page()
def taxonomy_health(request, viewer: Viewer):
    period = period_from_request(request.GET, timezone_name=viewer.organization.timezone)
    context = {"viewer": viewer, "page": "taxonomy", "period": period, "periods": PERIODS, "health": None}
    return render(request, "dashboard/taxonomy_health.html", context)
