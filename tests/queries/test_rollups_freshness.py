"""With the real worker and beat: a report shows an event as soon as its 200 is sent,
and the fold then moves it into the rollups without counting it twice."""
import json
import os
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from django.conf import settings
from django.db import connection

from koala.embedded import ROOT
from tests.events.helpers import an_event
from tests.celery_worker import database_url_of_this_test

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


@pytest.fixture
def worker_with_beat(tmp_path):
    # A Redis database of its own (beat's tasks go to the default queue) and a
    # schedule file in tmp: nothing shared with another test run.
    redis_url = settings.REDIS_URL.rsplit("/", 1)[0] + f"/{13 + os.getpid() % 3}"
    env = dict(os.environ, DJANGO_SETTINGS_MODULE="koala.settings.test", DATABASE_URL=database_url_of_this_test(),
               REDIS_URL=redis_url, PYTHONUNBUFFERED="1")
    process = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "koala", "worker", "-B", "-s", str(tmp_path / "beat-schedule"),
         "-c", "1", "--pool", "solo", "--without-gossip", "--without-mingle", "-l", "INFO"],
        cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(process.stdout), daemon=True).start()
    deadline = time.monotonic() + 60
    while not any("rollups_fold" in line and "succeeded" in line for line in lines):
        assert process.poll() is None and time.monotonic() < deadline, "".join(lines[-40:])
        time.sleep(0.2)
    yield
    process.terminate()
    process.wait(timeout=20)


def test_a_report_right_after_a_200_includes_the_events_and_the_fold_moves_them_once(worker_with_beat, api_as,
                                                                                    ingest_key, read_key,
                                                                                    organization):
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    window = {"from": today.isoformat(), "to": (today + timedelta(days=1)).isoformat(), "metrics": ["count"]}
    response = api_as(ingest_key).post("/api/v1/events", json.dumps({"events": [an_event() for _ in range(25)]}),
                                       content_type="application/json")
    assert response.status_code == 200
    sent = time.monotonic()
    # Before any fold has seen them: the report reads them from the tail.
    assert api_as(read_key).post("/api/v1/reports", window, format="json").json()["totals"]["count"] == 25
    deadline = settings.ROLLUP_FOLD_SECONDS + 10  # one interval, plus a busy machine's slack
    while True:
        with connection.cursor() as cursor:
            cursor.execute("SELECT COALESCE(sum(event_count), 0) FROM queries_rollup_daily WHERE organization_id = %s",
                           [organization.pk])
            [in_rollups] = cursor.fetchone()
        if in_rollups == 25 or time.monotonic() - sent > deadline:
            break
        time.sleep(0.2)
    assert in_rollups == 25, f"after {time.monotonic() - sent:.1f} s the rollups hold {in_rollups} of 25 events"
    # Folded, and no longer in the tail: still counted once.
    assert api_as(read_key).post("/api/v1/reports", window, format="json").json()["totals"]["count"] == 25
