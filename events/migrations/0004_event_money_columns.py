from django.db import migrations

# Events in another currency keep what was sent (cost, charge, currency) and gain
# reporting amounts only once a rate is known: until then cost_reporting is NULL
# ("unconverted"), which reports count apart instead of summing. The rate used is
# kept so a corrected rate can find the events it changes; a cost computed from
# tokens records that it was and from which price (client costs are never re-priced).
# The partial index finds the pending events of an organization without a scan.
FORWARD = """
ALTER TABLE events_event ALTER COLUMN cost_reporting DROP NOT NULL;
ALTER TABLE events_event ADD COLUMN exchange_rate numeric(38, 18);
ALTER TABLE events_event ADD COLUMN cost_source varchar(8) NOT NULL DEFAULT 'client'
    CONSTRAINT events_event_cost_source CHECK (cost_source IN ('client', 'computed'));
ALTER TABLE events_event ADD COLUMN price_ref varchar(200);
CREATE INDEX events_event_org_unconverted ON events_event (organization_id, currency, "timestamp")
    WHERE cost_reporting IS NULL;
"""
BACKWARD = """
DROP INDEX events_event_org_unconverted;
ALTER TABLE events_event DROP COLUMN price_ref;
ALTER TABLE events_event DROP COLUMN cost_source;
ALTER TABLE events_event DROP COLUMN exchange_rate;
UPDATE events_event SET cost_reporting = cost WHERE cost_reporting IS NULL;
ALTER TABLE events_event ALTER COLUMN cost_reporting SET NOT NULL;
"""


class Migration(migrations.Migration):
    dependencies = [("events", "0003_event_received_at_from_the_database")]
    operations = [migrations.RunSQL(FORWARD, BACKWARD)]
