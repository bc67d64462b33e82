"""The rollup tables, the fold's watermark, and the histogram quantile function.

Hand-written SQL rather than models: the tables are written only by set-based SQL
(queries/rollups/fold.py) and read only by the report engine, and their unique keys
need NULLS NOT DISTINCT (a missing provider is one group, as in a report).
"""
from django.db import migrations

MONEY = "numeric(38, 18) NOT NULL DEFAULT 0"
AMOUNTS = f"""
    event_count bigint NOT NULL DEFAULT 0,
    error_count bigint NOT NULL DEFAULT 0,
    cost {MONEY},
    charge {MONEY},
    margin {MONEY},
    uncharged_count bigint NOT NULL DEFAULT 0,
    uncharged_cost {MONEY},
    unconverted_count bigint NOT NULL DEFAULT 0"""

FORWARD = f"""
CREATE TABLE queries_rollup_daily (
    organization_id bigint NOT NULL,
    project_id bigint NOT NULL,
    day date NOT NULL,
    environment varchar(64), provider varchar(64), model varchar(200), application varchar(64),
    action varchar(64), status varchar(16),
    {AMOUNTS},
    latency_count bigint NOT NULL DEFAULT 0,
    latency_sum numeric NOT NULL DEFAULT 0,
    input_tokens numeric NOT NULL DEFAULT 0,
    output_tokens numeric NOT NULL DEFAULT 0,
    CONSTRAINT queries_rollup_daily_key UNIQUE NULLS NOT DISTINCT
        (organization_id, day, project_id, environment, provider, model, application, action, status)
);

CREATE TABLE queries_rollup_daily_user (
    organization_id bigint NOT NULL,
    project_id bigint NOT NULL,
    day date NOT NULL,
    environment varchar(64), user_id varchar(128),
    {AMOUNTS},
    CONSTRAINT queries_rollup_daily_user_key UNIQUE NULLS NOT DISTINCT
        (organization_id, day, project_id, environment, user_id)
);

-- bucket: NULL for events without a latency, else a log bucket (queries/rollups/histogram.py).
CREATE TABLE queries_rollup_daily_latency (
    organization_id bigint NOT NULL,
    project_id bigint NOT NULL,
    day date NOT NULL,
    environment varchar(64), provider varchar(64), model varchar(200), application varchar(64),
    action varchar(64), bucket smallint,
    event_count bigint NOT NULL DEFAULT 0,
    latency_sum numeric NOT NULL DEFAULT 0,
    CONSTRAINT queries_rollup_daily_latency_key UNIQUE NULLS NOT DISTINCT
        (organization_id, day, project_id, environment, provider, model, application, action, bucket)
);

-- UTC hours: budgets' spike alerts compare an hour with the same hour of past days.
CREATE TABLE queries_rollup_hourly (
    organization_id bigint NOT NULL,
    project_id bigint NOT NULL,
    hour timestamptz NOT NULL,
    environment varchar(64), provider varchar(64),
    event_count bigint NOT NULL DEFAULT 0,
    cost {MONEY},
    unconverted_count bigint NOT NULL DEFAULT 0,
    CONSTRAINT queries_rollup_hourly_key UNIQUE NULLS NOT DISTINCT
        (organization_id, hour, project_id, environment, provider)
);

-- One row: every event with received_at < watermark is in the rollups.
CREATE TABLE queries_rollup_state (
    id smallint PRIMARY KEY CHECK (id = 1),
    watermark timestamptz NOT NULL,
    folded_at timestamptz
);
INSERT INTO queries_rollup_state (id, watermark) VALUES (1, '1970-01-01T00:00:00Z');

-- The time zone each organization's daily rows were computed in. Reports use the
-- rollups only while it equals the organization's zone; the fold rebuilds an
-- organization whose zone changed (or that it has not seen yet).
CREATE TABLE queries_rollup_zone (
    organization_id bigint PRIMARY KEY,
    timezone varchar(64) NOT NULL,
    built_at timestamptz NOT NULL DEFAULT now()
);

-- The q-quantile (0..1) of a histogram given as parallel arrays of buckets and
-- counts (buckets may repeat: one row per day), interpolated between the two
-- nearest ranks exactly like percentile_cont, each rank valued at its bucket's
-- representative. koala_bucket_value() must match queries/rollups/histogram.py.
CREATE FUNCTION koala_bucket_value(bucket integer, gamma float8) RETURNS float8
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN bucket = 0 THEN 0::float8
                ELSE sign(bucket) * 2 * power(gamma, abs(bucket) - 1) / (gamma + 1) END
$$;

CREATE FUNCTION koala_hist_quantile(buckets smallint[], counts bigint[], q float8, gamma float8)
RETURNS float8 LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    WITH h AS (
        SELECT b, sum(c) AS c FROM unnest(buckets, counts) AS t(b, c) GROUP BY b
    ), cum AS (
        SELECT b, sum(c) OVER (ORDER BY b) AS upto, sum(c) OVER () AS total FROM h
    ), rank AS (
        SELECT q * (max(total) - 1) AS r FROM cum
    ), ends AS (
        SELECT (SELECT koala_bucket_value(b, gamma) FROM cum WHERE upto > floor(r) ORDER BY b LIMIT 1) AS lo,
               (SELECT koala_bucket_value(b, gamma) FROM cum WHERE upto > ceil(r) ORDER BY b LIMIT 1) AS hi,
               r - floor(r) AS frac
        FROM rank WHERE r IS NOT NULL
    )
    SELECT lo + frac * (hi - lo) FROM ends
$$;
"""

BACKWARD = """
DROP FUNCTION koala_hist_quantile(smallint[], bigint[], float8, float8);
DROP FUNCTION koala_bucket_value(integer, float8);
DROP TABLE queries_rollup_zone, queries_rollup_state, queries_rollup_hourly, queries_rollup_daily_latency,
    queries_rollup_daily_user, queries_rollup_daily;
"""


class Migration(migrations.Migration):
    dependencies = [("queries", "0002_builtin_saved_queries"), ("events", "0003_event_received_at_from_the_database")]
    operations = [migrations.RunSQL(FORWARD, BACKWARD)]
