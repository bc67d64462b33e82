"""Reads: what budgets have spent, set-based (one statement serves many budgets).

A budget's spend is the sum of `cost` (in the reporting currency) of its
organization's events in the current period that match its project and filters.
Events whose reporting amount is unknown (not converted) count for nothing.

Budgets are joined to the data in SQL: the Python side only works out each
budget's period (its organization's time zone) and passes `unnest` arrays of
(budget id, window); the filters are read from the budget row itself
(`budgets_budget.filters`, jsonb), so 10,000 budgets are one statement.

Where the numbers come from:

- the daily rollup (queries_rollup_daily) for the local days of the period, plus
  the events received since the rollups' watermark read raw (the "tail": folded
  events have received_at < watermark, so the two never overlap and the sum is
  exact however recently an event arrived);
- the raw events for budgets filtering on tags (the rollups keep no tags) and for
  organizations whose rollups are not (yet) in their current time zone;
- spike alerts: the hourly rollup (project, environment, provider) plus the tail,
  and raw events for budgets that filter on application, action, model or tags.
"""
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.db import connection
from django.db.models import QuerySet

from budgets.models import Budget, BudgetAlert
from budgets.periods import Period, period_containing
from koala.exceptions import NotFound
from organizations.models import ApiKey, Organization

ZERO = Decimal(0)
SPIKE_BASELINE_DAYS = 7

# The budget's filters against a row `{alias}` of events or of a rollup with the same
# dimension columns. A missing key is no filter; a value outside the list (or NULL) fails.
_DIMENSION_FILTERS = " ".join(
    f"AND (NOT b.filters ? '{name}' OR b.filters -> '{name}' ? {{alias}}.{name})"
    for name in ("environment", "provider", "application", "action", "model")
)
_TAG_FILTER = ("AND (NOT b.filters ? 'tags' OR {alias}.tags && "
               "ARRAY(SELECT jsonb_array_elements_text(b.filters -> 'tags'))::varchar[])")

_SPEND_FROM_EVENTS = f"""
SELECT w.budget_id, COALESCE(sum(e.cost_reporting), 0)
FROM unnest(%s::bigint[], %s::timestamptz[], %s::timestamptz[]) AS w(budget_id, since, until)
JOIN budgets_budget b ON b.id = w.budget_id
LEFT JOIN events_event e
  ON e.organization_id = b.organization_id
 AND (b.project_id IS NULL OR e.project_id = b.project_id)
 AND e."timestamp" >= w.since AND e."timestamp" < w.until
 {_DIMENSION_FILTERS.format(alias="e")}
 {_TAG_FILTER.format(alias="e")}
GROUP BY w.budget_id
"""

_WATERMARK = "(SELECT watermark FROM queries_rollup_state WHERE id = 1)"

_SPEND_FROM_ROLLUPS = f"""
SELECT w.budget_id,
  COALESCE((SELECT sum(r.cost) FROM queries_rollup_daily r
            WHERE r.organization_id = b.organization_id AND r.day >= w.first_day AND r.day < w.end_day
              AND (b.project_id IS NULL OR r.project_id = b.project_id)
              {_DIMENSION_FILTERS.format(alias="r")}), 0)
  + COALESCE((SELECT sum(e.cost_reporting) FROM events_event e
              WHERE e.organization_id = b.organization_id AND e.received_at >= {_WATERMARK}
                AND e."timestamp" >= w.since AND e."timestamp" < w.until
                AND (b.project_id IS NULL OR e.project_id = b.project_id)
                {_DIMENSION_FILTERS.format(alias="e")}), 0)
FROM unnest(%s::bigint[], %s::timestamptz[], %s::timestamptz[], %s::date[], %s::date[])
  AS w(budget_id, since, until, first_day, end_day)
JOIN budgets_budget b ON b.id = w.budget_id
"""
# Spike windows from the hourly rollup: only project, environment and provider filters.
_HOURLY_FILTERS = " ".join(
    f"AND (NOT b.filters ? '{name}' OR b.filters -> '{name}' ? {{alias}}.{name})"
    for name in ("environment", "provider")
)
_HOURS_FROM_ROLLUPS = f"""
SELECT w.budget_id, k.days_back,
  COALESCE((SELECT sum(r.cost) FROM queries_rollup_hourly r
            WHERE r.organization_id = b.organization_id
              AND r.hour = %s::timestamptz - make_interval(days => k.days_back)
              AND (b.project_id IS NULL OR r.project_id = b.project_id)
              {_HOURLY_FILTERS.format(alias="r")}), 0)
  + COALESCE((SELECT sum(e.cost_reporting) FROM events_event e
              WHERE e.organization_id = b.organization_id AND e.received_at >= {_WATERMARK}
                AND e."timestamp" >= %s::timestamptz - make_interval(days => k.days_back)
                AND e."timestamp" < %s::timestamptz - make_interval(days => k.days_back)
                AND (b.project_id IS NULL OR e.project_id = b.project_id)
                {_HOURLY_FILTERS.format(alias="e")}), 0)
FROM unnest(%s::bigint[]) AS w(budget_id)
JOIN budgets_budget b ON b.id = w.budget_id
CROSS JOIN generate_series(0, {SPIKE_BASELINE_DAYS}) AS k(days_back)
"""
_HOURLY_SERVES = {"environment", "provider"}

_HOURS_FROM_EVENTS = f"""
SELECT w.budget_id, k.days_back, COALESCE(sum(e.cost_reporting), 0)
FROM unnest(%s::bigint[]) AS w(budget_id)
JOIN budgets_budget b ON b.id = w.budget_id
CROSS JOIN generate_series(0, {SPIKE_BASELINE_DAYS}) AS k(days_back)
LEFT JOIN events_event e
  ON e.organization_id = b.organization_id
 AND (b.project_id IS NULL OR e.project_id = b.project_id)
 AND e."timestamp" >= %s::timestamptz - make_interval(days => k.days_back)
 AND e."timestamp" < %s::timestamptz - make_interval(days => k.days_back)
 {_DIMENSION_FILTERS.format(alias="e")}
 {_TAG_FILTER.format(alias="e")}
GROUP BY w.budget_id, k.days_back
"""


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


def _fetch(sql: str, params: list) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def _rollup_zones(organization_ids: set[int]) -> dict[int, str]:
    return dict(_fetch("SELECT organization_id, timezone FROM queries_rollup_zone WHERE organization_id = ANY(%s)",
                       [list(organization_ids)]))


def budget_standings(*, budgets: list[Budget], now: datetime) -> list[Standing]:
    """Each budget's period and spend at `now`: one statement for all the budgets the
    rollups serve, one for the rest.

    `budgets` must come with their organization loaded (select_related)."""
    if not budgets:
        return []
    periods = {budget.pk: budget_period(budget=budget, now=now) for budget in budgets}
    zones = _rollup_zones({budget.organization_id for budget in budgets})
    served, raw = [], []
    for budget in budgets:
        in_zone = zones.get(budget.organization_id) == budget.organization.timezone
        (served if in_zone and "tags" not in budget.filters else raw).append(budget)
    spent = {}
    if served:
        spent.update(_fetch(_SPEND_FROM_ROLLUPS, [
            [budget.pk for budget in served],
            [periods[budget.pk].start for budget in served],
            [periods[budget.pk].end for budget in served],
            [periods[budget.pk].first_day for budget in served],
            [periods[budget.pk].end_day for budget in served],
        ]))
    if raw:
        spent.update(_fetch(_SPEND_FROM_EVENTS, [
            [budget.pk for budget in raw],
            [periods[budget.pk].start for budget in raw],
            [periods[budget.pk].end for budget in raw],
        ]))
    return [Standing(budget=budget, period=periods[budget.pk], now=now, spent=spent.get(budget.pk, ZERO))
            for budget in budgets]


def budget_hourly_spend(*, budgets: list[Budget], hour_start: datetime) -> dict[int, list[Decimal]]:
    """Spend in the hour from `hour_start` (so far) and in the same hour of each of the
    previous 7 days: `{budget_id: [this hour, 1 day back, ..., 7 days back]}`."""
    if not budgets:
        return {}
    served = [budget for budget in budgets if set(budget.filters) <= _HOURLY_SERVES]
    raw = [budget for budget in budgets if not set(budget.filters) <= _HOURLY_SERVES]
    rows = []
    hour_end = hour_start + timedelta(hours=1)
    if served:
        rows += _fetch(_HOURS_FROM_ROLLUPS, [hour_start, hour_start, hour_end, [budget.pk for budget in served]])
    if raw:
        rows += _fetch(_HOURS_FROM_EVENTS, [[budget.pk for budget in raw], hour_start, hour_end])
    spend = {budget.pk: [ZERO] * (SPIKE_BASELINE_DAYS + 1) for budget in budgets}
    for budget_id, days_back, amount in rows:
        spend[budget_id][days_back] = amount
    return spend


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
