"""The taxonomy health page: the API's health report, as tiles, charts and tables whose
offenders link to their events; plus which projects have no budget."""
import json
from datetime import timedelta
from html import unescape

import pytest
from django.db import connection
from django.utils import timezone

from budgets.services import budget_create
from events.models import FieldRule
from events.services import taxonomy_touch
from queries.rollups import rollup_fold
from tests.conftest import client_with
from tests.dashboard import html
from tests.events.helpers import an_event
from tests.factories import make_api_key, make_project

pytestmark = pytest.mark.django_db


@pytest.fixture
def offenders(organization, project):
    """Environment and action rules that flag rather than reject (so offenders are stored),
    events with each problem over the last days, folded into the rollups."""
    FieldRule.objects.filter(organization=organization, field__in=["environment", "action"]).update(enforcement="flag")
    taxonomy_touch(organization=organization)
    organization.refresh_from_db()
    make_project(organization=organization, slug="billing-api")
    now = timezone.now()

    def at(days: float, **fields):
        return an_event(timestamp=(now - timedelta(days=days)).isoformat(), project="assistant-api", **fields)

    events = [
        at(1, cost="2", charge=None),
        at(1.5, cost="3", charge=None, traces=None),
        at(2, environment="prodution"),
        at(2.5, environment="qa"),
        at(3, environment=None, action="handleChatCompletion"),
        at(4, metadata={"model": "gpt-4o-mini", "latency_msec": 120}, application="search"),
    ]
    key = make_api_key(organization=organization, scopes="ingest")
    response = client_with(key).post("/api/v1/events", json.dumps({"events": events}), content_type="application/json")
    assert response.status_code == 200, response.json()
    with connection.cursor() as cursor:
        cursor.execute("SELECT now()")
        [moment] = cursor.fetchone()
    rollup_fold(up_to=moment + timedelta(seconds=1))
    budget_create(organization=organization, api_key=None, name="Assistant", amount="10", project=project)


def test_the_page_shows_the_apis_health_report(organization, owner_client, offenders, api_as, read_key):
    api = api_as(read_key).get("/api/v1/taxonomy/health").json()  # default: the last 30 days, as the page
    page = owner_client.get(f"/o/{organization.slug}/taxonomy-health/")
    assert page.status_code == 200
    tiles = html.tiles(page.content)
    assert tiles["events"] == str(api["events"]) == "6"
    assert tiles["missing_charge"] == f"{api['missing_charge']['share'] * 100:.1f} %"
    assert tiles["missing_traces"] == f"{api['missing_traces']['share'] * 100:.1f} %"
    assert tiles["unknown_environment"] == f"{api['environment']['unknown']['share'] * 100:.1f} %"
    environments = html.table(page.content, "environments")["body"]
    assert [(row[0], row[1]) for row in environments] == [(item["value"], str(item["count"]))
                                                          for item in api["environment"]["values"]]
    assert ["prodution", "1", "no", "production"] in environments
    drift = html.table(page.content, "metadata-drift")["body"]
    assert [row[0] for row in drift] == [item["key"] for item in api["metadata_drift"]]
    assert drift[0][:3] == ["latency_msec", "1", "latencyMs"]
    actions = html.table(page.content, "action-naming")["body"]
    assert actions == [[item["action"], str(item["count"]), item["suggestion"]] for item in api["action_naming"]]
    # Problem 5: billing-api has no budget (and no cost), assistant-api has one.
    coverage = html.table(page.content, "budget-coverage")["body"]
    assert coverage[0][0] == "assistant-api" and coverage[0][2] == "Assistant"
    assert coverage[1][0] == "billing-api" and coverage[1][2].startswith("none")
    assert tiles["uncovered_projects"] == "1"


def test_offenders_link_to_their_events(organization, owner_client, offenders):
    text = unescape(owner_client.get(f"/o/{organization.slug}/taxonomy-health/").content.decode())
    link = next(part.split('"')[0] for part in text.split('href="') if "action=handleChatCompletion" in part)
    events = html.table(owner_client.get(link).content, "events")["body"]
    assert len(events) == 1 and events[0][4] == "handleChatCompletion"
    env_link = next(part.split('"')[0] for part in text.split('href="') if "environment=prodution" in part)
    rows = html.table(owner_client.get(env_link).content, "events")["body"]
    assert [row[2] for row in rows] == ["prodution"]


def test_one_project_and_an_unknown_project(organization, owner_client, offenders, api_as, read_key):
    page = owner_client.get(f"/o/{organization.slug}/taxonomy-health/?project=billing-api")
    assert page.status_code == 200 and html.tiles(page.content)["events"] == "0"
    assert owner_client.get(f"/o/{organization.slug}/taxonomy-health/?project=nope").status_code == 404
