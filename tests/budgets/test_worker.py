"""With the real parts: Celery worker processes on the real Redis broker, an SMTP
server (aiosmtpd) receiving the mail, ingestion over HTTP, a Redis that stops."""
import json
import logging
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from budgets import tasks
from budgets.models import BudgetAlert
from tests.budgets.helpers import make_budget, spend
from tests.budgets.realparts import PrivateRedis, SmtpServer, budgets_worker
from tests.conftest import client_with
from tests.factories import make_api_key, make_organization, make_project

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture(scope="module")
def _smtp_server():
    with SmtpServer() as server:
        yield server


@pytest.fixture(scope="module")
def _worker_processes(_smtp_server, tmp_path_factory, django_db_setup, django_db_blocker):
    # One set of processes for the module: starting them is most of a test's time. They
    # need the test database to exist first (django_db_setup) to be told its name.
    started = budgets_worker(smtp_port=_smtp_server.port, concurrency=4,
                             log=tmp_path_factory.mktemp("worker") / "worker.log")
    yield started
    started.stop()


@pytest.fixture
def smtp(_smtp_server):
    _smtp_server.mailbox.messages.clear()
    _smtp_server.mailbox.refuse = _smtp_server.mailbox.refused = 0
    return _smtp_server


@pytest.fixture
def worker(_worker_processes, smtp, settings):
    settings.BUDGETS_QUEUE = _worker_processes.queue  # what this process enqueues goes to these workers
    _worker_processes.lines.clear()
    yield _worker_processes
    quiet(0.5)  # the workers finish what they hold before the database is flushed


@pytest.fixture(autouse=True)
def _fresh_hook_state(monkeypatch):
    monkeypatch.setattr(tasks, "_redis_client", None)
    monkeypatch.setattr(tasks, "_redis_down_until", 0.0)
    monkeypatch.setattr(tasks, "_has_budgets", {})


def quiet(seconds: float = 2.0) -> None:
    """Lets late duplicates, if there were any, arrive before counting."""
    time.sleep(seconds)


def wait_until(condition, timeout: float = 30) -> None:
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < timeout, "timed out"
        time.sleep(0.05)


def ingest(key: str, events: list[dict]):
    return client_with(key).post("/api/v1/events", json.dumps({"events": events}), content_type="application/json")


def an_event(cost: str, **fields) -> dict:
    event = {"timestamp": (timezone.now() - timedelta(seconds=5)).isoformat(), "cost": cost,
             "environment": "production", "action": "completion", "provider": "openai"}
    event.update(fields)
    return event


def test_four_workers_and_50_concurrent_evaluations_send_one_email_per_crossing(worker, smtp):
    organization = make_organization(name="Acme")
    project = make_project(organization=organization, slug="assistant-api")
    make_budget(organization, name="Prod spend", amount="10", period="month", thresholds=[50, 80, 100])
    spend(project, timezone.now() - timedelta(minutes=1), "12")
    for number in range(50):
        if number % 10 == 0:
            tasks.budgets_sweep.apply_async(queue=worker.queue)  # a second beat racing the evaluations
        tasks.budgets_evaluate_organization.apply_async(args=[organization.pk], queue=worker.queue)
    smtp.mailbox.wait_for(3)
    quiet()
    month = timezone.now().strftime("%B %Y")
    assert sorted(smtp.mailbox.subjects()) == sorted(
        f"Budget 'Prod spend' reached {threshold}% (120% spent) for {month}" for threshold in (50, 80, 100))
    assert len({message["Message-ID"] for message in smtp.mailbox.messages}) == 3
    assert BudgetAlert.objects.filter(sent_at__isnull=False).count() == 3
    # A thousand more events, more evaluations: nothing more to say this period.
    spend(project, timezone.now() - timedelta(minutes=1), "0.01", count=1000)
    for _ in range(20):
        tasks.budgets_evaluate_organization.apply_async(args=[organization.pk], queue=worker.queue)
    quiet(3)
    assert len(smtp.mailbox.messages) == 3
    assert worker.count("budgets_evaluate_organization") >= 70


def test_ingestion_to_email_through_the_debounced_hook(worker, smtp):
    organization = make_organization(name="Acme")
    project = make_project(organization=organization, slug="assistant-api")
    make_budget(organization, name="Prod spend", amount="100", thresholds=[50, 100])
    key = make_api_key(organization=organization, project=project, scopes="ingest")
    started = time.monotonic()
    for _ in range(1000):  # a burst: 1000 batches of one event, 0.30 each: 300 in all
        response = ingest(key, [an_event("0.30")])
        assert response.status_code == 200
    burst_seconds = time.monotonic() - started
    smtp.mailbox.wait_for(2, timeout=30)
    quiet()
    assert len(smtp.mailbox.messages) == 2
    evaluations = worker.count("Task budgets.tasks.budgets_evaluate_organization") // 2  # received + succeeded
    # At most one evaluation per debounce window of the burst, plus the one after it:
    # a handful, not one per batch.
    assert 1 <= evaluations <= burst_seconds / tasks.DEBOUNCE_SECONDS + 2, (evaluations, burst_seconds)
    assert evaluations <= 20
    print(f"{evaluations} evaluations for 1000 batches in {burst_seconds:.1f} s")


def test_smtp_failing_then_recovering_sends_once(worker, smtp):
    smtp.mailbox.refuse = 2
    organization = make_organization(name="Acme")
    project = make_project(organization=organization, slug="assistant-api")
    make_budget(organization, name="Prod spend", amount="10", thresholds=[100])
    spend(project, timezone.now() - timedelta(minutes=1), "10")
    tasks.budgets_evaluate_organization.apply_async(args=[organization.pk], queue=worker.queue)
    smtp.mailbox.wait_for(1, timeout=30)  # retried after 1 s, then 2 s
    quiet(4)
    assert smtp.mailbox.refused == 2 and len(smtp.mailbox.messages) == 1
    alert = BudgetAlert.objects.get()
    assert alert.sent_at is not None and alert.attempts == 3 and alert.last_error == ""


def test_redis_down_during_ingestion_then_the_sweep_catches_up(worker, smtp, tmp_path, settings, caplog):
    redis = PrivateRedis(tmp_path)
    redis.start()
    settings.REDIS_URL = redis.url  # the hook's Redis; this test stops it
    organization = make_organization(name="Acme")
    project = make_project(organization=organization, slug="assistant-api")
    make_budget(organization, name="Prod spend", amount="10", thresholds=[100])
    key = make_api_key(organization=organization, project=project, scopes="ingest")
    baseline = []
    for cost in ("0.5", "0.5"):
        started = time.monotonic()
        assert ingest(key, [an_event(cost)]).status_code == 200
        baseline.append(time.monotonic() - started)
    wait_until(lambda: worker.count("budgets_evaluate_organization") and worker.count(" succeeded in "))
    redis.stop()
    try:
        caplog.set_level(logging.WARNING, logger="budgets.tasks")
        timings = []
        for _ in range(5):
            started = time.monotonic()
            response = ingest(key, [an_event("2")])
            timings.append(time.monotonic() - started)
            assert response.status_code == 200 and response.json()["accepted"] == 1
        # No waiting on the broker: as fast as with Redis up (plus slack for a busy machine).
        assert max(timings) < max(baseline) + 1.0, (timings, baseline)
        assert "budget.evaluation_request_failed" in [record.getMessage() for record in caplog.records], \
            [record.getMessage() for record in caplog.records]
        quiet(1)
        assert smtp.mailbox.messages == []  # nobody evaluated yet
    finally:
        redis.start()
    # Beat's next sweep (sent here at once instead of within the minute).
    tasks.budgets_sweep.apply_async(queue=worker.queue)
    smtp.mailbox.wait_for(1, timeout=30)
    assert smtp.mailbox.subjects()[0].startswith("Budget 'Prod spend' reached 100% (110% spent)")
    redis.stop()
