"""GET /api/v1/taxonomy/health: the playbook's common problems as numbers, from the
rollups and, for windows they cannot serve, from the same aggregates over raw events."""
import json
from datetime import timedelta

import pytest
from django.db import connection

from events.models import FieldRule
from events.services import taxonomy_touch
from queries import health as health_module
from queries.rollups import rollup_fold
from tests.events.helpers import an_event
from tests.factories import make_api_key, make_project
from tests.queries.helpers import utc

pytestmark = pytest.mark.django_db

DAY = utc(2026, 11, 2)
WINDOW = "from=2026-11-01T00:00:00Z&to=2026-11-08T00:00:00Z"


def at(hours: float, **fields) -> dict:
    return an_event(timestamp=(DAY + timedelta(hours=hours)).isoformat(), **fields)


@pytest.fixture
def flagging(organization):
    """Environment and action rules that flag rather than reject, so offenders are stored."""
    FieldRule.objects.filter(organization=organization, field__in=["environment", "action"]).update(enforcement="flag")
    taxonomy_touch(organization=organization)
    organization.refresh_from_db()
    return organization


def send(client, events) -> None:
    response = client.post("/api/v1/events", json.dumps({"events": events}), content_type="application/json")
    assert response.status_code == 200, response.json()


def fold_this_transaction() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT now()")
        [now] = cursor.fetchone()
    rollup_fold(up_to=now + timedelta(seconds=1))


EVENTS = [
    at(1, cost="2", charge=None),  # no charge
    at(2, cost="3", charge=None, traces=None),  # no charge, no traces
    at(3, traces=None, environment="prod"),  # an alias: stored as production, not a problem
    at(4, environment="prodution"),  # a typo: unknown, resembles production
    at(5, environment="qa"),  # unknown, resembles nothing
    at(26, environment=None, action="handleChatCompletion"),  # missing; code-like action
    at(27, metadata={"model": "gpt-4o-mini", "latency_msec": 120}, application="search"),  # drift
    at(28, metadata={"model": "gpt-4o-mini", "latency_msec": 80, "region": "eu"}, application="assistant"),
]


def test_the_report_names_each_problem_with_counts_and_what_it_resembles(api_as, ingest_key, read_key, flagging):
    send(api_as(ingest_key), EVENTS)
    fold_this_transaction()
    body = api_as(read_key).get(f"/api/v1/taxonomy/health?{WINDOW}").json()
    assert body["events"] == 8
    assert body["missing_charge"] == {"count": 2, "share": 0.25, "cost": "5"}
    assert body["missing_traces"] == {"count": 2, "share": 0.25}
    environment = body["environment"]
    assert environment["missing"] == {"count": 1, "share": 0.125}
    assert environment["unknown"] == {"count": 2, "share": 0.25}
    assert {(v["value"], v["count"], v["known"], v["resembles"]) for v in environment["values"]} == {
        ("production", 5, True, "production"), ("prodution", 1, False, "production"), ("qa", 1, False, None)}
    drift = {item["key"]: item for item in body["metadata_drift"]}
    assert drift["latency_msec"]["resembles"] == "latencyMs" and drift["latency_msec"]["count"] == 2
    assert drift["latency_msec"]["applications"] == [{"application": "assistant", "count": 1},
                                                     {"application": "search", "count": 1}]
    assert drift["region"]["resembles"] is None
    assert body["metadata_drift"][0]["key"] == "latency_msec"  # resembling keys first: the renames to fix
    assert body["action_naming"] == [{"action": "handleChatCompletion", "count": 1,
                                      "suggestion": "chat_completion"}]
    flags = {flag["rule"]: flag["count"] for flag in body["flags"]}
    assert flags["charge.missing"] == 2 and flags["traces.missing"] == 2 and flags["environment.unknown"] == 2
    assert flags["environment.missing"] == 1 and flags["action.convention"] == 1
    assert flags["metadata.unknown_key"] == 2
    assert body["trend"] == [
        {"day": "2026-11-02", "events": 5, "missing_charge": 2, "missing_traces": 2, "flagged": 5},
        {"day": "2026-11-03", "events": 3, "missing_charge": 0, "missing_traces": 0, "flagged": 3},
    ]


def test_rollups_and_raw_events_give_the_same_report(api_as, ingest_key, read_key, flagging, monkeypatch):
    with connection.cursor() as cursor:
        cursor.execute("SELECT now()")
        [now] = cursor.fetchone()
    rollup_fold(up_to=now)  # the zone settled, the watermark at this transaction's events: none folded
    send(api_as(ingest_key), EVENTS)
    not_folded = api_as(read_key).get(f"/api/v1/taxonomy/health?{WINDOW}").json()
    fold_this_transaction()
    from_rollups = api_as(read_key).get(f"/api/v1/taxonomy/health?{WINDOW}").json()
    monkeypatch.setattr(health_module, "report_scope", lambda **kwargs: _without_rollups(**kwargs))
    from_raw = api_as(read_key).get(f"/api/v1/taxonomy/health?{WINDOW}").json()
    assert from_raw == from_rollups == not_folded
    assert from_raw["events"] == len(EVENTS)


def _without_rollups(**kwargs):
    from dataclasses import replace

    from queries.selectors import report_scope

    return replace(report_scope(**kwargs), rollups=False)


def test_a_window_of_part_days_reads_only_its_events(api_as, ingest_key, read_key, flagging):
    send(api_as(ingest_key), EVENTS)
    fold_this_transaction()
    body = api_as(read_key).get("/api/v1/taxonomy/health?from=2026-11-02T01:30:00Z&to=2026-11-02T04:30:00Z").json()
    assert body["events"] == 3 and body["missing_charge"]["count"] == 1


def test_another_organizations_events_and_projects_stay_out(api_as, ingest_key, read_key, flagging,
                                                            other_organization, other_project, other_key):
    send(api_as(ingest_key), EVENTS[:2])
    send(api_as(make_api_key(organization=other_organization, project=other_project, scopes="ingest")),
         [at(1, charge=None)] * 1 + [at(2, charge=None, id="evt_other_2")])
    fold_this_transaction()
    assert api_as(read_key).get(f"/api/v1/taxonomy/health?{WINDOW}").json()["events"] == 2
    assert api_as(other_key).get(f"/api/v1/taxonomy/health?{WINDOW}").json()["events"] == 2
    hidden = make_project(organization=other_organization, slug="secret-project")
    response = api_as(read_key).get(f"/api/v1/taxonomy/health?{WINDOW}&project={hidden.slug}")
    assert response.status_code == 404 and "secret" not in json.dumps(response.json()).replace(hidden.slug, "")


def test_a_project_and_a_project_key_narrow_the_report(api_as, organization, project, read_key, flagging):
    billing = make_project(organization=organization, slug="billing")
    send(api_as(make_api_key(organization=organization, project=project, scopes="ingest")), EVENTS[:3])
    send(api_as(make_api_key(organization=organization, project=billing, scopes="ingest")), EVENTS[3:4])
    fold_this_transaction()
    assert api_as(read_key).get(f"/api/v1/taxonomy/health?{WINDOW}&project=billing").json()["events"] == 1
    billing_reader = make_api_key(organization=organization, project=billing, scopes="read")
    assert api_as(billing_reader).get(f"/api/v1/taxonomy/health?{WINDOW}").json()["events"] == 1
    assert api_as(billing_reader).get(f"/api/v1/taxonomy/health?{WINDOW}&project={project.slug}").status_code == 404


@pytest.mark.parametrize("query, field", [
    ("from=yesterday", "from"),
    ("from=2026-11-08T00:00:00Z&to=2026-11-01T00:00:00Z", "to"),
    ("from=2020-01-01T00:00:00Z&to=2026-01-01T00:00:00Z", "to"),
])
def test_a_bad_window_is_a_clear_400(api_as, read_key, query, field):
    response = api_as(read_key).get(f"/api/v1/taxonomy/health?{query}")
    assert response.status_code == 400
    assert response.json()["error"]["message"].startswith(f"{field}:")


def test_the_default_window_is_the_last_30_days_and_an_empty_one_has_no_shares(api_as, read_key):
    body = api_as(read_key).get("/api/v1/taxonomy/health").json()
    assert body["events"] == 0 and body["missing_charge"]["share"] is None and body["trend"] == []
