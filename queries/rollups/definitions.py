"""What each rollup keeps: its key columns and its measures, as SQL over events.

Designed from the weekly questions rather than as one table (an hourly rollup that
keeps the user barely shrinks):

- daily: spend, charge, margin, failures and average latency by project,
  environment, provider, model, application, action and status;
- daily_user and weekly_user: the customer questions (top customers, usage trends,
  distinct users); whole weeks of a window read the weekly rows;
- daily_latency: a log-bucketed latency histogram for the percentiles;
- hourly: spend per UTC hour, project, environment and provider, for spike alerts;
- daily_health: the taxonomy health report's facts (flags, metadata keys, missing
  traces) per project and application.

Each measure is the raw engine's own aggregate (queries/engine/sources.py), so a
rollup sum over days equals the raw answer exactly. `day` is the event's calendar
day in the organization's zone (`z.tz`).
"""
from dataclasses import dataclass

from queries.rollups.histogram import BUCKET_SQL


@dataclass(frozen=True)
class Rollup:
    table: str
    keys: tuple[tuple[str, str], ...]  # (column, SQL over events e and zone z)
    measures: tuple[tuple[str, str], ...]  # (column, aggregate over e)
    grain: str = "day"  # the time key: "day" (local), "week" (local, from Monday) or "hour" (UTC)
    # Extra FROM items (a LATERAL that turns one event into several facts).
    lateral: str = ""
    # A subquery grouping the events first ({source}: rows aliased e, zone z), aliased e
    # in turn; keys and measures then read its rows.
    pre_group: str = ""

    @property
    def key_columns(self) -> tuple[str, ...]:
        return tuple(column for column, _ in self.keys)

    @property
    def measure_columns(self) -> tuple[str, ...]:
        return tuple(column for column, _ in self.measures)

    @property
    def columns(self) -> tuple[str, ...]:
        """The table's columns, in the order grouped_select() gives them."""
        return ("organization_id",) + self.key_columns + self.measure_columns

    @property
    def key_positions(self) -> str:
        """The key's positions in grouped_select(): organization, then the keys."""
        return ", ".join(str(index + 1) for index in range(1 + len(self.keys)))

    def grouped_select(self, source: str) -> str:
        """SELECT of this rollup's rows (`columns`) grouping the events of `source`
        (rows aliased e, with the zone as z.tz)."""
        selects = ["e.organization_id"] + [f"{sql} AS {column}" for column, sql in (*self.keys, *self.measures)]
        rows = self.pre_group.format(source=source) if self.pre_group else source
        return f"SELECT {', '.join(selects)} FROM {rows}{self.lateral} GROUP BY {self.key_positions}"


DAY = ("day", "(e.\"timestamp\" AT TIME ZONE z.tz)::date")
PROJECT = ("project_id", "e.project_id")


def _plain(*names: str) -> tuple[tuple[str, str], ...]:
    return tuple((name, f"e.{name}") for name in names)


# Uncharged means sent without a charge; an event whose charge awaits an exchange
# rate is unconverted (left out of every sum), not uncharged.
AMOUNTS = (
    ("event_count", "count(*)"),
    ("error_count", "count(*) FILTER (WHERE e.status = 'error')"),
    ("cost", "COALESCE(sum(e.cost_reporting), 0)"),
    ("charge", "COALESCE(sum(e.charge_reporting), 0)"),
    ("margin", "COALESCE(sum(e.charge_reporting - e.cost_reporting), 0)"),
    ("uncharged_count", "count(*) FILTER (WHERE e.charge IS NULL)"),
    ("uncharged_cost", "COALESCE(sum(e.cost_reporting) FILTER (WHERE e.charge IS NULL), 0)"),
    ("unconverted_count", "count(*) FILTER (WHERE e.cost_reporting IS NULL)"),
)

DAILY = Rollup(
    table="queries_rollup_daily",
    keys=(DAY, PROJECT) + _plain("environment", "provider", "model", "application", "action", "status"),
    measures=AMOUNTS + (
        ("latency_count", "count(e.latency_ms)"),
        ("latency_sum", "COALESCE(sum(e.latency_ms), 0)"),
        ("input_tokens", "COALESCE(sum(e.input_tokens), 0)"),
        ("output_tokens", "COALESCE(sum(e.output_tokens), 0)"),
    ),
)
DAILY_USER = Rollup(
    table="queries_rollup_daily_user",
    keys=(DAY, PROJECT) + _plain("environment", "user_id"),
    measures=AMOUNTS,
)
WEEKLY_USER = Rollup(
    table="queries_rollup_weekly_user",
    keys=(("week", "date_trunc('week', e.\"timestamp\" AT TIME ZONE z.tz)::date"), PROJECT)
    + _plain("environment", "user_id"),
    measures=AMOUNTS,
    grain="week",
)
DAILY_LATENCY = Rollup(
    table="queries_rollup_daily_latency",
    keys=(DAY, PROJECT) + _plain("environment", "provider", "model", "application", "action")
    + (("bucket", BUCKET_SQL),),
    measures=(("event_count", "count(*)"), ("latency_sum", "COALESCE(sum(e.latency_ms), 0)"),
              ("unconverted_count", "count(*) FILTER (WHERE e.cost_reporting IS NULL)")),
)
HOURLY = Rollup(
    table="queries_rollup_hourly",
    keys=(("hour", "date_trunc('hour', e.\"timestamp\", 'UTC')"), PROJECT) + _plain("environment", "provider"),
    measures=(
        ("event_count", "count(*)"),
        ("cost", "COALESCE(sum(e.cost_reporting), 0)"),
        ("unconverted_count", "count(*) FILTER (WHERE e.cost_reporting IS NULL)"),
    ),
    grain="hour",
)

# One row per fact an event carries: each flag, "flagged" once when it has any, each
# top-level metadata key, and "missing_traces". Events are grouped first by what their
# facts depend on: a few flag and key sets cover most of them, so the facts are
# unnested once per set rather than once per event (the fold's costliest part).
HEALTH_SETS = (
    "(SELECT e.organization_id, (e.\"timestamp\" AT TIME ZONE z.tz)::date AS day, e.project_id, e.application, "
    "e.flags, ARRAY(SELECT jsonb_object_keys(e.metadata)) AS metadata_keys, "
    "COALESCE(cardinality(e.traces), 0) = 0 AS missing_traces, count(*) AS event_count, "
    "COALESCE(sum(e.cost_reporting), 0) AS cost "
    "FROM {source} GROUP BY 1, 2, 3, 4, 5, 6, 7) e"
)
HEALTH_FACTS = (
    ", LATERAL (SELECT 'flag', unnest(e.flags) UNION ALL SELECT 'flagged', '' WHERE cardinality(e.flags) > 0 "
    "UNION ALL SELECT 'metadata_key', unnest(e.metadata_keys) "
    "UNION ALL SELECT 'missing_traces', '' WHERE e.missing_traces) f(kind, value)"
)
DAILY_HEALTH = Rollup(
    table="queries_rollup_daily_health",
    keys=(("day", "e.day"), ("project_id", "e.project_id"), ("application", "e.application"),
          ("kind", "f.kind"), ("value", "f.value")),
    measures=(("event_count", "sum(e.event_count)::bigint"), ("cost", "sum(e.cost)")),
    lateral=HEALTH_FACTS,
    pre_group=HEALTH_SETS,
)

ROLLUPS = (DAILY, DAILY_USER, WEEKLY_USER, DAILY_LATENCY, HOURLY, DAILY_HEALTH)
