"""Budgets as people see them: each active budget's current period, spend, percent and
linear forecast (the same `budget_standings` as `GET /api/v1/budgets/{id}/status`),
and the alert history."""
from decimal import Decimal

from django.utils import timezone

from budgets.models import BudgetAlert
from budgets.selectors import budget_list, budget_standings
from koala.money import money_display
from organizations.models import Organization

ALERT_HISTORY = 50


def _bar(percent: Decimal) -> str:
    """A CSS width: 0-100, a budget over its amount fills the bar."""
    return f"{min(max(percent, Decimal(0)), Decimal(100)):.1f}"


def budget_rows(*, organization: Organization) -> list[dict]:
    """One row per active budget (one statement for all their spend)."""
    budgets = list(budget_list(organization=organization).filter(active=True))
    currency = organization.reporting_currency
    rows = []
    for standing in budget_standings(budgets=budgets, now=timezone.now()):
        budget, percent, forecast = standing.budget, standing.percent, standing.forecast
        forecast_percent = forecast * 100 / budget.amount
        rows.append({
            "id": budget.pk, "name": budget.name, "project": budget.project.slug if budget.project_id else None,
            "period": f"{budget.get_period_display()} from {standing.period.first_day.isoformat()}",
            "spent": money_display(standing.spent, currency), "amount": money_display(budget.amount, currency),
            "percent": f"{percent:,.1f} %", "percent_bar": _bar(percent),
            "forecast": money_display(forecast, currency), "forecast_percent": f"{forecast_percent:,.1f} %",
            "forecast_bar": _bar(forecast_percent), "over": standing.spent >= budget.amount,
            "forecast_over": forecast >= budget.amount, "thresholds": budget.thresholds,
            "filters": budget.filters,
        })
    return rows


def budget_alert_history(*, organization: Organization) -> list[dict]:
    alerts = (BudgetAlert.objects.filter(organization=organization).select_related("budget")
              .order_by("-triggered_at")[:ALERT_HISTORY])
    currency = organization.reporting_currency
    return [{"budget": alert.budget.name, "budget_id": alert.budget_id, "kind": alert.get_kind_display(),
             "threshold": alert.threshold if alert.kind == BudgetAlert.Kind.THRESHOLD else None,
             "triggered_at": alert.triggered_at, "sent_at": alert.sent_at,
             "spent": money_display(alert.spent, currency)} for alert in alerts]
