"""Customers: each customer's cost, charge, margin and margin %, with a daily cost
sparkline; customers whose margin is negative stand out."""
from decimal import Decimal

from django.shortcuts import render

from koala.exceptions import KoalaError
from queries.views import charts
from queries.views.access import Viewer, org_page
from queries.views.periods import PERIODS, period_from_request
from queries.views.present import display
from queries.views.reports import by_day, days_between, report

CUSTOMER_METRICS = ["count", "cost", "charge", "margin", "margin_pct"]
MAX_CUSTOMERS = 100


@org_page()
def customers(request, viewer: Viewer):
    organization = viewer.organization
    period = period_from_request(request.GET, timezone_name=organization.timezone)
    context = {"viewer": viewer, "page": "customers", "period": period, "periods": PERIODS}
    try:
        result = report(organization=organization, body={
            **period.window(), "group_by": ["user"], "metrics": CUSTOMER_METRICS, "order_by": "-cost",
            "limit": MAX_CUSTOMERS})
        users = [row[0] for row in result["rows"]]
        trend = report(organization=organization, body={
            **period.window(), "group_by": ["day", "user"], "metrics": ["cost"], "filters": {"user": users},
            "limit": 10000}) if users else None
    except KoalaError as error:
        context["error"] = error.message
        return render(request, "dashboard/customers.html", context, status=error.status)
    costs = by_day(trend, metric="cost", group="user") if trend else {}
    days = days_between(period.first_day, period.last_day)
    currency = result["currency"]
    rows = []
    for row in result["rows"]:
        values = dict(zip(result["columns"], row))
        margin = Decimal(values["margin"])
        rows.append({
            "user": values["user"],
            "cells": [display(name, values[name], currency) for name in CUSTOMER_METRICS],
            "negative": margin < 0,
            "spark": charts.sparkline(title=f"Daily cost of {values['user'] or 'events without a customer'}",
                                      values=[costs.get((day, values["user"]), Decimal(0)) or Decimal(0)
                                              for day in days]),
        })
    context.update(rows=rows, truncated=result["truncated"], negative_count=sum(row["negative"] for row in rows))
    return render(request, "dashboard/customers.html", context)
