from django.db import migrations

# Every report's totals carry unconverted_count, so every rollup must know it.
FORWARD = "ALTER TABLE queries_rollup_daily_latency ADD COLUMN unconverted_count bigint NOT NULL DEFAULT 0;"
BACKWARD = "ALTER TABLE queries_rollup_daily_latency DROP COLUMN unconverted_count;"


class Migration(migrations.Migration):
    dependencies = [("queries", "0003_rollups")]
    operations = [migrations.RunSQL(FORWARD, BACKWARD)]
