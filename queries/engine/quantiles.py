"""Percentiles from the latency histogram, set-based, reading the source once.

A histogram source has rows of (`bucket`, `event_count`, and other measures that add
up); queries/rollups/histogram.py says what a bucket holds and what it is worth. The
compiler first sums every measure per group and bucket (`hist`, NULL bucket for
events without a latency); the plain parts (count, sums) are then summed from `hist`
per group, and the quantiles read from it too: a cumulative count up each group's
buckets, and each quantile as percentile_cont does: the rank r = q (n - 1) of a
group's n events, the representatives of the buckets holding ranks floor(r) and
ceil(r), and the fraction between them. The running count rises with the bucket, so
the bucket holding rank k is the smallest one whose running count exceeds k.

One scan of the rollup rows and small aggregates over a few thousand (group, bucket)
rows replace an array per group unnested by a function call per group and quantile.
"""
from queries.rollups.histogram import GAMMA


def _ends(quantiles: dict[str, float]) -> str:
    """Per quantile column c: the rank r_c and the values lo_c / hi_c of the buckets
    holding floor(r_c) and ceil(r_c), over rows with `b`, `upto` and `total`."""
    columns = []
    for column, q in quantiles.items():
        rank = f"{q!r}::float8 * (total - 1)"
        columns += [
            f"koala_bucket_value(min(b) FILTER (WHERE upto > floor({rank})), {GAMMA!r}) AS lo_{column}",
            f"koala_bucket_value(min(b) FILTER (WHERE upto > ceil({rank})), {GAMMA!r}) AS hi_{column}",
            f"max({rank}) AS r_{column}",
        ]
    return ", ".join(columns)


def interpolated(column: str, relation: str) -> str:
    return (f"{relation}.lo_{column} + ({relation}.r_{column} - floor({relation}.r_{column})) "
            f"* ({relation}.hi_{column} - {relation}.lo_{column})")


def histogram_ctes(*, group_selects: str, joins: str, group_count: int, measures: tuple[str, ...],
                   plain_aggregates: str, quantiles: dict[str, float]) -> list[str]:
    """`hist` (measures per group and bucket, from `filtered e`), `grouped_plain` (the
    plain parts per group, keyed g0..gN like `grouped`), `quant` (each group's quantile
    ends) and `total_quant` (the same over every event once)."""
    keys = [f"g{index}" for index in range(group_count)]
    hist_keys = ", ".join(str(index + 1) for index in range(group_count + 1))
    partition = f"PARTITION BY {', '.join(keys)} " if keys else ""
    group_by = f" GROUP BY {', '.join(keys)}" if keys else ""
    key_selects = "".join(f"{key}, " for key in keys)
    sums = ", ".join(f"sum(e.{measure}) AS {measure}" for measure in measures)
    counted = f"SELECT {key_selects}bucket AS b, event_count AS c FROM hist WHERE bucket IS NOT NULL"
    return [
        f"hist AS MATERIALIZED (SELECT {group_selects}e.bucket AS bucket, {sums} "
        f"FROM filtered e{joins} GROUP BY {hist_keys})",
        # The parts' SQL reads the measures of rows aliased e: hist's sums add up alike.
        f"grouped_plain AS MATERIALIZED (SELECT {key_selects}{plain_aggregates} FROM hist e{group_by})",
        f"quant AS (SELECT {key_selects}{_ends(quantiles)} FROM (SELECT h.*, "
        f"sum(c) OVER ({partition}ORDER BY b) AS upto, sum(c) OVER ({partition.strip()}) AS total FROM ({counted}) h) cum"
        f"{group_by})",
        f"total_quant AS (SELECT {_ends(quantiles)} FROM (SELECT h.b, sum(h.c) OVER (ORDER BY h.b) AS upto, "
        f"sum(h.c) OVER () AS total FROM (SELECT b, sum(c) AS c FROM ({counted}) counted GROUP BY b) h) cum)",
    ]


def join_on_groups(group_count: int) -> str:
    """Null-safe equality of `grouped_plain gp` and `quant q` on every group key."""
    if not group_count:
        return "true"
    return " AND ".join(f"q.g{index} IS NOT DISTINCT FROM gp.g{index}" for index in range(group_count))
