"""Events for report tests: through the API (`send_events`) or written straight to the
table (`insert_events`) when a test needs rows the default taxonomy would refuse."""
import json
from datetime import UTC, datetime
from decimal import Decimal

from django.db import connection

from events.partitions import ensure_partitions
from organizations.models import Organization, Project
from tests.conftest import client_with
from tests.factories import make_api_key


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def send_events(organization: Organization, events: list[dict], *, project: Project | None = None) -> dict:
    """POSTs events with a fresh ingest key (an organization key unless `project`);
    every event must be accepted."""
    key = make_api_key(organization=organization, project=project, scopes="ingest")
    for start in range(0, len(events), 1000):
        response = client_with(key).post("/api/v1/events", json.dumps({"events": events[start:start + 1000]}),
                                         content_type="application/json")
        body = response.json()
        assert response.status_code == 200 and body["rejected"] == 0, body
    return body


def event(**fields) -> dict:
    """An event as the API takes it, valid under the default taxonomy."""
    base = {"cost": "0.01", "environment": "production", "action": "completion"}
    base.update(fields)
    if isinstance(base.get("timestamp"), datetime):
        base["timestamp"] = base["timestamp"].isoformat()
    return base


INSERT = """
INSERT INTO events_event (organization_id, project_id, client_id, "timestamp", received_at, cost, charge,
    currency, cost_reporting, charge_reporting, environment, provider, application, action, user_id, tags,
    metadata, model, latency_ms, status)
VALUES (%s, %s, %s, %s, COALESCE(%s, now()), %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
"""


def insert_events(organization: Organization, rows: list[dict]) -> None:
    """Writes rows straight into events_event. Each row: `project` (a Project),
    `timestamp`, and any of cost, charge, environment, provider, application,
    action, user, tags, metadata, model, latency_ms, status, and received_at (default:
    the transaction's start, like ingestion)."""
    if not rows:
        return
    ensure_partitions({(row["timestamp"].year, row["timestamp"].month) for row in rows})
    values = []
    for number, row in enumerate(rows):
        cost = Decimal(row.get("cost", "0"))
        charge = row.get("charge")
        charge = None if charge is None else Decimal(charge)
        values.append((
            organization.pk, row["project"].pk, f"row-{number}", row["timestamp"], row.get("received_at"),
            cost, charge,
            organization.reporting_currency, cost, charge, row.get("environment"), row.get("provider"),
            row.get("application"), row.get("action"), row.get("user"), list(row.get("tags", [])),
            json.dumps(row.get("metadata", {})), row.get("model"), row.get("latency_ms"), row.get("status"),
        ))
    with connection.cursor() as cursor:
        cursor.executemany(INSERT, values)
