"""What budgets have spent: the SQL. Every function serves many budgets per statement.

A budget's spend is the sum of `cost` in the reporting currency of its organization's
events in its current period that match its project and filters (events not converted
to the reporting currency count for nothing). Budgets are joined to the data in SQL:
Python works out each budget's period and passes arrays of (budget id, window); the
filters are read from the budget row (`budgets_budget.filters`, jsonb).

Where the numbers come from:

- the daily rollup (queries_rollup_daily) for the local days of the period, plus the
  events received since the rollups' watermark read raw. Folded events have
  `received_at < watermark`, the rest `>=`: the two never overlap, so the sum is exact
  however recently an event arrived;
- raw events for budgets filtering on tags (the rollups keep no tags) and for
  organizations whose rollups are not (yet) in their current time zone;
- spikes: the hourly rollup (project, environment, provider) plus the events past the
  watermark; raw events for budgets filtering on application, action, model or tags.

Large sets of budgets are answered organization by organization: the rows an
organization needs are fetched once (an index range per organization) and hash-joined
to all of its budgets, instead of one index scan per budget. (`OFFSET 0` keeps those
per-organization subqueries from being flattened into one scan of every event.)
"""
import json
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime, timedelta
from decimal import Decimal
from functools import lru_cache

from django.db import connection, transaction

from budgets.models import Budget
from budgets.periods import Period, period_containing
from queries.rollups.fold import WATERMARK

ZERO = Decimal(0)
SPIKE_BASELINE_DAYS = 7
ROLLUP_DIMENSIONS = ("environment", "provider", "application", "action", "model")
HOURLY_DIMENSIONS = ("environment", "provider")


def dimension_filters(alias: str, names=ROLLUP_DIMENSIONS) -> str:
    """The budget `b`'s filters on row `alias`: a missing key is no filter; a value
    outside the list (or NULL) fails."""
    return " ".join(f"AND (NOT b.filters ? '{name}' OR b.filters -> '{name}' ? {alias}.{name})" for name in names)


def tag_filter(alias: str) -> str:
    return (f"AND (NOT b.filters ? 'tags' OR {alias}.tags && "
            "ARRAY(SELECT jsonb_array_elements_text(b.filters -> 'tags'))::varchar[])")


def project_filter(alias: str) -> str:
    return f"AND (b.project_id IS NULL OR {alias}.project_id = b.project_id)"


def _array(values) -> str:
    """A PostgreSQL array literal: ids, ISO dates and timestamps need no quoting, and a
    literal is far cheaper for the driver than adapting 10,000 values one by one."""
    return "{" + ",".join(value.isoformat() if isinstance(value, (date, datetime)) else str(value)
                          for value in values) + "}"


def _fetch(sql: str, params) -> list[tuple]:
    # These statements join thousands of budgets, so the planner's cost estimates pass
    # jit_above_cost, and compiling them took ~2 s of a 0.3 s statement: no JIT here.
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL jit = off")
        cursor.execute(sql, params)
        return cursor.fetchall()


@lru_cache(maxsize=4096)
def _period(kind: str, moment: datetime, timezone_name: str) -> Period:
    return period_containing(kind, moment, timezone_name)


def timezone_of(budget: Budget) -> str:
    """The budget's organization's zone: annotated by the sweep's query (no Organization
    instances for 10,000 budgets), or from the loaded organization."""
    zone = getattr(budget, "organization_timezone", None)
    return zone if zone is not None else budget.organization.timezone


def periods_at(budgets: list[Budget], now: datetime) -> dict[int, Period]:
    """Each budget's current period (budgets of one zone and kind share one)."""
    return {budget.pk: _period(budget.period, now, timezone_of(budget)) for budget in budgets}


def rollup_served(budgets: list[Budget]) -> tuple[list[Budget], list[Budget]]:
    """(budgets the daily rollup can serve, budgets that need raw events)."""
    if not budgets:
        return [], []
    zones = dict(_fetch("SELECT organization_id, timezone FROM queries_rollup_zone WHERE organization_id = ANY(%s)",
                        [_array({budget.organization_id for budget in budgets})]))
    served, raw = [], []
    for budget in budgets:
        in_zone = zones.get(budget.organization_id) == timezone_of(budget)
        (served if in_zone and "tags" not in budget.filters else raw).append(budget)
    return served, raw


# Whole periods ---------------------------------------------------------------------------------

# The daily rollup, organization by organization: an organization's rows are read once for
# all its budgets. Its budgets' periods (the four kinds share one zone) cut its days into
# a few segments; the rows are summed per segment and dimension set, the segments per
# window (a distinct period), and only those sums are matched to the budgets. A quarter
# budget used to read ~4,000 rows of its own; now ten budgets of one organization share
# one read and each sees a few hundred sums. A window id is unique over the statement,
# so it also names the organization. Rollup rows are exactly the events received before
# the watermark this statement sees.
_SPEND_FROM_ROLLUPS_AS_OF = f"""
WITH o AS MATERIALIZED (
  -- Each organization's bounds as a date[] once (a cast per row would parse it per row).
  SELECT o.organization_id, o.bounds::date[] AS bounds,
         o.windows::jsonb AS windows
  FROM unnest(%s::bigint[], %s::text[], %s::text[]) AS o(organization_id, bounds, windows)
), r AS MATERIALIZED (
  SELECT r.* FROM o CROSS JOIN LATERAL (
    SELECT d.window_id, s.project_id, s.environment, s.provider, s.application, s.action, s.model,
           sum(s.cost) AS cost
    FROM (
      SELECT width_bucket(r.day, o.bounds) AS segment, r.project_id, r.environment, r.provider,
             r.application, r.action, r.model, sum(r.cost) AS cost
      FROM queries_rollup_daily r
      WHERE r.organization_id = o.organization_id AND r.day >= o.bounds[1]
        AND r.day < o.bounds[cardinality(o.bounds)]
      GROUP BY 1, 2, 3, 4, 5, 6, 7) s
    JOIN jsonb_to_recordset(o.windows) AS d(window_id bigint, low int, high int)
      ON s.segment >= d.low AND s.segment < d.high
    GROUP BY 1, 2, 3, 4, 5, 6, 7
    OFFSET 0) r
)
SELECT w.budget_id, COALESCE(sum(r.cost), 0), {WATERMARK}
FROM unnest(%s::bigint[], %s::bigint[]) AS w(budget_id, window_id)
JOIN budgets_budget b ON b.id = w.budget_id
LEFT JOIN r ON r.window_id = w.window_id {project_filter("r")} {dimension_filters("r")}
GROUP BY w.budget_id
"""

_FROM_BUDGETS = """
FROM unnest(%s::bigint[], %s::timestamptz[], %s::timestamptz[], %s::date[], %s::date[])
  AS w(budget_id, since, until, first_day, end_day)
JOIN budgets_budget b ON b.id = w.budget_id"""

_RAW_PART = f"""
  COALESCE((SELECT sum(e.cost_reporting) FROM events_event e
            WHERE e.organization_id = b.organization_id AND e."timestamp" >= w.since AND e."timestamp" < w.until
              AND e.received_at < {WATERMARK}
              {project_filter("e")} {dimension_filters("e")} {tag_filter("e")}), 0)"""

_SPEND_FROM_EVENTS_AS_OF = f"SELECT w.budget_id, {_RAW_PART}, {WATERMARK} {_FROM_BUDGETS}"


def _window_params(budgets: list[Budget], periods: dict[int, Period]) -> list[str]:
    return [_array(budget.pk for budget in budgets), _array(periods[budget.pk].start for budget in budgets),
            _array(periods[budget.pk].end for budget in budgets),
            _array(periods[budget.pk].first_day for budget in budgets),
            _array(periods[budget.pk].end_day for budget in budgets)]


def _rollup_params(budgets: list[Budget], periods: dict[int, Period]) -> list:
    """Per organization, the boundaries (local days) of its budgets' periods, ascending,
    and its windows (distinct periods) as segment ranges [low, high) of
    `width_bucket(day, bounds)`; per budget, its window's id."""
    windows: dict[tuple[int, date, date], int] = {}
    for budget in budgets:
        period = periods[budget.pk]
        windows.setdefault((budget.organization_id, period.first_day, period.end_day), len(windows))
    of_organization: dict[int, list[tuple[int, date, date]]] = {}
    for (organization_id, first_day, end_day), window_id in windows.items():
        of_organization.setdefault(organization_id, []).append((window_id, first_day, end_day))
    organizations = sorted(of_organization)
    bounds, documents = [], []
    for organization_id in organizations:
        days = sorted({day for _, first, end in of_organization[organization_id] for day in (first, end)})
        segment = {day: number for number, day in enumerate(days, start=1)}  # width_bucket is 1-based
        bounds.append(_array(days))
        documents.append(json.dumps([{"window_id": window_id, "low": segment[first], "high": segment[end]}
                                     for window_id, first, end in of_organization[organization_id]]))
    return [_array(organizations), bounds, documents, _array(budget.pk for budget in budgets),
            _array(windows[(budget.organization_id, periods[budget.pk].first_day, periods[budget.pk].end_day)]
                   for budget in budgets)]


# Whole periods of many organizations read millions of rollup rows (a quarter of a
# sparse organization barely compresses: 10,000 events, ~4,000 rows), in one backend.
# Past this many organizations the statement is split over as many connections as
# PostgreSQL may use cores, organizations dealt out in turn.
SPLIT_MIN_ORGANIZATIONS = 200
SPLIT_CONNECTIONS = 2


def _fetch_in_thread(sql: str, params) -> list[tuple]:
    try:
        return _fetch(sql, params)
    finally:
        connection.close()  # this thread's own connection


def _rollup_spend(budgets: list[Budget], periods: dict[int, Period]) -> list[tuple]:
    organizations = sorted({budget.organization_id for budget in budgets})
    # Inside a transaction other connections would not see its writes: stay in it.
    if len(organizations) < SPLIT_MIN_ORGANIZATIONS or connection.in_atomic_block:
        return _fetch(_SPEND_FROM_ROLLUPS_AS_OF, _rollup_params(budgets, periods))
    share = {organization_id: index % SPLIT_CONNECTIONS for index, organization_id in enumerate(organizations)}
    parts = [[budget for budget in budgets if share[budget.organization_id] == part]
             for part in range(SPLIT_CONNECTIONS)]
    with ThreadPoolExecutor(SPLIT_CONNECTIONS) as pool:
        results = pool.map(lambda part: _fetch_in_thread(_SPEND_FROM_ROLLUPS_AS_OF, _rollup_params(part, periods)),
                           parts)
        return [row for rows in results for row in rows]


def spend_as_of_watermark(budgets: list[Budget], periods: dict[int, Period]) -> dict[int, tuple[Decimal, datetime]]:
    """`{budget_id: (spend of the events received before W, W)}`, W being the rollups'
    watermark as each statement saw it."""
    served, raw = rollup_served(budgets)
    rows = []
    if served:
        rows += _rollup_spend(served, periods)
    if raw:
        rows += _fetch(_SPEND_FROM_EVENTS_AS_OF, _window_params(raw, periods))
    return {budget_id: (spent, watermark) for budget_id, spent, watermark in rows}


# Events received since a watermark, organization by organization --------------------------------

_SPEND_SINCE = f"""
WITH b AS MATERIALIZED (
  SELECT w.*, b.organization_id, b.project_id, b.filters
  FROM unnest(%s::bigint[], %s::timestamptz[], %s::timestamptz[], %s::timestamptz[])
    AS w(budget_id, since, until, received_from)
  JOIN budgets_budget b ON b.id = w.budget_id
), o AS (
  -- Only (organization, received_at): the index of the few newest events. A timestamp
  -- condition here would tempt the planner into scanning the whole period.
  SELECT organization_id, min(received_from) AS received_from FROM b GROUP BY organization_id
), e AS MATERIALIZED (
  SELECT e.* FROM o CROSS JOIN LATERAL (
    SELECT e.organization_id, e.project_id, e.received_at, e."timestamp", e.environment, e.provider,
           e.application, e.action, e.model, e.tags, e.cost_reporting
    FROM events_event e
    WHERE e.organization_id = o.organization_id AND e.received_at >= o.received_from
      AND e.cost_reporting IS NOT NULL
    OFFSET 0) e
)
SELECT b.budget_id, COALESCE(sum(e.cost_reporting), 0)
FROM b LEFT JOIN e ON e.organization_id = b.organization_id AND e.received_at >= b.received_from
  AND e."timestamp" >= b.since AND e."timestamp" < b.until
  {project_filter("e")} {dimension_filters("e")} {tag_filter("e")}
GROUP BY b.budget_id
"""


def spend_received_since(budgets: list[Budget], periods: dict[int, Period],
                         received_from: dict[int, datetime]) -> dict[int, Decimal]:
    """`{budget_id: spend of the period's events received at or after received_from[budget_id]}`."""
    if not budgets:
        return {}
    return dict(_fetch(_SPEND_SINCE, [
        _array(budget.pk for budget in budgets), _array(periods[budget.pk].start for budget in budgets),
        _array(periods[budget.pk].end for budget in budgets),
        _array(received_from[budget.pk] for budget in budgets)]))


def spend_exact(budgets: list[Budget], periods: dict[int, Period]) -> dict[int, Decimal]:
    """The current spend: as of the watermark, plus what was received since."""
    as_of = spend_as_of_watermark(budgets, periods)
    since = spend_received_since(budgets, periods, {budget_id: watermark for budget_id, (_, watermark)
                                                    in as_of.items()})
    return {budget.pk: as_of[budget.pk][0] + since.get(budget.pk, ZERO) for budget in budgets}


# Spikes: the same UTC hour on 8 days -----------------------------------------------------------

_HOURS_FROM_ROLLUPS = f"""
WITH b AS MATERIALIZED (
  SELECT b.id, b.organization_id, b.project_id, b.filters FROM budgets_budget b WHERE b.id = ANY(%(ids)s::bigint[])
), o AS (SELECT DISTINCT organization_id FROM b),
r AS MATERIALIZED (
  SELECT r.* FROM o CROSS JOIN LATERAL (
    SELECT r.organization_id, r.project_id, r.environment, r.provider, r.hour, r.cost
    FROM queries_rollup_hourly r
    WHERE r.organization_id = o.organization_id AND r.hour = ANY(%(hours)s::timestamptz[])
    UNION ALL
    SELECT e.organization_id, e.project_id, e.environment, e.provider, date_trunc('hour', e."timestamp", 'UTC'),
           e.cost_reporting
    FROM events_event e
    WHERE e.organization_id = o.organization_id AND e.received_at >= {WATERMARK}
      AND e."timestamp" >= %(first)s AND e."timestamp" < %(last)s AND e.cost_reporting IS NOT NULL
      AND date_trunc('hour', e."timestamp", 'UTC') = ANY(%(hours)s::timestamptz[])
    OFFSET 0) r
)
SELECT b.id, r.hour, sum(r.cost)
FROM b JOIN r ON r.organization_id = b.organization_id {project_filter("r")} {dimension_filters("r", HOURLY_DIMENSIONS)}
GROUP BY b.id, r.hour
"""

# Per (organization, project) pair: the events index is (organization, project, timestamp).
_HOURS_FROM_EVENTS = f"""
WITH b AS MATERIALIZED (
  SELECT b.id, b.organization_id, b.project_id, b.filters FROM budgets_budget b WHERE b.id = ANY(%(ids)s::bigint[])
), p AS (
  SELECT DISTINCT p.organization_id, p.id AS project_id FROM organizations_project p
  JOIN b ON b.organization_id = p.organization_id AND (b.project_id IS NULL OR b.project_id = p.id)
), h AS (SELECT unnest(%(hours)s::timestamptz[]) AS hour),
e AS MATERIALIZED (
  SELECT e.*, h.hour FROM p CROSS JOIN h CROSS JOIN LATERAL (
    SELECT e.organization_id, e.project_id, e.environment, e.provider, e.application, e.action, e.model, e.tags,
           e.cost_reporting
    FROM events_event e
    WHERE e.organization_id = p.organization_id AND e.project_id = p.project_id
      AND e."timestamp" >= h.hour AND e."timestamp" < h.hour + interval '1 hour'
      AND e.cost_reporting IS NOT NULL
    OFFSET 0) e
)
SELECT b.id, e.hour, sum(e.cost_reporting)
FROM b JOIN e ON e.organization_id = b.organization_id {project_filter("e")} {dimension_filters("e")}
  {tag_filter("e")}
GROUP BY b.id, e.hour
"""


def hourly_spend(budgets: list[Budget], hour_start: datetime) -> dict[int, list[Decimal]]:
    """Spend in the UTC hour from `hour_start` (so far) and in the same hour of each of
    the previous 7 days: `{budget_id: [this hour, 1 day back, ..., 7 days back]}`."""
    if not budgets:
        return {}
    hours = [hour_start - timedelta(days=back) for back in range(SPIKE_BASELINE_DAYS + 1)]
    back_of = {hour: back for back, hour in enumerate(hours)}
    params = {"hours": _array(hours), "first": hours[-1], "last": hour_start + timedelta(hours=1)}
    served = [budget for budget in budgets if set(budget.filters) <= set(HOURLY_DIMENSIONS)]
    raw = [budget for budget in budgets if not set(budget.filters) <= set(HOURLY_DIMENSIONS)]
    rows = []
    if served:
        rows += _fetch(_HOURS_FROM_ROLLUPS, {**params, "ids": _array(budget.pk for budget in served)})
    if raw:
        rows += _fetch(_HOURS_FROM_EVENTS, {**params, "ids": _array(budget.pk for budget in raw)})
    spend = {budget.pk: [ZERO] * (SPIKE_BASELINE_DAYS + 1) for budget in budgets}
    for budget_id, hour, amount in rows:
        spend[budget_id][back_of[hour]] = amount
    return spend
