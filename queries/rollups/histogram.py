"""The latency histogram: log buckets with a guaranteed relative error (DDSketch's
mapping), so percentiles from the rollup are within ALPHA of the exact value.

A latency x > 0 goes to bucket ceil(log_gamma(x)) + 1, gamma = (1 + ALPHA) / (1 - ALPHA);
0 to bucket 0; a negative latency to the negated bucket of |x|. Bucket i > 0 holds
(gamma^(i-2), gamma^(i-1)] and is valued at 2 gamma^(i-1) / (gamma + 1), which is
within ALPHA of every value in it. A percentile interpolates between two such values
with percentile_cont's weights, so it too is within ALPHA of the exact
percentile_cont over the raw events (a convex combination of values each within
ALPHA). The report engine reads them set-based from per-bucket counts
(queries/engine/quantiles.py), valuing buckets with koala_bucket_value() (queries migration 0003).
"""
import math

ALPHA = 0.02  # 2 % relative error at most; half the buckets (and rows) of 1 %
GAMMA = (1 + ALPHA) / (1 - ALPHA)

BUCKET_SQL = (
    "CASE WHEN e.latency_ms IS NULL THEN NULL WHEN e.latency_ms = 0 THEN 0 "
    f"ELSE (sign(e.latency_ms) * (ceil(ln(abs(e.latency_ms)) / ln({GAMMA!r})) + 1))::smallint END"
)


def bucket_of(latency: int) -> int:
    """Python twin of BUCKET_SQL, for tests and documentation."""
    if latency == 0:
        return 0
    index = math.ceil(math.log(abs(latency)) / math.log(GAMMA)) + 1
    return index if latency > 0 else -index


def bucket_value(bucket: int) -> float:
    if bucket == 0:
        return 0.0
    return math.copysign(2 * GAMMA ** (abs(bucket) - 1) / (GAMMA + 1), bucket)
