"""Reads: budgets, where they stand in their period, their alerts. The SQL that adds
up spend for many budgets at once lives in budgets/spend.py."""
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.db.models import QuerySet

from budgets.models import Budget, BudgetAlert
from budgets.periods import Period, period_containing
from budgets.spend import SPIKE_BASELINE_DAYS, ZERO, hourly_spend, periods_at, spend_exact
from koala.exceptions import NotFound
from organizations.models import ApiKey, Organization

__all__ = ["SPIKE_BASELINE_DAYS", "ZERO", "Standing", "budget_alerts_in", "budget_get", "budget_hourly_spend",
           "budget_list", "budget_period", "budget_standings", "budget_status"]


@dataclass(frozen=True)
class Standing:
    """Where a budget stands in its current period at `now`."""

    budget: Budget
    period: Period
    now: datetime
    spent: Decimal

    @property
    def percent(self) -> Decimal:
        return self.spent * 100 / self.budget.amount

    @property
    def elapsed(self) -> timedelta:
        return max(self.now - self.period.start, timedelta(minutes=1))

    @property
    def forecast(self) -> Decimal:
        """Linear run rate: the period so far, extended to its end."""
        if self.now >= self.period.end:
            return self.spent
        ratio = Decimal(self.period.length.total_seconds()) / Decimal(self.elapsed.total_seconds())
        return self.spent * ratio

    def reached_at(self) -> datetime | None:
        """When the amount is reached at the current run rate (None: no spend yet)."""
        if self.spent <= 0:
            return None
        if self.spent >= self.budget.amount:
            return self.now
        seconds = Decimal(self.elapsed.total_seconds()) * self.budget.amount / self.spent
        return self.period.start + timedelta(seconds=float(seconds))


def budget_period(*, budget: Budget, now: datetime) -> Period:
    return period_containing(budget.period, now, budget.organization.timezone)


def budget_standings(*, budgets: list[Budget], now: datetime) -> list[Standing]:
    """Each budget's period and exact spend at `now`, a few statements for any number
    of budgets (see budgets/spend.py). `budgets` come with their organization loaded."""
    if not budgets:
        return []
    periods = periods_at(budgets, now)
    spent = spend_exact(budgets, periods)
    return [Standing(budget=budget, period=periods[budget.pk], now=now, spent=spent[budget.pk])
            for budget in budgets]


def budget_hourly_spend(*, budgets: list[Budget], hour_start: datetime) -> dict[int, list[Decimal]]:
    """Spend in the UTC hour from `hour_start` (so far) and in the same hour of each of
    the previous 7 days: `{budget_id: [this hour, 1 day back, ..., 7 days back]}`."""
    return hourly_spend(budgets, hour_start)


def budget_list(*, organization: Organization, api_key: ApiKey | None = None) -> QuerySet[Budget]:
    """The organization's budgets; a project key sees only its project's."""
    budgets = Budget.objects.filter(organization=organization).select_related("project", "organization")
    if api_key is not None and api_key.project_id is not None:
        budgets = budgets.filter(project_id=api_key.project_id)
    return budgets.order_by("name", "id")


def budget_get(*, organization: Organization, api_key: ApiKey | None, budget_id: int) -> Budget:
    budget = budget_list(organization=organization, api_key=api_key).filter(pk=budget_id).first()
    if budget is None:
        raise NotFound(f"No budget {budget_id}.")
    return budget


def budget_alerts_in(*, budget: Budget, period: Period) -> QuerySet[BudgetAlert]:
    return (BudgetAlert.objects.filter(organization_id=budget.organization_id, budget=budget,
                                       period_start__gte=period.start, period_start__lt=period.end)
            .order_by("triggered_at", "kind", "threshold"))


def budget_status(*, budget: Budget, now: datetime) -> tuple[Standing, list[BudgetAlert]]:
    [standing] = budget_standings(budgets=[budget], now=now)
    return standing, list(budget_alerts_in(budget=budget, period=standing.period))
