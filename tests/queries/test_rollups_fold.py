"""The fold with real commits: exactly once, never ahead of an open transaction,
crash-safe, concurrent-safe, and what a report shows once it ran."""
import dataclasses
import json
import threading
import time
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from django.db import connection, connections

from queries.rollups import fold as fold_module
from queries.rollups import rollup_fold, rollup_rebuild
from queries.tasks import rollups_fold
from tests.events.helpers import an_event
from tests.factories import make_api_key

pytestmark = pytest.mark.django_db(transaction=True)

TODAY = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
WINDOW = {"from": (TODAY - timedelta(days=2)).isoformat(), "to": (TODAY + timedelta(days=1)).isoformat()}


def send(client, events: list[dict]) -> dict:
    response = client.post("/api/v1/events", json.dumps({"events": events}), content_type="application/json")
    assert response.status_code == 200, response.json()
    return response.json()


def report(client, **body) -> dict:
    response = client.post("/api/v1/reports", {**WINDOW, "metrics": ["count", "cost"], **body}, format="json")
    assert response.status_code == 200, response.json()
    return response.json()


def rollup_totals(organization) -> tuple:
    with connection.cursor() as cursor:
        cursor.execute("SELECT COALESCE(sum(event_count), 0), COALESCE(sum(cost), 0) FROM queries_rollup_daily "
                       "WHERE organization_id = %s", [organization.pk])
        return cursor.fetchone()


def fold_when_final() -> int:
    """The fold keeps a second's margin behind the oldest open transaction."""
    time.sleep(fold_module.SAFETY_MARGIN.total_seconds() + 0.2)
    return rollup_fold()


def events(count: int, **fields) -> list[dict]:
    return [an_event(cost="0.5", timestamp=(TODAY - timedelta(hours=3)).isoformat(), **fields) for _ in range(count)]


def test_a_report_counts_each_event_once_before_and_after_it_is_folded_and_resends_never(
        api_as, ingest_key, read_key, organization):
    batch = events(30)
    send(api_as(ingest_key), batch)
    assert fold_when_final() == 30
    send(api_as(ingest_key), batch)  # resent: 30 duplicates, nothing stored
    fold_when_final()
    assert report(api_as(read_key))["totals"] == {"count": 30, "cost": "15", "unconverted_count": 0}
    assert rollup_totals(organization)[0] == 30
    send(api_as(ingest_key), events(10))
    # Not folded yet, already in the report: the rollups plus the events received since.
    assert rollup_totals(organization)[0] == 30
    assert report(api_as(read_key))["totals"] == {"count": 40, "cost": "20", "unconverted_count": 0}
    fold_when_final()
    assert rollup_totals(organization)[0] == 40
    assert report(api_as(read_key))["totals"] == {"count": 40, "cost": "20", "unconverted_count": 0}


def test_events_of_a_transaction_still_open_are_folded_after_it_commits_not_lost(
        api_as, ingest_key, read_key, organization, project):
    rollup_fold()  # the organization's zone is settled; nothing to fold yet
    settings = connection.settings_dict
    with psycopg.connect(dbname=settings["NAME"], host=settings["HOST"], port=settings["PORT"],
                         user=settings["USER"]) as late:
        # Began before the API's write, commits after it: its event's received_at is older.
        late.execute(
            "INSERT INTO events_event (organization_id, project_id, client_id, \"timestamp\", cost, currency, "
            "cost_reporting, action) VALUES (%s, %s, 'late', %s, 2, 'USD', 2, 'completion')",
            [organization.pk, project.pk, TODAY - timedelta(hours=1)])
        send(api_as(ingest_key), events(3))
        fold_when_final()
        assert rollup_totals(organization)[0] == 0  # not even the committed three: the horizon waits
        late.commit()
    fold_when_final()
    assert rollup_totals(organization)[0] == 4
    assert report(api_as(read_key))["totals"] == {"count": 4, "cost": "3.5", "unconverted_count": 0}


def test_a_fold_that_fails_midway_leaves_everything_as_it_was(api_as, ingest_key, organization, monkeypatch):
    send(api_as(ingest_key), events(5))
    time.sleep(1.2)

    def crash(*args, **kwargs):
        raise RuntimeError("worker killed")

    with monkeypatch.context() as patch:
        patch.setattr(fold_module, "_settle_zones", crash)  # after the rows were added, before commit
        with pytest.raises(RuntimeError):
            rollup_fold()
    assert rollup_totals(organization)[0] == 0
    assert rollup_fold() == 5
    assert rollup_totals(organization)[0] == 5


def test_folds_racing_each_other_and_ingestion_count_every_event_once(api_as, organization, project):
    key = make_api_key(organization=organization, project=project, scopes="ingest")
    stop = threading.Event()

    def fold_repeatedly():
        try:
            while not stop.is_set():
                rollup_fold()
        finally:
            connections.close_all()

    folders = [threading.Thread(target=fold_repeatedly) for _ in range(3)]
    for folder in folders:
        folder.start()
    for _ in range(10):
        send(api_as(key), events(20))
    stop.set()
    for folder in folders:
        folder.join()
    fold_when_final()
    assert rollup_totals(organization)[0] == 200


def test_the_beat_task_folds(api_as, ingest_key, organization):
    send(api_as(ingest_key), events(2))
    time.sleep(1.2)
    rollups_fold.apply()
    assert rollup_totals(organization)[0] == 2


def test_a_rebuild_after_amounts_change_neither_doubles_nor_drops(api_as, ingest_key, read_key, organization):
    send(api_as(ingest_key), events(4))
    fold_when_final()
    with connection.cursor() as cursor:  # what a late exchange rate or a re-pricing does to stored events
        cursor.execute("UPDATE events_event SET cost_reporting = 1 WHERE organization_id = %s", [organization.pk])
    rollup_rebuild(organization=organization, since=(TODAY - timedelta(days=1)).date(), until=TODAY.date() + timedelta(days=1))
    rollup_rebuild(organization=organization, since=(TODAY - timedelta(days=1)).date(), until=TODAY.date() + timedelta(days=1))
    assert report(api_as(read_key))["totals"] == {"count": 4, "cost": "4", "unconverted_count": 0}
    assert rollup_fold() == 0 and rollup_totals(organization)[0] == 4


def test_each_organization_reads_only_its_own_rollup_rows(api_as, ingest_key, read_key, organization,
                                                          other_organization, other_project, other_key):
    send(api_as(ingest_key), events(2))
    send(api_as(make_api_key(organization=other_organization, project=other_project, scopes="ingest")), events(7))
    fold_when_final()
    assert rollup_totals(organization)[0] == 2 and rollup_totals(other_organization)[0] == 7
    assert report(api_as(read_key))["totals"]["count"] == 2
    assert report(api_as(other_key))["totals"]["count"] == 7


def test_a_slow_report_does_not_hold_back_the_fold(api_as, ingest_key, read_key, organization, monkeypatch):
    """A report's transaction only reads: the fold's horizon does not wait for it, while
    any other open transaction (it might insert events) still holds it back."""
    from queries import selectors

    def compile_with_a_pause(*args, **kwargs):
        compiled = selectors_compile(*args, **kwargs)
        return dataclasses.replace(compiled, sql=f"SELECT r.* FROM ({compiled.sql}) r CROSS JOIN pg_sleep(4) ORDER BY 1")

    selectors_compile = selectors.compile_report
    monkeypatch.setattr(selectors, "compile_report", compile_with_a_pause)
    rollup_fold()
    answers = []

    def slow_report():
        try:
            answers.append(report(api_as(read_key)))
        finally:
            connections.close_all()

    thread = threading.Thread(target=slow_report)
    thread.start()
    time.sleep(0.5)  # the report's statement is running
    send(api_as(ingest_key), events(3))
    assert fold_when_final() == 3  # folded while the report still runs
    assert thread.is_alive()
    thread.join(10)
    assert answers and answers[0]["totals"]["count"] == 0

    settings = connection.settings_dict
    with psycopg.connect(dbname=settings["NAME"], host=settings["HOST"], port=settings["PORT"],
                         user=settings["USER"]) as unmarked:
        unmarked.execute("SELECT 1")  # an open transaction that could still insert
        send(api_as(ingest_key), events(2))
        assert fold_when_final() == 0
        unmarked.rollback()
    assert fold_when_final() == 2
