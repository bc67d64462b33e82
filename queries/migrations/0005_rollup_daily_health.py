from django.db import migrations

# The taxonomy health report's aggregates: per local day, project and application,
# how many events (and what cost) carry each flag, each top-level metadata key, or
# no traces. Which keys are "unknown" is judged when the report runs, against the
# taxonomy of that moment, so a key registered later stops counting as drift.
FORWARD = """
CREATE TABLE queries_rollup_daily_health (
    organization_id bigint NOT NULL,
    project_id bigint NOT NULL,
    day date NOT NULL,
    application varchar(64),
    kind varchar(16) NOT NULL,
    value text NOT NULL,
    event_count bigint NOT NULL DEFAULT 0,
    cost numeric(38, 18) NOT NULL DEFAULT 0,
    CONSTRAINT queries_rollup_daily_health_key UNIQUE NULLS NOT DISTINCT
        (organization_id, day, project_id, application, kind, value)
);
"""
BACKWARD = "DROP TABLE queries_rollup_daily_health;"


class Migration(migrations.Migration):
    dependencies = [("queries", "0004_rollup_latency_unconverted")]
    operations = [migrations.RunSQL(FORWARD, BACKWARD)]
