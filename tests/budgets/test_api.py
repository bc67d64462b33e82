"""The budgets API of the contract: CRUD with `manage`, reading with `read`, status."""
import json
from datetime import timedelta

from django.utils import timezone

from budgets.models import Budget
from tests.budgets.helpers import make_budget, spend
from tests.factories import make_api_key, make_project

BODY = {"name": "Prod spend", "project": "assistant-api", "amount": "5000", "period": "month",
        "thresholds": [50, 80, 100], "filters": {"environment": ["production"]},
        "recipients": ["ops@acme.test"], "notify_forecast": True, "active": True}


def post(client, url, body):
    return client.post(url, json.dumps(body), content_type="application/json")


def patch(client, url, body):
    return client.patch(url, json.dumps(body), content_type="application/json")


def test_create_read_update_delete(api_as, full_key, project):
    client = api_as(full_key)
    response = post(client, "/api/v1/budgets", BODY)
    assert response.status_code == 201, response.json()
    created = response.json()
    assert {key: created[key] for key in BODY} == BODY
    assert created["currency"] == "USD" and created["notify_spike"] is True
    url = f"/api/v1/budgets/{created['id']}"
    assert client.get(url).json() == created
    assert client.get("/api/v1/budgets").json() == {"results": [created], "next": None}

    changed = patch(client, url, {"amount": 0.1, "thresholds": [100, 90], "project": None, "filters": {}})
    assert changed.status_code == 200, changed.json()
    assert changed.json()["amount"] == "0.1"  # a JSON number, read as an exact decimal
    assert changed.json()["thresholds"] == [90, 100] and changed.json()["project"] is None
    assert changed.json()["filters"] == {}
    assert client.delete(url).status_code == 204
    assert client.get(url).status_code == 404


def test_defaults(api_as, full_key, organization):
    response = post(api_as(full_key), "/api/v1/budgets", {"name": "All spend", "amount": 12.5})
    body = response.json()
    assert response.status_code == 201
    assert (body["project"], body["amount"], body["period"], body["thresholds"], body["filters"],
            body["recipients"], body["notify_forecast"], body["active"]) == (
        None, "12.5", "month", [50, 80, 100], {}, [], True, True)


def test_invalid_bodies_are_400_with_the_contract_body(api_as, full_key, project):
    client = api_as(full_key)
    cases = [
        ({"name": "x"}, "amount"), ({"amount": "5"}, "name"), ({**BODY, "amount": "-1"}, "amount"),
        ({**BODY, "amount": "abc"}, "amount"), ({**BODY, "amount": True}, "amount"),
        ({**BODY, "period": "year"}, "period"), ({**BODY, "thresholds": []}, "thresholds"),
        ({**BODY, "thresholds": [0]}, "thresholds"), ({**BODY, "filters": {"colour": ["red"]}}, "filters"),
        ({**BODY, "filters": {"environment": "production"}}, "filters"),
        ({**BODY, "recipients": ["not-an-email"]}, "recipients"), ({**BODY, "active": "yes"}, "active"),
        ({**BODY, "recipient_roles": ["boss"]}, "recipient_roles"), ({**BODY, "id": 3}, "id"),
        ({**BODY, "surprise": 1}, "surprise"), ({**BODY, "name": "ops\x00team"}, "name"),
        ({**BODY, "recipients": ["ops@acme.test\ud800"]}, "recipients"),
    ]
    for body, field in cases:
        response = post(client, "/api/v1/budgets", body)
        assert response.status_code == 400, (body, response.json())
        error = response.json()["error"]
        assert error["code"] == "invalid_request" and error["message"].startswith(field), (body, error)
    assert client.post("/api/v1/budgets", "{", content_type="application/json").json()["error"]["code"] == \
        "invalid_json"
    assert client.post("/api/v1/budgets", '{"name": "n", "amount": NaN}',
                       content_type="application/json").status_code == 400
    assert post(client, "/api/v1/budgets", [1]).status_code == 400
    assert post(client, "/api/v1/budgets", {**BODY, "project": "nope"}).status_code == 404
    assert not Budget.objects.exists()


def test_scopes(api_as, read_key, organization, project):
    budget = make_budget(organization)
    reader = api_as(read_key)
    assert reader.get(f"/api/v1/budgets/{budget.pk}").status_code == 200
    assert reader.get(f"/api/v1/budgets/{budget.pk}/status").status_code == 200
    for response in (post(reader, "/api/v1/budgets", BODY), patch(reader, f"/api/v1/budgets/{budget.pk}",
                                                                  {"amount": "1"}),
                     reader.delete(f"/api/v1/budgets/{budget.pk}")):
        assert response.status_code == 403 and response.json()["error"]["code"] == "permission_denied"
    assert api_as(None).get("/api/v1/budgets").status_code == 401
    ingest_only = make_api_key(organization=organization, scopes="ingest")
    assert api_as(ingest_only).get("/api/v1/budgets").status_code == 403


def test_another_organizations_budgets_are_not_found(api_as, full_key, other_key, project, other_project):
    theirs = make_budget(other_project.organization, name="Theirs", project=other_project)
    client = api_as(full_key)
    assert client.get("/api/v1/budgets").json()["results"] == []
    for method in ("get", "delete"):
        for suffix in ("", "/status"):
            response = getattr(client, method)(f"/api/v1/budgets/{theirs.pk}{suffix}")
            assert response.status_code in (404, 405)
            if response.status_code == 404:
                assert response.json()["error"]["code"] == "not_found"
    assert patch(client, f"/api/v1/budgets/{theirs.pk}", {"name": "mine now"}).status_code == 404
    theirs.refresh_from_db()
    assert theirs.name == "Theirs"
    # Their key cannot reach ours, nor attach our project to their budget.
    mine = make_budget(project.organization, name="Mine")
    assert api_as(other_key).get(f"/api/v1/budgets/{mine.pk}").status_code == 404
    assert patch(api_as(other_key), f"/api/v1/budgets/{theirs.pk}", {"project": "search-api"}).status_code == 404


def test_a_project_key_manages_only_its_projects_budgets(api_as, organization, project):
    search = make_project(organization=organization, slug="search-api")
    key = make_api_key(organization=organization, project=project, scopes="read,manage")
    org_wide = make_budget(organization, name="Org wide")
    other = make_budget(organization, name="Search", project=search)
    client = api_as(key)
    created = post(client, "/api/v1/budgets", {"name": "Mine", "amount": "5"})
    assert created.status_code == 201 and created.json()["project"] == "assistant-api"
    assert [row["name"] for row in client.get("/api/v1/budgets").json()["results"]] == ["Mine"]
    for budget in (org_wide, other):
        assert client.get(f"/api/v1/budgets/{budget.pk}/status").status_code == 404
    assert post(client, "/api/v1/budgets", {"name": "Sneaky", "amount": "5", "project": None}).status_code == 403
    assert post(client, "/api/v1/budgets", {"name": "Sneaky", "amount": "5", "project": "search-api"}
                ).status_code == 404


def test_status(api_as, read_key, organization, project):
    budget = make_budget(organization, name="Prod", amount="10", period="day", thresholds=[50, 100])
    now = timezone.now()
    spend(project, now - timedelta(seconds=1), "6")
    client = api_as(read_key)
    status = client.get(f"/api/v1/budgets/{budget.pk}/status").json()
    assert status["spent"] == "6" and status["amount"] == "10" and status["percent"] == 60.0
    assert status["period_start"].startswith(now.date().isoformat()) and status["period_start"].endswith("+00:00")
    assert status["alerts"] == []
    assert float(status["forecast"]) >= 6

    from budgets.services import budgets_evaluate_all
    budgets_evaluate_all()
    alerts = client.get(f"/api/v1/budgets/{budget.pk}/status").json()["alerts"]
    assert [(alert["kind"], alert["threshold"], alert["sent_at"]) for alert in alerts] == [("threshold", 50, None)]
