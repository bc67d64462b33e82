from django.db import migrations

# The fold updates the same rollup rows again and again (a customer's day, a latency
# bucket's day) with ON CONFLICT DO UPDATE. Only measure columns change, none indexed,
# so PostgreSQL can update in place on the same page (a HOT update: no new index
# entries, less WAL) when the page has room: leave 30 % of each page for that.
TABLES = ("queries_rollup_daily", "queries_rollup_daily_user", "queries_rollup_weekly_user",
          "queries_rollup_daily_latency", "queries_rollup_hourly", "queries_rollup_daily_health")
FORWARD = "".join(f"ALTER TABLE {table} SET (fillfactor = 70);\n" for table in TABLES)
BACKWARD = "".join(f"ALTER TABLE {table} RESET (fillfactor);\n" for table in TABLES)


class Migration(migrations.Migration):
    dependencies = [("queries", "0006_rollup_weekly_user")]
    operations = [migrations.RunSQL(FORWARD, BACKWARD)]
