from django.db import migrations

MONEY = "numeric(38, 18) NOT NULL DEFAULT 0"

# Customer questions over 30 days read whole weeks here and only the edge days from
# the daily user rollup: a few times fewer rows. The index serves per-customer
# lookups (a customer's daily trend) without reading every customer's days.
FORWARD = f"""
CREATE TABLE queries_rollup_weekly_user (
    organization_id bigint NOT NULL,
    project_id bigint NOT NULL,
    week date NOT NULL,
    environment varchar(64), user_id varchar(128),
    event_count bigint NOT NULL DEFAULT 0,
    error_count bigint NOT NULL DEFAULT 0,
    cost {MONEY},
    charge {MONEY},
    margin {MONEY},
    uncharged_count bigint NOT NULL DEFAULT 0,
    uncharged_cost {MONEY},
    unconverted_count bigint NOT NULL DEFAULT 0,
    CONSTRAINT queries_rollup_weekly_user_key UNIQUE NULLS NOT DISTINCT
        (organization_id, week, project_id, environment, user_id)
);
CREATE INDEX queries_rollup_daily_user_by_user ON queries_rollup_daily_user (organization_id, user_id, day);
"""
BACKWARD = """
DROP INDEX queries_rollup_daily_user_by_user;
DROP TABLE queries_rollup_weekly_user;
"""


class Migration(migrations.Migration):
    dependencies = [("queries", "0005_rollup_daily_health")]
    operations = [migrations.RunSQL(FORWARD, BACKWARD)]
