"""Where a report reads from.

A `Source` is a relation of event-like rows plus the SQL for each group and
aggregate part over it. Today there is one, the raw partitioned `events_event`
table. A rollup table plugs in by subclassing `Source` (its parts become sums of
pre-aggregated columns: `count` -> `sum(event_count)`), answering `supports()` only
for the specs it can serve exactly (additive metrics, its dimensions, a window and
time buckets aligned to its grain in the organization's time zone), and being
registered ahead of the raw table in `SOURCES`. `choose_source()` picks the first
that supports a spec, so the raw table remains the answer of last resort.
"""
from dataclasses import dataclass

from queries.spec import ReportSpec


@dataclass(frozen=True)
class Group:
    sql: str  # over the source's rows aliased `e`; may use %(tz)s
    join: str = ""  # extra FROM clause it needs
    text: bool = True  # ordered byte-wise (COLLATE "C"), the same in every database
    time: bool = False


class Source:
    name = "abstract"
    relation = ""

    def supports(self, spec: ReportSpec) -> bool:
        raise NotImplementedError

    def column(self, name: str) -> str:
        raise NotImplementedError

    def group(self, name: str) -> Group:
        raise NotImplementedError

    def part(self, name: str) -> str:
        raise NotImplementedError


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
        "uncharged_count": "count(*) FILTER (WHERE e.charge_reporting IS NULL)",
        "uncharged_cost": "COALESCE(sum(e.cost_reporting) FILTER (WHERE e.charge_reporting IS NULL), 0)",
        "error_count": "count(*) FILTER (WHERE e.status = 'error')",
        "latency_sum": "sum(e.latency_ms)",
        "latency_count": "count(e.latency_ms)",
        # Exact, linearly interpolated between the two nearest values (like numpy's default).
        "latency_p50": "percentile_cont(0.5) WITHIN GROUP (ORDER BY e.latency_ms)",
        "latency_p95": "percentile_cont(0.95) WITHIN GROUP (ORDER BY e.latency_ms)",
        "latency_p99": "percentile_cont(0.99) WITHIN GROUP (ORDER BY e.latency_ms)",
        "users": "count(DISTINCT e.user_id)",
    }

    def supports(self, spec: ReportSpec) -> bool:
        return True

    def column(self, name: str) -> str:
        return self._COLUMNS[name]

    def group(self, name: str) -> Group:
        return self._GROUPS.get(name) or Group(self._COLUMNS[name])

    def part(self, name: str) -> str:
        return self._PARTS[name]


# Most specific first; a rollup source is inserted before the raw events.
SOURCES: list[Source] = [RawEvents()]


def choose_source(spec: ReportSpec) -> Source:
    return next(source for source in SOURCES if source.supports(spec))
