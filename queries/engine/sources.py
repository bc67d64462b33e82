"""Where a report reads from.

A `Source` is a relation of event-like rows plus the SQL for each group and
aggregate part over it. The raw partitioned `events_event` table serves every
spec; the rollups (queries/rollups) serve the specs they can answer exactly: their
dimensions, additive parts (and percentiles from the latency histogram, within its
bound), and a window of whole local days. `choose_source()` picks the first in
`SOURCES` that supports a spec, so the raw table remains the answer of last resort.
"""
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from queries.engine.metrics import report_parts
from queries.rollups import definitions, current_rows, unfolded_rows
from queries.spec import ReportSpec


@dataclass(frozen=True)
class Group:
    sql: str  # over the source's rows aliased `e`; may use %(tz)s
    join: str = ""  # extra FROM clause it needs
    text: bool = True  # ordered byte-wise (COLLATE "C"), the same in every database
    time: bool = False
    # Applied to the grouped value ({} stands for it) in the output only: a rollup groups
    # by its local date and turns each group, not each row, into an instant. `sql`
    # must order like the finished value.
    finish: str = "{}"


class Source:
    name = "abstract"
    relation = ""
    having = ""  # a HAVING for grouped reports (a source whose rows can cancel out)

    def supports(self, spec: ReportSpec, *, timezone: str, rollups: bool) -> bool:
        raise NotImplementedError

    def window(self, params: dict) -> list[str]:
        """Conditions keeping the rows of [params["start"], params["end"]); may add params."""
        raise NotImplementedError

    def column(self, name: str) -> str:
        raise NotImplementedError

    def group(self, name: str) -> Group:
        raise NotImplementedError

    def part(self, name: str) -> str:
        raise NotImplementedError

    def histogram_quantile(self, name: str) -> float | None:
        """The quantile a part reads from the latency histogram (`bucket`, `event_count`
        rows; see queries/rollups/histogram.py), or None for a plain aggregate part."""
        return None


class RawEvents(Source):
    """Every stored event; serves every spec."""

    name = "events"
    relation = "events_event"
    _COLUMNS = {
        "organization": "e.organization_id", "project": "e.project_id", "timestamp": 'e."timestamp"',
        "environment": "e.environment", "provider": "e.provider", "application": "e.application",
        "action": "e.action", "model": "e.model", "user": "e.user_id", "status": "e.status",
        "tags": "e.tags", "metadata": "e.metadata",
    }
    _LOCAL = "(e.\"timestamp\" AT TIME ZONE %(tz)s)"
    _GROUPS = {
        # The start of the event's local hour, as an instant: subtracting the local
        # minutes keeps the event's own offset, so the repeated hour of a DST
        # fall-back is two buckets, and +05:30/+05:45 zones start hours at :30/:15 UTC.
        "hour": Group(f"e.\"timestamp\" - ({_LOCAL} - date_trunc('hour', {_LOCAL}))", text=False, time=True),
        # Local midnight (Monday for weeks, the 1st for months) as an instant, so a
        # day is 23 or 25 hours long across a DST switch.
        "day": Group("date_trunc('day', e.\"timestamp\", %(tz)s)", text=False, time=True),
        "week": Group("date_trunc('week', e.\"timestamp\", %(tz)s)", text=False, time=True),
        "month": Group("date_trunc('month', e.\"timestamp\", %(tz)s)", text=False, time=True),
        "project": Group("p.slug", join=" JOIN organizations_project p ON p.id = e.project_id"),
        # An event counts once under each distinct tag it carries; untagged events under null.
        "tag": Group("t.tag", join=" LEFT JOIN LATERAL (SELECT DISTINCT unnest(e.tags) AS tag) t ON true"),
    }
    _PARTS = {
        "count": "count(*)",
        "cost": "COALESCE(sum(e.cost_reporting), 0)",
        "charge": "COALESCE(sum(e.charge_reporting), 0)",
        "margin": "COALESCE(sum(e.charge_reporting - e.cost_reporting), 0)",
        "uncharged_count": "count(*) FILTER (WHERE e.charge IS NULL)",
        "uncharged_cost": "COALESCE(sum(e.cost_reporting) FILTER (WHERE e.charge IS NULL), 0)",
        "error_count": "count(*) FILTER (WHERE e.status = 'error')",
        "latency_sum": "sum(e.latency_ms)",
        "latency_count": "count(e.latency_ms)",
        # Exact, linearly interpolated between the two nearest values (like numpy's default).
        "latency_p50": "percentile_cont(0.5) WITHIN GROUP (ORDER BY e.latency_ms)",
        "latency_p95": "percentile_cont(0.95) WITHIN GROUP (ORDER BY e.latency_ms)",
        "latency_p99": "percentile_cont(0.99) WITHIN GROUP (ORDER BY e.latency_ms)",
        "users": "count(DISTINCT e.user_id)",
        # Events in a currency no rate converts yet: left out of every sum, counted here.
        "unconverted_count": "count(*) FILTER (WHERE e.cost_reporting IS NULL)",
    }

    def supports(self, spec: ReportSpec, *, timezone: str, rollups: bool) -> bool:
        return True

    def window(self, params: dict) -> list[str]:
        return ['e."timestamp" >= %(start)s', 'e."timestamp" < %(end)s']

    def column(self, name: str) -> str:
        return self._COLUMNS[name]

    def group(self, name: str) -> Group:
        return self._GROUPS.get(name) or Group(self._COLUMNS[name])

    def part(self, name: str) -> str:
        return self._PARTS[name]


def _local_day(moment: datetime, tz: ZoneInfo):
    """The local date `moment` starts, or None when it is not a local midnight."""
    local = moment.astimezone(tz)
    if local.time() != time(0):
        return None
    return local.date()


_AS_INSTANT = "({}::timestamp AT TIME ZONE %(tz)s)"


class Rollup(Source):
    """A daily rollup: rows per organization, local day, project and `dimensions`,
    those folded and those of the events received since (queries.rollups.current_rows)."""

    def __init__(self, name: str, relation: str, dimensions: dict, parts: dict, filters: frozenset):
        self.name, self.relation = name, relation
        self._columns = {"organization": "e.organization_id", "project": "e.project_id", **dimensions}
        self._parts = parts
        self._filters = filters
        self._groups = frozenset(("day", "week", "month", "project", *dimensions))

    def supports(self, spec: ReportSpec, *, timezone: str, rollups: bool) -> bool:
        if not rollups or not set(spec.group_by) <= self._groups or not set(spec.filters) <= self._filters:
            return False
        if any(part not in self._parts for part in report_parts(spec)):
            return False
        tz = ZoneInfo(timezone)
        return _local_day(spec.start, tz) is not None and _local_day(spec.end, tz) is not None

    def window(self, params: dict) -> list[str]:
        tz = ZoneInfo(params["tz"])
        params["start_day"], params["end_day"] = _local_day(params["start"], tz), _local_day(params["end"], tz)
        return ["e.day >= %(start_day)s", "e.day < %(end_day)s"]

    def column(self, name: str) -> str:
        return self._columns[name]

    def group(self, name: str) -> Group:
        # Grouped by local date, each group's date then made the instant of its local
        # midnight: one time-zone conversion per group instead of one per rollup row.
        if name == "day":
            return Group("e.day", text=False, time=True, finish=_AS_INSTANT)
        if name in ("week", "month"):
            return Group(f"date_trunc('{name}', e.day::timestamp)", text=False, time=True, finish=_AS_INSTANT)
        if name == "project":
            return RawEvents._GROUPS["project"]
        return Group(self._columns[name])

    def part(self, name: str) -> str:
        return self._parts[name]


_DIMENSIONS = {name: f"e.{name}" for name in ("environment", "provider", "model", "application", "action")}
_AMOUNT_PARTS = {
    "count": "COALESCE(sum(e.event_count), 0)::bigint",
    "cost": "COALESCE(sum(e.cost), 0)",
    "charge": "COALESCE(sum(e.charge), 0)",
    "margin": "COALESCE(sum(e.margin), 0)",
    "uncharged_count": "COALESCE(sum(e.uncharged_count), 0)::bigint",
    "uncharged_cost": "COALESCE(sum(e.uncharged_cost), 0)",
    "error_count": "COALESCE(sum(e.error_count), 0)::bigint",
    "unconverted_count": "COALESCE(sum(e.unconverted_count), 0)::bigint",
}


DAILY = Rollup(
    "rollup_daily", current_rows(definitions.DAILY), {**_DIMENSIONS, "status": "e.status"},
    {**_AMOUNT_PARTS, "latency_sum": "sum(e.latency_sum)", "latency_count": "COALESCE(sum(e.latency_count), 0)::bigint"},
    frozenset(("environment", "provider", "model", "application", "action", "status")),
)
DAILY_USER = Rollup(
    "rollup_daily_user", current_rows(definitions.DAILY_USER), {"environment": "e.environment", "user": "e.user_id"},
    {**_AMOUNT_PARTS, "users": "count(DISTINCT e.user_id)"},
    frozenset(("environment", "user")),
)
class WeeklyAndDailyUser(Rollup):
    """The customer rollup for windows holding whole weeks: those weeks from the weekly
    rows (one per customer and week instead of seven), the days before the first and
    after the last whole week from the daily rows, and the events not folded yet.
    Weekly rows stand on their Monday.

    With `subtracts`, a partial week at an edge is read as its whole week less the
    days outside the window, when those are fewer rows: a window ending today reads
    this week's row less nothing (the days after today hold no rows), where it read
    up to six days. Sums come out exact, and a group made only of days the window
    leaves out sums to zero events and is dropped; a distinct count cannot be
    subtracted, so `users` is served by the instance without it."""

    _RELATION = (
        "(SELECT {daily} FROM queries_rollup_daily_user WHERE organization_id = %(organization_id)s "
        "AND ((day >= %(start_day)s AND day < %(lead_days_to)s) OR (day >= %(trail_days_from)s AND day < %(end_day)s)) "
        "UNION ALL SELECT {weekly} FROM queries_rollup_weekly_user WHERE organization_id = %(organization_id)s "
        "AND week >= %(weeks_from)s AND week < %(weeks_to)s "
        "UNION ALL SELECT {less} FROM queries_rollup_daily_user WHERE organization_id = %(organization_id)s "
        "AND ((day >= %(weeks_from)s AND day < %(lead_less_to)s) OR (day >= %(trail_less_from)s AND day < %(weeks_to)s)) "
        "UNION ALL {unfolded})"
    )

    def __init__(self, daily: Rollup, *, subtracts: bool):
        rollup = definitions.DAILY_USER
        less = ", ".join(("organization_id",) + rollup.key_columns + tuple(f"-{column}"
                                                                           for column in rollup.measure_columns))
        relation = self._RELATION.format(
            daily=", ".join(rollup.columns), weekly=", ".join(definitions.WEEKLY_USER.columns), less=less,
            unfolded=unfolded_rows(rollup))
        parts = {name: sql for name, sql in daily._parts.items() if not (subtracts and name == "users")}
        super().__init__("rollup_weekly_user", relation,
                         {"environment": "e.environment", "user": "e.user_id"}, parts, daily._filters)
        self._groups = frozenset(("week", "project", "environment", "user"))
        self._subtracts = subtracts
        if subtracts:
            self.having = "HAVING sum(e.event_count) <> 0"

    @staticmethod
    def _whole_weeks(start, end):
        whole_from = start + timedelta(days=(7 - start.weekday()) % 7)
        whole_to = end - timedelta(days=end.weekday())
        return whole_from, whole_to

    def supports(self, spec: ReportSpec, *, timezone: str, rollups: bool) -> bool:
        if not super().supports(spec, timezone=timezone, rollups=rollups):
            return False
        tz = ZoneInfo(timezone)
        whole_from, whole_to = self._whole_weeks(_local_day(spec.start, tz), _local_day(spec.end, tz))
        return whole_from < whole_to

    def window(self, params: dict) -> list[str]:
        # The relation keeps only the window's rows (and the days it subtracts, which
        # lie outside it): no condition on e.day.
        super().window(params)
        start_day, end_day = params["start_day"], params["end_day"]
        whole_from, whole_to = self._whole_weeks(start_day, end_day)
        # Days after the watermark's day hold no folded rows yet: they cost nothing.
        folded_to = (params["unfolded_from"].astimezone(ZoneInfo(params["tz"])).date() + timedelta(days=1)
                     if params["unfolded_from"] else end_day + timedelta(days=7))

        def costs_less(inside: int, outside_from, outside_to) -> bool:
            outside = max(0, (min(outside_to, folded_to) - outside_from).days)
            return self._subtracts and inside > 0 and 1 + outside < inside

        lead = costs_less((whole_from - start_day).days, whole_from - timedelta(days=7), start_day)
        trail = costs_less((end_day - whole_to).days, end_day, whole_to + timedelta(days=7))
        weeks_from = whole_from - timedelta(days=7) if lead else whole_from
        weeks_to = whole_to + timedelta(days=7) if trail else whole_to
        params.update(
            weeks_from=weeks_from, weeks_to=weeks_to,
            lead_days_to=start_day if lead else whole_from, lead_less_to=start_day if lead else weeks_from,
            trail_days_from=end_day if trail else whole_to, trail_less_from=end_day if trail else weeks_to,
        )
        return []


WEEKLY_USER_LESS_DAYS = WeeklyAndDailyUser(DAILY_USER, subtracts=True)
WEEKLY_USER = WeeklyAndDailyUser(DAILY_USER, subtracts=False)


class LatencyHistogram(Rollup):
    """The daily latency histogram: counts per log bucket, so percentiles come within
    the histogram's bound (ALPHA). The compiler reads the quantiles set-based from
    per-group bucket counts (queries/engine/quantiles.py)."""

    _QUANTILES = {"latency_p50": 0.5, "latency_p95": 0.95, "latency_p99": 0.99}
    # The rollup's measures, summed per group and bucket before anything else reads them.
    histogram_measures = ("event_count", "latency_sum", "unconverted_count")

    def histogram_quantile(self, name: str) -> float | None:
        return self._QUANTILES.get(name)


DAILY_LATENCY = LatencyHistogram(
    "rollup_daily_latency", current_rows(definitions.DAILY_LATENCY), _DIMENSIONS,
    {
        "count": "COALESCE(sum(e.event_count), 0)::bigint",
        "unconverted_count": "COALESCE(sum(e.unconverted_count), 0)::bigint",
        "latency_sum": "sum(e.latency_sum) FILTER (WHERE e.bucket IS NOT NULL)",
        "latency_count": "COALESCE(sum(e.event_count) FILTER (WHERE e.bucket IS NOT NULL), 0)::bigint",
        # Computed by the compiler from the bucket counts; listed so the source says it serves them.
        **{name: "" for name in LatencyHistogram._QUANTILES},
    },
    frozenset(("environment", "provider", "model", "application", "action")),
)

# Most specific first; the raw events answer whatever no rollup can.
SOURCES: list[Source] = [DAILY, WEEKLY_USER_LESS_DAYS, WEEKLY_USER, DAILY_USER, DAILY_LATENCY, RawEvents()]


def choose_source(spec: ReportSpec, *, timezone: str, rollups: bool) -> Source:
    return next(source for source in SOURCES if source.supports(spec, timezone=timezone, rollups=rollups))
