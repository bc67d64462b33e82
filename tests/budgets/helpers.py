"""Budgets tests: events written straight to the table at chosen times, and budgets."""
import itertools
import json
from datetime import UTC, datetime
from decimal import Decimal

from django.db import connection

from budgets.models import Budget
from budgets.services import budget_create
from events.partitions import ensure_partitions
from organizations.models import Organization, Project

_numbers = itertools.count(1)

INSERT = """
INSERT INTO events_event (organization_id, project_id, client_id, "timestamp", received_at, cost, charge,
    currency, cost_reporting, charge_reporting, environment, provider, application, action, user_id, tags,
    metadata, model)
VALUES (%s, %s, %s, %s, COALESCE(%s, now()), %s, NULL, %s, %s, NULL, %s, %s, %s, %s, %s, %s, '{}', %s)
"""


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def spend(project: Project, at: datetime, cost, *, count: int = 1, environment: str = "production",
          provider: str = "openai", application: str = "assistant", action: str = "completion",
          user: str | None = "user_1", tags: tuple = (), model: str | None = "gpt-4o-mini",
          received_at: datetime | None = None) -> None:
    """`count` events of `cost` each at `at` in `project` (its organization's currency),
    received now (the transaction's start) unless `received_at`."""
    ensure_partitions({(at.year, at.month)})
    organization = project.organization
    cost = Decimal(str(cost))
    rows = [(organization.pk, project.pk, f"b-{next(_numbers)}", at, received_at, cost, organization.reporting_currency, cost,
             environment, provider, application, action, user, list(tags), model) for _ in range(count)]
    with connection.cursor() as cursor:
        cursor.executemany(INSERT, rows)


def make_budget(organization: Organization, *, amount="10", name: str | None = None, **fields) -> Budget:
    fields.setdefault("recipients", ["ops@acme.test"])
    fields.setdefault("notify_forecast", False)
    fields.setdefault("notify_spike", False)
    return budget_create(organization=organization, api_key=None, name=name or f"Budget {next(_numbers)}",
                         amount=amount, **fields)


def as_json(body) -> str:
    return json.dumps(body)
