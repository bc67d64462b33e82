"""A validated `ReportSpec` -> one SQL statement, and its rows -> the report.

The statement always carries the tenant (organization and visible project ids)
and the window; every value travels as a psycopg parameter. Its shape:

    WITH filtered AS NOT MATERIALIZED (rows of the source inside the scope and filters),
         grouped AS (groups and aggregate parts over filtered, tags unnested if grouped by tag;
                     percentiles of a histogram source joined from per-bucket counts,
                     see queries/engine/quantiles.py),
         ranked AS (the first limit + 1 groups in the requested order, numbered)
    SELECT the ranked rows                            (rn >= 1)
    UNION ALL
    SELECT the totals over filtered, never unnested  (rn = 0)
"""
import json
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from queries.engine.metrics import METRICS, TOTALS_ONLY_PARTS, report_parts
from queries.engine.quantiles import histogram_ctes, interpolated, join_on_groups
from queries.engine.render import render_group, render_metric
from queries.engine.sources import Group, Source, choose_source
from queries.spec import ReportSpec


@dataclass(frozen=True)
class Scope:
    """What the caller may read: its organization, the project ids it asked for
    among those its key can see, and the organization's time zone."""

    organization_id: int
    project_ids: tuple[int, ...]
    timezone: str
    # The organization's rollups are built in its current zone (queries_rollup_zone).
    rollups: bool = False
    # The rollups' watermark, read before the statement runs: the planner's estimate
    # of the events not folded yet (queries.rollups.unfolded_rows).
    unfolded_from: datetime | None = None


@dataclass(frozen=True)
class Report:
    columns: list[str]
    rows: list[list]
    totals: dict
    truncated: bool  # more groups matched than `limit`


@dataclass(frozen=True)
class CompiledReport:
    sql: str
    params: dict
    spec: ReportSpec
    scope: Scope
    parts: tuple[str, ...]
    source: str

    def decode(self, rows) -> Report:
        """The statement's rows as the contract's table and totals."""
        tz = ZoneInfo(self.scope.timezone)
        width = len(self.spec.group_by)
        table, totals = [], {}
        for row in rows:
            parts = dict(zip(self.parts, row[1 + width:]))
            values = [render_metric(METRICS[name], parts) for name in self.spec.metrics]
            if row[0] == 0:
                totals = dict(zip(self.spec.metrics, values))
                totals.update((part, parts[part]) for part in TOTALS_ONLY_PARTS)
            else:
                groups = [render_group(name, value, tz) for name, value in zip(self.spec.group_by, row[1:1 + width])]
                table.append(groups + values)
        return Report(columns=list(self.spec.columns), rows=table[:self.spec.limit], totals=totals,
                      truncated=len(table) > self.spec.limit)


def _conditions(spec: ReportSpec, source: Source, params: dict) -> list[str]:
    column = source.column
    conditions = [
        f"{column('organization')} = %(organization_id)s",
        f"{column('project')} = ANY(%(project_ids)s::bigint[])",
        *source.window(params),
    ]
    for name in sorted(spec.filters):
        values, key = spec.filters[name], f"filter_{name}"
        if name == "tags":
            params[key] = list(values)
            conditions.append(f"{column('tags')} && %({key})s::varchar[]")
        elif name == "metadata":
            params[key] = json.dumps(values)
            conditions.append(f"{column('metadata')} @> %({key})s::jsonb")
        else:
            present = [value for value in values if value is not None]
            anyof = []
            if present:
                params[key] = present
                anyof.append(f"{column(name)} = ANY(%({key})s::text[])")
            if None in values:
                anyof.append(f"{column(name)} IS NULL")
            conditions.append("(" + " OR ".join(anyof) + ")")
    return conditions


_COUNT_SUM = "COALESCE(sum({column}), 0)::bigint"
_AMOUNT_SUM = "COALESCE(sum({column}), 0)"
# How the totals re-add each additive part from the groups' values.
RESUMMED = {
    "count": _COUNT_SUM, "uncharged_count": _COUNT_SUM, "error_count": _COUNT_SUM, "latency_count": _COUNT_SUM,
    "unconverted_count": _COUNT_SUM,
    "cost": _AMOUNT_SUM, "charge": _AMOUNT_SUM, "margin": _AMOUNT_SUM, "uncharged_cost": _AMOUNT_SUM,
    "latency_sum": "sum({column})",  # null when no event has a latency, like the part itself
}


def _sort_key(index: int, group: Group) -> str:
    return f'g{index} COLLATE "C"' if group.text else f"g{index}"


def _order(spec: ReportSpec, groups: list[Group], part_columns: dict) -> str:
    """The requested column first, then every group ascending; nulls always last."""
    keys = []
    if spec.order_by is not None:
        direction = "DESC" if spec.descending else "ASC"
        if spec.order_by in spec.group_by:
            index = spec.group_by.index(spec.order_by)
            keys.append(f"{_sort_key(index, groups[index])} {direction} NULLS LAST")
        else:
            keys.append(f"{METRICS[spec.order_by].order.format(**part_columns)} {direction} NULLS LAST")
    keys += [f"{_sort_key(index, group)} ASC NULLS LAST" for index, group in enumerate(groups)]
    return ", ".join(keys)


def compile_report(spec: ReportSpec, scope: Scope, *, source: Source | None = None) -> CompiledReport:
    """The one statement that answers `spec` within `scope`; pure, no database."""
    source = source or choose_source(spec, timezone=scope.timezone, rollups=scope.rollups)
    params = {
        "organization_id": scope.organization_id, "project_ids": list(scope.project_ids),
        "start": spec.start, "end": spec.end, "tz": scope.timezone, "row_limit": spec.limit + 1,
        "unfolded_from": scope.unfolded_from,
    }
    where = " AND ".join(_conditions(spec, source, params))
    groups = [source.group(name) for name in spec.group_by]
    joins = "".join(dict.fromkeys(group.join for group in groups if group.join))
    parts = report_parts(spec)
    part_columns = {part: f"p{index}" for index, part in enumerate(parts)}
    quantiles = {part_columns[part]: q for part in parts if (q := source.histogram_quantile(part)) is not None}
    plain = [part for part in parts if part_columns[part] not in quantiles]
    aggregates = ", ".join(f"{source.part(part)} AS {part_columns[part]}" for part in plain)
    group_selects = "".join(f"{group.sql} AS g{index}, " for index, group in enumerate(groups))
    group_by = ("GROUP BY " + ", ".join(str(index + 1) for index in range(len(groups))) + " " + source.having
                if groups else "")
    outputs = ", ".join([group.finish.format(f"g{index}") for index, group in enumerate(groups)]
                        + list(part_columns.values()))
    nulls = "".join("NULL, " for _ in groups)
    order = _order(spec, groups, part_columns)
    window = f"ORDER BY {order}" if order else ""
    ctes = [f"filtered AS NOT MATERIALIZED (SELECT * FROM {source.relation} e WHERE {where})"]
    grouped = f"SELECT {group_selects}{aggregates} FROM filtered e{joins} {group_by}"
    resummable = "tag" not in spec.group_by and all(part in RESUMMED for part in plain)
    if quantiles:
        # Each exact sum per group and bucket costs: only the measures some part reads
        # (event_count always: the bucket counts).
        measures = tuple(measure for measure in source.histogram_measures
                         if measure == "event_count" or f"e.{measure}" in aggregates)
        ctes += histogram_ctes(group_selects=group_selects, joins=joins, group_count=len(groups),
                               measures=measures, plain_aggregates=aggregates, quantiles=quantiles)
        values = ", ".join(f"{interpolated(column, 'q')} AS {column}" for column in quantiles)
        grouped = f"SELECT gp.*, {values} FROM grouped_plain gp LEFT JOIN quant q ON {join_on_groups(len(groups))}"
    ctes.append(f"grouped AS MATERIALIZED ({grouped})")
    # The first limit + 1 groups by a top-N sort (a bounded heap), then numbered: a
    # customer report has tens of thousands of groups, and sorting them all to number
    # them cost more than grouping them.
    first = f"SELECT * FROM grouped {window} LIMIT %(row_limit)s"
    ctes.append(f"ranked AS (SELECT first.*, row_number() OVER ({window}) AS rn FROM ({first}) first)")
    totals = []
    for part, column in part_columns.items():
        if column in quantiles:
            totals.append(f"(SELECT {interpolated(column, 'total_quant')} FROM total_quant)")
        elif resummable:
            # Every group holds each event once and the part adds up: the totals are the
            # groups' sums, without reading the source a second time.
            totals.append(RESUMMED[part].format(column=column))
        else:
            totals.append(source.part(part))
    sql = (
        f"WITH {', '.join(ctes)} "
        f"SELECT rn, {outputs} FROM ranked "
        f"UNION ALL SELECT 0, {nulls}{', '.join(totals)} FROM {'grouped' if resummable else 'filtered e'} "
        f"ORDER BY 1"
    )
    return CompiledReport(sql=sql, params=params, spec=spec, scope=scope, parts=parts, source=source.name)
