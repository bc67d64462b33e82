from django.db import migrations
from django.utils import timezone

CREATE_EVENTS = """
CREATE EXTENSION IF NOT EXISTS btree_gin;
CREATE SEQUENCE events_event_seq CACHE 1000;
CREATE TABLE events_event (
    seq bigint NOT NULL DEFAULT nextval('events_event_seq'),
    organization_id bigint NOT NULL,
    project_id bigint NOT NULL,
    client_id varchar(128) NOT NULL,
    "timestamp" timestamptz NOT NULL,
    received_at timestamptz NOT NULL,
    cost numeric(38, 18) NOT NULL CHECK (cost >= 0),
    charge numeric(38, 18) CHECK (charge >= 0),
    currency varchar(3) NOT NULL,
    cost_reporting numeric(38, 18) NOT NULL,
    charge_reporting numeric(38, 18),
    environment varchar(64),
    provider varchar(64),
    application varchar(64),
    action varchar(64),
    user_id varchar(128),
    tags varchar(64)[] NOT NULL DEFAULT '{}',
    traces varchar(128)[] NOT NULL DEFAULT '{}',
    metadata jsonb NOT NULL DEFAULT '{}',
    model varchar(200),
    latency_ms bigint,
    input_tokens bigint,
    output_tokens bigint,
    status varchar(16),
    error_type varchar(200),
    flags varchar(64)[] NOT NULL DEFAULT '{}',
    PRIMARY KEY (organization_id, "timestamp", seq)
) PARTITION BY RANGE ("timestamp");
ALTER SEQUENCE events_event_seq OWNED BY events_event.seq;
CREATE INDEX events_event_org_project_ts ON events_event (organization_id, project_id, "timestamp");
CREATE INDEX events_event_org_user_ts ON events_event (organization_id, user_id, "timestamp");
CREATE INDEX events_event_org_traces ON events_event USING gin (organization_id, traces);
"""

DROP_EVENTS = "DROP TABLE IF EXISTS events_event CASCADE; DROP SEQUENCE IF EXISTS events_event_seq;"


def create_first_partitions(apps, schema_editor):
    from events.partitions import ensure_partitions, forget_known_partitions, months_ahead

    forget_known_partitions()
    with schema_editor.connection.cursor() as cursor:
        ensure_partitions(months_ahead(timezone.now().date()), using_cursor=cursor)


class Migration(migrations.Migration):
    dependencies = [("events", "0001_initial")]

    operations = [
        migrations.RunSQL(CREATE_EVENTS, DROP_EVENTS),
        migrations.RunPython(create_first_partitions, migrations.RunPython.noop),
    ]
