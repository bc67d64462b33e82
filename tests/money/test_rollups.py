"""Rollups and reports stay exact when stored amounts change: a late rate and a
re-pricing rebuild the days they touch, once; folding again counts nothing twice."""
import time
from decimal import Decimal

import pytest
from django.db import connection
from django.utils import timezone

from events.ingest import INGEST_COMMITTED_HOOKS
from events.money.conversion import UNCONVERTED_FLAG
from events.money.services import event_costs_reprice, events_convert
from queries.services import rollup_fold
from tests.events.helpers import an_event
from tests.money.helpers import add_price, add_rate, at, send, stored
from tests.money.test_pricing import catalog, tokens_event

pytestmark = pytest.mark.django_db(transaction=True)
REPORT = {"from": "2026-11-01T00:00:00Z", "to": "2026-12-01T00:00:00Z", "metrics": ["count", "cost", "charge"]}


def fold(expected: int) -> None:
    """Folds until the `expected` events are in (the fold waits a second for final events)."""
    folded, started = 0, time.monotonic()
    while folded < expected and time.monotonic() - started < 10:
        folded += rollup_fold()
        time.sleep(0.1)
    assert folded == expected


def rollup_totals(organization) -> tuple:
    with connection.cursor() as cursor:
        cursor.execute("SELECT sum(event_count), sum(cost), sum(charge), sum(unconverted_count) "
                       "FROM queries_rollup_daily WHERE organization_id = %s", [organization.pk])
        count, cost, charge, unconverted = cursor.fetchone()
    return count, cost.normalize(), charge.normalize(), unconverted


def report_totals(client) -> tuple:
    response = client.post("/api/v1/reports", REPORT, format="json")
    assert response.status_code == 200, response.content
    totals = response.json()["totals"]
    return totals["count"], Decimal(totals["cost"]), Decimal(totals["charge"]), totals["unconverted_count"]


def test_a_late_rate_updates_rollups_and_reports_once(api_as, ingest_key, read_key, organization):
    send(api_as(ingest_key),
         an_event(id="usd", timestamp="2026-11-05T10:00:00Z", cost="1", charge="2"),
         an_event(id="eur1", timestamp="2026-11-05T11:00:00Z", cost="10", charge="20", currency="EUR"),
         an_event(id="eur2", timestamp="2026-11-20T11:00:00Z", cost="0.000001", charge=None, currency="EUR"))
    fold(3)
    assert rollup_totals(organization) == (3, Decimal("1"), Decimal("2"), 2)
    assert report_totals(api_as(read_key)) == (3, Decimal("1"), Decimal("2"), 2)

    add_rate(organization, "EUR", "1.1", "2026-11-01T00:00:00Z")
    assert events_convert(organization=organization).converted == 2
    expected = (3, Decimal("12.0000011"), Decimal("24"), 0)
    assert rollup_totals(organization) == expected
    assert report_totals(api_as(read_key)) == expected

    # Converting again, folding again: nothing counts twice.
    assert events_convert(organization=organization).converted == 0
    rollup_fold()
    assert rollup_totals(organization) == expected
    assert report_totals(api_as(read_key)) == expected


def test_repricing_updates_rollups_and_reports_once(api_as, ingest_key, read_key, organization):
    send(api_as(ingest_key), tokens_event("a", "gpt-4o-mini", timestamp="2026-11-05T10:00:00Z"),
         tokens_event("b", "gpt-4o-mini", timestamp="2026-11-25T10:00:00Z"),
         an_event(id="client", timestamp="2026-11-05T10:00:00Z", cost="0.5", charge=None))
    fold(3)
    computed = catalog("gpt-4o-mini", "openai")
    assert rollup_totals(organization)[:2] == (3, (2 * computed + Decimal("0.5")).normalize())

    add_price(organization, "gpt-4o-mini", "1", "2")
    for _ in range(2):  # the second run finds nothing to change
        event_costs_reprice(organization=organization, since=at("2026-11-01T00:00:00Z"),
                            until=at("2026-12-01T00:00:00Z"))
        rollup_fold()
        assert rollup_totals(organization)[:2] == (3, Decimal("0.504"))
        assert report_totals(api_as(read_key))[:2] == (3, Decimal("0.504"))


def test_budgets_count_converted_amounts_and_hear_of_the_change(api_as, ingest_key, full_key, organization):
    now = timezone.now()
    client = api_as(full_key)
    response = client.post("/api/v1/budgets", {"name": "All spend", "project": None, "amount": "100",
                                                "period": "day", "thresholds": [100], "recipients": []}, format="json")
    assert response.status_code == 201, response.content
    status_url = f"/api/v1/budgets/{response.json()['id']}/status"
    send(api_as(ingest_key), an_event(id="usd", timestamp=now.isoformat(), cost="1"),
         an_event(id="eur", timestamp=now.isoformat(), cost="10", currency="EUR"))
    fold(2)
    assert Decimal(client.get(status_url).json()["spent"]) == Decimal("1")

    heard = []
    INGEST_COMMITTED_HOOKS.append(lambda **change: heard.append(change))
    try:
        add_rate(organization, "EUR", "1.1", "2026-01-01T00:00:00Z")
        events_convert(organization=organization)
    finally:
        INGEST_COMMITTED_HOOKS.pop()
    assert Decimal(client.get(status_url).json()["spent"]) == Decimal("12")
    # What follows committed events (the budgets' evaluation request) hears of the change.
    assert heard == [{"organization_id": organization.pk, "project_ids": [stored(organization, "eur").project_id],
                      "first": stored(organization, "eur").timestamp, "last": stored(organization, "eur").timestamp}]


def test_taxonomy_health_counts_unconverted_events_until_a_rate_arrives(api_as, ingest_key, read_key, organization):
    send(api_as(ingest_key), an_event(id="eur1", timestamp="2026-11-05T11:00:00Z", currency="EUR"),
         an_event(id="eur2", timestamp="2026-11-06T11:00:00Z", currency="EUR"),
         an_event(id="usd", timestamp="2026-11-06T11:00:00Z"))
    fold(3)

    def health() -> tuple:
        response = api_as(read_key).get("/api/v1/taxonomy/health?from=2026-11-01T00:00:00Z&to=2026-12-01T00:00:00Z")
        assert response.status_code == 200, response.content
        body = response.json()
        return body["unconverted_count"], {flag["rule"]: flag["count"] for flag in body["flags"]}.get(UNCONVERTED_FLAG)

    assert health() == (2, 2)
    add_rate(organization, "EUR", "1.1", "2026-11-01T00:00:00Z")
    events_convert(organization=organization)
    assert health() == (0, None)
