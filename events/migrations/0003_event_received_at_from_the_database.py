from django.db import migrations

# `received_at` becomes the database's transaction start time (now()), written by the
# column default rather than by the web process. The rollup fold relies on it: an
# event not yet committed belongs to a transaction that pg_stat_activity still lists
# with that very start time, so everything received before the oldest open
# transaction began is final. The index (organization first, like every index here)
# lets the fold read only what arrived since its watermark.
FORWARD = """
ALTER TABLE events_event ALTER COLUMN received_at SET DEFAULT now();
CREATE INDEX events_event_org_received ON events_event (organization_id, received_at);
"""
BACKWARD = """
DROP INDEX events_event_org_received;
ALTER TABLE events_event ALTER COLUMN received_at DROP DEFAULT;
"""


class Migration(migrations.Migration):
    dependencies = [("events", "0002_event_partitioned_table")]
    operations = [migrations.RunSQL(FORWARD, BACKWARD)]
