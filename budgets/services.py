"""Writes: budgets (checked as a whole), their evaluation and the alert claims.

Evaluation is safe to run twice, concurrently, or after a crash: an alert is a row
inserted under a unique constraint (organization, budget, kind, period start,
threshold) before any email is sent; whoever inserts it sends it (emails.py).
"""
import logging
import statistics
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from budgets.models import FILTER_FIELDS, Budget, BudgetAlert, BudgetSpendSnapshot
from budgets.periods import PERIODS, Period
from budgets.selectors import SPIKE_BASELINE_DAYS, Standing, budget_hourly_spend
from budgets.spend import periods_at, spend_as_of_watermark, spend_received_since
from koala.exceptions import InvalidRequest, KoalaError
from organizations.models import ApiKey, Membership, Organization, Project

logger = logging.getLogger(__name__)

EDITABLE_FIELDS = ("name", "project", "amount", "period", "thresholds", "filters", "recipients",
                   "recipient_roles", "notify_forecast", "notify_spike", "active")
# Spike rule: this hour's spend above SPIKE_FACTOR x the median of the same hour on the
# previous 7 days, and above SPIKE_MINIMUM_PERCENT of the budget's amount.
SPIKE_FACTOR = Decimal(getattr(settings, "BUDGET_SPIKE_FACTOR", 3))
SPIKE_MINIMUM_PERCENT = Decimal(getattr(settings, "BUDGET_SPIKE_MINIMUM_PERCENT", 1))
# A forecast from the first minutes of a period is noise: wait for this share of it.
FORECAST_MIN_ELAPSED = Decimal("0.1")
MAX_AMOUNT = Decimal("1e20")
# A snapshot of a budget's spend is recomputed from the rollups after this long (plus up to
# 100% more, spread by budget id so the recomputations do not all fall on one sweep).
SNAPSHOT_MAX_AGE = timedelta(seconds=getattr(settings, "BUDGET_SNAPSHOT_MAX_AGE_SECONDS", 600))


# Checking fields -----------------------------------------------------------------------------

def _field_error(name: str, message: str) -> InvalidRequest:
    return InvalidRequest(f"{name}: {message}", details={"field": name})


def _check_amount(value) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (str, int, Decimal)):
        raise _field_error("amount", "must be a decimal number greater than 0, e.g. \"5000\".")
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        raise _field_error("amount", f"'{str(value)[:40]}' is not a decimal number.") from None
    if not amount.is_finite() or amount <= 0 or amount >= MAX_AMOUNT:
        raise _field_error("amount", "must be greater than 0 and below 10^20.")
    if amount != amount.quantize(Decimal("1e-18"), rounding="ROUND_DOWN"):
        raise _field_error("amount", "has more than 18 decimal places.")
    return amount


def _check_thresholds(value) -> list[int]:
    if (not isinstance(value, list) or not value or len(value) > 10
            or not all(isinstance(item, int) and not isinstance(item, bool) and 1 <= item <= 1000
                       for item in value)):
        raise _field_error("thresholds", "must be a list of 1 to 10 whole percents from 1 to 1000, e.g. "
                                         "[50, 80, 100].")
    return sorted(set(value))


def _check_filters(value) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _field_error("filters", f"must be an object with lists for any of {', '.join(FILTER_FIELDS)}.")
    filters = {}
    for name, values in value.items():
        if name not in FILTER_FIELDS:
            raise _field_error("filters", f"'{str(name)[:40]}' is not a budget filter; use "
                                          f"{', '.join(FILTER_FIELDS)}.")
        if not isinstance(values, list) or not all(isinstance(item, str) and 0 < len(item) <= 200
                                                   for item in values) or len(values) > 100:
            raise _field_error("filters", f"{name} must be a list of up to 100 non-empty strings.")
        if values:  # an empty list is no filter
            filters[name] = sorted(set(values))
    return filters


def _check_recipients(value) -> list[str]:
    from django.core.validators import validate_email
    from django.core.exceptions import ValidationError

    if not isinstance(value, list) or len(value) > 50:
        raise _field_error("recipients", "must be a list of up to 50 email addresses.")
    for address in value:
        try:
            validate_email(address if isinstance(address, str) else "")
        except ValidationError:
            raise _field_error("recipients", f"'{str(address)[:80]}' is not an email address.") from None
    return list(dict.fromkeys(value))


def _check_roles(value) -> list[str]:
    roles = Membership.Role.values
    if not isinstance(value, list) or not all(isinstance(role, str) and role in roles for role in value):
        raise _field_error("recipient_roles", f"must be a list of member roles: {', '.join(roles)}.")
    return list(dict.fromkeys(value))


def _check_flag(name: str, value) -> bool:
    if not isinstance(value, bool):
        raise _field_error(name, "must be true or false.")
    return value


def _check_name(value) -> str:
    if not isinstance(value, str) or not value.strip() or len(value.strip()) > 200:
        raise _field_error("name", "a budget needs a name of 1-200 characters.")
    return value.strip()


def _check_period(value) -> str:
    if value not in PERIODS:
        raise _field_error("period", f"must be one of {', '.join(PERIODS)}.")
    return value


_CHECKS = {
    "name": _check_name, "amount": _check_amount, "period": _check_period, "thresholds": _check_thresholds,
    "filters": _check_filters, "recipients": _check_recipients, "recipient_roles": _check_roles,
    "notify_forecast": lambda value: _check_flag("notify_forecast", value),
    "notify_spike": lambda value: _check_flag("notify_spike", value),
    "active": lambda value: _check_flag("active", value),
}


def budget_fields_check(fields: dict) -> dict:
    """Typed, normalized copies of the given budget fields (`project` passes through)."""
    unknown = set(fields) - set(EDITABLE_FIELDS)
    if unknown:
        name = str(sorted(unknown)[0])[:40]
        raise _field_error(name, f"is not a budget field; the fields are {', '.join(EDITABLE_FIELDS)}.")
    return {name: value if name == "project" else _CHECKS[name](value) for name, value in fields.items()}


def _check_may_write(*, api_key: ApiKey | None, project: Project | None) -> None:
    if api_key is None or api_key.project_id is None:
        return
    if project is None or project.pk != api_key.project_id:
        raise KoalaError("permission_denied", f"This project key may only manage budgets of project "
                         f"'{api_key.project.slug}'.", status=403)


# Writing budgets -----------------------------------------------------------------------------

def budget_create(*, organization: Organization, api_key: ApiKey | None, name: str, amount, project=None,
                  **fields) -> Budget:
    checked = budget_fields_check({"name": name, "amount": amount, **fields})
    if project is not None and project.organization_id != organization.pk:
        raise _field_error("project", "belongs to another organization.")
    _check_may_write(api_key=api_key, project=project)
    budget = Budget(organization=organization, project=project, **checked)
    budget.save()
    logger.info("budget.created", extra={"organization_id": organization.pk, "budget_id": budget.pk})
    return budget


def budget_update(*, budget: Budget, api_key: ApiKey | None, changes: dict) -> Budget:
    checked = budget_fields_check(changes)
    _check_may_write(api_key=api_key, project=budget.project)
    if "project" in checked:
        project = checked["project"]
        if project is not None and project.organization_id != budget.organization_id:
            raise _field_error("project", "belongs to another organization.")
        _check_may_write(api_key=api_key, project=project)
    for name, value in checked.items():
        setattr(budget, name, value)
    budget.save(update_fields=[*checked, "updated_at"])
    logger.info("budget.updated", extra={"organization_id": budget.organization_id, "budget_id": budget.pk,
                                         "fields": sorted(checked)})
    return budget


def budget_delete(*, budget: Budget, api_key: ApiKey | None) -> None:
    _check_may_write(api_key=api_key, project=budget.project)
    logger.info("budget.deleted", extra={"organization_id": budget.organization_id, "budget_id": budget.pk})
    budget.delete()


# Evaluating ----------------------------------------------------------------------------------

@dataclass
class Claim:
    budget: Budget
    kind: str
    period_start: datetime
    period_end: datetime
    threshold: int
    spent: Decimal
    forecast: Decimal | None
    detail: dict = field(default_factory=dict)


def _threshold_claims(standing: Standing) -> list[Claim]:
    budget = standing.budget
    return [Claim(budget, BudgetAlert.Kind.THRESHOLD, standing.period.start, standing.period.end, threshold,
                  standing.spent, standing.forecast)
            for threshold in budget.thresholds if standing.spent * 100 >= budget.amount * threshold]


def _forecast_claim(standing: Standing, crossed_full: bool) -> Claim | None:
    budget = standing.budget
    if not budget.notify_forecast or crossed_full or standing.spent >= budget.amount:
        return None
    period_seconds = Decimal(standing.period.length.total_seconds())
    if Decimal(standing.elapsed.total_seconds()) < FORECAST_MIN_ELAPSED * period_seconds:
        return None
    forecast = standing.forecast
    if forecast <= budget.amount:
        return None
    reached = standing.reached_at()
    return Claim(budget, BudgetAlert.Kind.FORECAST, standing.period.start, standing.period.end, 0, standing.spent,
                 forecast, {"reached_at": reached.isoformat() if reached else None})


def spike_verdict(*, this_hour: Decimal, previous: list[Decimal], amount: Decimal) -> Decimal | None:
    """The baseline (median of the same hour on previous days) when this hour is a spike, else None."""
    baseline = statistics.median(previous) if previous else Decimal(0)
    minimum = amount * SPIKE_MINIMUM_PERCENT / 100
    if this_hour > minimum and this_hour > SPIKE_FACTOR * baseline:
        return Decimal(baseline)
    return None


def _spike_claims(standings: list[Standing], now: datetime) -> list[Claim]:
    budgets = [standing.budget for standing in standings if standing.budget.notify_spike]
    if not budgets:
        return []
    hour = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    hourly = budget_hourly_spend(budgets=budgets, hour_start=hour)
    claims = []
    by_id = {standing.budget.pk: standing for standing in standings}
    for budget in budgets:
        this_hour, *previous = hourly[budget.pk]
        baseline = spike_verdict(this_hour=this_hour, previous=previous[:SPIKE_BASELINE_DAYS],
                                 amount=budget.amount)
        if baseline is None:
            continue
        standing = by_id[budget.pk]
        claims.append(Claim(budget, BudgetAlert.Kind.SPIKE, hour, hour + timedelta(hours=1), 0, standing.spent,
                            standing.forecast, {"hour_spend": str(this_hour), "baseline": str(baseline)}))
    return claims


_CLAIM = """
INSERT INTO budgets_budgetalert (organization_id, budget_id, kind, period_start, period_end, threshold,
    triggered_at, spent, amount, forecast, detail, attempts, next_attempt_at, last_error)
SELECT c.organization_id, c.budget_id, c.kind, c.period_start, c.period_end, c.threshold, %s, c.spent, c.amount,
    c.forecast, c.detail, 0, %s, ''
FROM unnest(%s::bigint[], %s::bigint[], %s::text[], %s::timestamptz[], %s::timestamptz[], %s::smallint[],
            %s::numeric[], %s::numeric[], %s::numeric[], %s::jsonb[])
  AS c(organization_id, budget_id, kind, period_start, period_end, threshold, spent, amount, forecast, detail)
ORDER BY c.organization_id, c.budget_id, c.kind, c.period_start, c.threshold
ON CONFLICT DO NOTHING
RETURNING id
"""


def _already_claimed(claims: list[Claim]) -> set[tuple]:
    if not claims:
        return set()
    rows = BudgetAlert.objects.filter(budget_id__in={claim.budget.pk for claim in claims},
                                      period_start__gte=min(claim.period_start for claim in claims))
    return set(rows.values_list("budget_id", "kind", "period_start", "threshold"))


_SNAPSHOT_UPSERT = """
INSERT INTO budgets_budgetspendsnapshot (budget_id, organization_id, period_start, budget_updated_at, watermark,
    spent, computed_at)
SELECT * FROM unnest(%s::bigint[], %s::bigint[], %s::timestamptz[], %s::timestamptz[], %s::timestamptz[],
                     %s::numeric[], %s::timestamptz[])
ON CONFLICT (budget_id) DO UPDATE SET organization_id = EXCLUDED.organization_id,
    period_start = EXCLUDED.period_start, budget_updated_at = EXCLUDED.budget_updated_at,
    watermark = EXCLUDED.watermark, spent = EXCLUDED.spent, computed_at = EXCLUDED.computed_at
"""


@dataclass(frozen=True)
class Snapshot:
    period_start: datetime
    budget_updated_at: datetime
    watermark: datetime
    spent: Decimal
    computed_at: datetime


def _snapshot_fresh(snapshot: Snapshot | None, budget: Budget, period: Period, now: datetime) -> bool:
    if snapshot is None or snapshot.period_start != period.start or snapshot.budget_updated_at != budget.updated_at:
        return False
    max_age = SNAPSHOT_MAX_AGE * (1 + (budget.pk % 10) / 10)
    return now - max_age < snapshot.computed_at <= now


def budget_standings_for_sweep(*, budgets: list[Budget], now: datetime) -> list[Standing]:
    """Like budget_standings (exact), from snapshots: stale ones are recomputed and
    stored; then every budget adds the events received since its snapshot's watermark."""
    periods = periods_at(budgets, now)
    rows = BudgetSpendSnapshot.objects.filter(budget_id__in=[budget.pk for budget in budgets]).values_list(
        "budget_id", "period_start", "budget_updated_at", "watermark", "spent", "computed_at")
    snapshots = {budget_id: Snapshot(*fields) for budget_id, *fields in rows}
    stale = [budget for budget in budgets
             if not _snapshot_fresh(snapshots.get(budget.pk), budget, periods[budget.pk], now)]
    if stale:
        computed = spend_as_of_watermark(stale, periods)
        for budget in stale:
            spent, watermark = computed[budget.pk]
            snapshots[budget.pk] = Snapshot(periods[budget.pk].start, budget.updated_at, watermark, spent, now)
        with connection.cursor() as cursor:
            cursor.execute(_SNAPSHOT_UPSERT, [
                [budget.pk for budget in stale], [budget.organization_id for budget in stale],
                *([getattr(snapshots[budget.pk], name) for budget in stale]
                  for name in ("period_start", "budget_updated_at", "watermark", "spent", "computed_at"))])
    since = spend_received_since(budgets, periods, {budget.pk: snapshots[budget.pk].watermark for budget in budgets})
    return [Standing(budget=budget, period=periods[budget.pk], now=now,
                     spent=snapshots[budget.pk].spent + since[budget.pk]) for budget in budgets]


def alerts_claim(*, claims: list[Claim], now: datetime) -> list[int]:
    """Inserts the claims not taken yet; returns the ids this call won."""
    if not claims:
        return []
    import json

    with connection.cursor() as cursor:
        cursor.execute(_CLAIM, [
            now, now,
            [claim.budget.organization_id for claim in claims], [claim.budget.pk for claim in claims],
            [claim.kind for claim in claims], [claim.period_start for claim in claims],
            [claim.period_end for claim in claims], [claim.threshold for claim in claims],
            [claim.spent for claim in claims], [claim.budget.amount for claim in claims],
            [claim.forecast for claim in claims], [json.dumps(claim.detail) for claim in claims],
        ])
        return [row[0] for row in cursor.fetchall()]


def budgets_evaluate(*, budgets: list[Budget], now: datetime | None = None) -> list[int]:
    """Evaluates `budgets` at `now` (from budgets_active, or with their organization loaded);
    returns the alert ids it claimed."""
    now = now or timezone.now()
    if not budgets:
        return []
    standings = budget_standings_for_sweep(budgets=budgets, now=now)
    claims = []
    for standing in standings:
        crossed = _threshold_claims(standing)
        claims.extend(crossed)
        forecast = _forecast_claim(standing, crossed_full=any(claim.threshold >= 100 for claim in crossed))
        if forecast is not None:
            claims.append(forecast)
    claims.extend(_spike_claims(standings, now))
    taken = _already_claimed(claims)
    fresh = [claim for claim in claims
             if (claim.budget.pk, claim.kind, claim.period_start, claim.threshold) not in taken]
    claimed = alerts_claim(claims=fresh, now=now)
    for alert_id in claimed:
        logger.info("budget.alert_claimed", extra={"alert_id": alert_id})
    return claimed


def budgets_active(*, organization_ids: list[int] | None = None) -> list[Budget]:
    # What evaluation reads, no more: building 10,000 model instances is a real cost.
    budgets = (Budget.objects.filter(active=True).order_by("pk")
               .only("organization_id", "project_id", "amount", "period", "thresholds", "filters",
                     "notify_forecast", "notify_spike", "updated_at")
               .annotate(organization_timezone=F("organization__timezone")))
    if organization_ids is not None:
        budgets = budgets.filter(organization_id__in=organization_ids)
    return list(budgets)


def budgets_evaluate_all(*, organization_ids: list[int] | None = None, now: datetime | None = None,
                         chunk: int = 5000) -> list[int]:
    """Every active budget (of `organization_ids`, when given), `chunk` budgets a statement."""
    budgets = budgets_active(organization_ids=organization_ids)
    claimed = []
    for start in range(0, len(budgets), chunk):
        with transaction.atomic():
            claimed.extend(budgets_evaluate(budgets=budgets[start:start + chunk], now=now))
    return claimed
