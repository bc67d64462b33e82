"""Saved queries: CRUD, validation on save, runs with a range or an overriding window,
the four built-ins, tenancy on every endpoint, and the admin."""
import csv
import io
from datetime import UTC, datetime, timedelta

import pytest
from django.urls import reverse

from organizations.models import Membership
from queries.builtins import BUILTIN_QUERIES
from queries.models import SavedQuery
from tests.factories import make_api_key, make_member, make_organization, make_project
from tests.queries.helpers import event, send_events

BUILTIN_NAMES = ["Customer usage trends", "High-latency paths", "Production failures", "Provider spend by project"]
QUERY = {"range": "last_7_days", "group_by": ["provider"], "metrics": ["count", "cost"], "order_by": "-cost"}


@pytest.fixture
def now():
    return datetime.now(UTC).replace(microsecond=0)


@pytest.fixture
def recent(organization, project, now):
    """Events 2 days ago and 20 days ago (inside last_30_days, outside last_7_days)."""
    send_events(organization, [
        event(project="assistant-api", timestamp=now - timedelta(days=2), cost="1.5", charge="2", provider="openai",
              application="chat", userId="usr_1", metadata={"model": "gpt-4.1", "latencyMs": 700, "status": "error"}),
        event(project="assistant-api", timestamp=now - timedelta(days=2, hours=1), cost="0.5", provider="anthropic",
              application="chat", userId="usr_2", metadata={"model": "claude", "latencyMs": 100,
                                                           "status": "success"}),
        event(project="assistant-api", timestamp=now - timedelta(days=20), cost="7", charge="10",
              provider="openai", application="chat", userId="usr_1", metadata={"latencyMs": 50}),
    ])


def create(client, **fields):
    return client.post("/api/v1/saved-queries", {"name": "Spend by provider", "query": QUERY, **fields},
                       format="json")


def run(client, saved_query_id, body=None, path=""):
    return client.post(f"/api/v1/saved-queries/{saved_query_id}/run{path}", body, format="json")


def test_a_new_organization_starts_with_the_four_builtins(api_as, read_key, organization):
    saved = SavedQuery.objects.filter(organization=organization).order_by("name")
    assert [query.name for query in saved] == BUILTIN_NAMES
    assert all(query.builtin and query.project is None for query in saved)
    listed = api_as(read_key).get("/api/v1/saved-queries").json()
    assert [item["name"] for item in listed["results"]] == BUILTIN_NAMES and listed["next"] is None
    assert all(item["builtin"] for item in listed["results"])


def test_the_builtins_say_what_the_playbook_asks(organization):
    queries = {query.name: query.query for query in SavedQuery.objects.filter(organization=organization)}
    assert queries["Production failures"] == {
        "range": "last_7_days", "filters": {"environment": ["production"], "status": ["error"]},
        "group_by": ["day", "action"], "metrics": ["count", "error_rate"]}
    assert queries["Provider spend by project"]["group_by"] == ["project", "provider"]
    assert queries["Provider spend by project"]["metrics"] == ["cost", "charge", "margin", "margin_pct"]
    assert queries["Customer usage trends"]["group_by"] == ["week", "user"]
    assert queries["Customer usage trends"]["order_by"] == "-cost"
    assert queries["High-latency paths"]["group_by"] == ["application", "action", "model"]
    assert queries["High-latency paths"]["order_by"] == "-latency_p95"


def test_every_builtin_runs_on_real_events(api_as, read_key, organization, recent, now):
    ids = dict(SavedQuery.objects.filter(organization=organization).values_list("name", "id"))
    client = api_as(read_key)
    answers = {name: run(client, ids[name]).json() for name in BUILTIN_NAMES}
    today = (now - timedelta(days=2)).date().isoformat()
    failures = answers["Production failures"]
    assert failures["columns"] == ["day", "action", "count", "error_rate"]
    assert [(row[0][:10], row[1:]) for row in failures["rows"]] == [(today, ["completion", 1, 1.0])]
    spend = answers["Provider spend by project"]
    assert spend["rows"] == [["assistant-api", "openai", "8.5", "12", "3.5", pytest.approx(29.1666666667)],
                             ["assistant-api", "anthropic", "0.5", "0", "0", None]]
    trends = answers["Customer usage trends"]
    assert trends["columns"] == ["week", "user", "count", "cost", "charge", "margin"]
    assert trends["rows"][0][1:] == ["usr_1", 1, "7", "10", "3"] and trends["totals"]["count"] == 3
    latency = answers["High-latency paths"]
    assert latency["rows"] == [["chat", "completion", "gpt-4.1", 1, 700.0, 700.0],
                               ["chat", "completion", "claude", 1, 100.0, 100.0]]
    assert all(answer["saved_query"]["name"] == name for name, answer in answers.items())


def test_create_read_update_delete(api_as, full_key, organization):
    client = api_as(full_key)
    response = create(client, description="Weekly review")
    assert response.status_code == 201
    created = response.json()
    assert {key: created[key] for key in ("name", "description", "project", "query", "builtin")} == {
        "name": "Spend by provider", "description": "Weekly review", "project": None, "query": QUERY,
        "builtin": False}
    path = f"/api/v1/saved-queries/{created['id']}"
    assert client.get(path).json() == created
    assert "Spend by provider" in [item["name"] for item in client.get("/api/v1/saved-queries").json()["results"]]

    changed = client.patch(path, {"name": "Spend", "query": {**QUERY, "range": "last_30_days"}}, format="json")
    assert changed.status_code == 200
    assert (changed.json()["name"], changed.json()["query"]["range"], changed.json()["description"]) == (
        "Spend", "last_30_days", "Weekly review")
    assert client.patch(path, {"description": None}, format="json").json()["description"] == ""

    assert client.delete(path).status_code == 204
    assert client.get(path).status_code == 404
    assert not SavedQuery.objects.filter(pk=created["id"]).exists()


def test_builtins_can_be_changed_and_deleted(api_as, full_key, organization):
    builtin = SavedQuery.objects.get(organization=organization, name="Production failures")
    client = api_as(full_key)
    response = client.patch(f"/api/v1/saved-queries/{builtin.pk}", {"description": "Ours now"}, format="json")
    assert response.status_code == 200 and response.json()["builtin"] is True
    assert client.delete(f"/api/v1/saved-queries/{builtin.pk}").status_code == 204


@pytest.mark.parametrize("body, field, fragment", [
    ({"name": "x", "query": {**QUERY, "metrics": ["cost_usd"]}}, "query.metrics", "'cost_usd' is not a metric"),
    ({"name": "x", "query": {**QUERY, "range": "last_week"}}, "query.range", "is not a range"),
    ({"name": "x", "query": {"group_by": ["day"]}}, "query.from", "or a range"),
    ({"name": "x", "query": {**QUERY, "order_by": "-margin"}}, "query.order_by", "not among the selected"),
    ({"name": "x", "query": {**QUERY, "from": "2026-01-01T00:00:00Z"}}, "query.range", "either range or from"),
    ({"name": "x", "query": ["cost"]}, "query", "must be a JSON object"),
    ({"name": "", "query": QUERY}, "name", "1-200 characters"),
    ({"query": QUERY}, "name", "is required"),
    ({"name": "x"}, "query", "is required"),
    ({"name": "x", "query": QUERY, "builtin": True}, "builtin", "read-only"),
    ({"name": "x", "query": QUERY, "colour": "red"}, "colour", "not a saved query field"),
    ({"name": "x", "query": QUERY, "description": 7}, "description", "must be a string"),
    ({"name": "x", "query": QUERY, "project": 7}, "project", "slug or null"),
    ({"name": "Production failures", "query": QUERY}, "name", "already exists"),
])
def test_the_query_is_validated_on_save(api_as, full_key, organization, body, field, fragment):
    response = api_as(full_key).post("/api/v1/saved-queries", body, format="json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_request" and error["message"].startswith(f"{field}: ")
    assert fragment in error["message"], error["message"]
    assert SavedQuery.objects.filter(organization=organization).count() == 4


def test_an_invalid_change_leaves_the_query_as_it_was(api_as, full_key, organization):
    saved = SavedQuery.objects.get(organization=organization, name="High-latency paths")
    response = api_as(full_key).patch(f"/api/v1/saved-queries/{saved.pk}",
                                      {"name": "Renamed", "query": {**saved.query, "limit": 0}}, format="json")
    assert response.status_code == 400 and response.json()["error"]["message"].startswith("query.limit: ")
    saved.refresh_from_db()
    assert saved.name == "High-latency paths" and "limit" not in saved.query


def test_a_fixed_window_and_projects_are_accepted_and_unknown_projects_are_404(api_as, full_key, project):
    client = api_as(full_key)
    fixed = {"from": "2026-11-01T00:00:00Z", "to": "2026-12-01T00:00:00Z", "projects": ["assistant-api"]}
    assert create(client, name="November", query=fixed).status_code == 201
    response = create(client, name="Elsewhere", query={**fixed, "projects": ["nope"]})
    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"
    assert create(client, name="Nowhere", project="nope").status_code == 404


def test_writes_need_manage_and_reads_need_read(api_as, organization):
    read_only = make_api_key(organization=organization, scopes="read")
    manage_only = make_api_key(organization=organization, scopes="manage")
    saved = SavedQuery.objects.filter(organization=organization).first()
    path = f"/api/v1/saved-queries/{saved.pk}"
    assert create(api_as(read_only)).status_code == 403
    assert api_as(read_only).patch(path, {"name": "y"}, format="json").status_code == 403
    assert api_as(read_only).delete(path).status_code == 403
    assert api_as(read_only).get(path).status_code == 200
    assert run(api_as(read_only), saved.pk).status_code == 200
    assert api_as(manage_only).get(path).status_code == 403
    assert api_as(manage_only).get("/api/v1/saved-queries").status_code == 403
    assert run(api_as(manage_only), saved.pk).status_code == 403
    assert create(api_as(manage_only)).status_code == 201
    assert api_as(None).get("/api/v1/saved-queries").status_code == 401


def test_run_with_its_range_or_an_overriding_window(api_as, full_key, recent, now):
    client = api_as(full_key)
    saved = create(client).json()
    answer = run(client, saved["id"]).json()
    assert answer["columns"] == ["provider", "count", "cost"]
    assert answer["rows"] == [["openai", 1, "1.5"], ["anthropic", 1, "0.5"]]  # the 20-day-old event is out
    window = {"from": (now - timedelta(days=30)).isoformat(), "to": (now - timedelta(days=10)).isoformat()}
    answer = run(client, saved["id"], window).json()
    assert answer["rows"] == [["openai", 1, "7"]]
    assert answer["from"] == (now - timedelta(days=30)).isoformat()
    answer = run(client, saved["id"], {"range": "last_30_days"}).json()
    assert answer["rows"] == [["openai", 2, "8.5"], ["anthropic", 1, "0.5"]]
    answer = run(client, saved["id"], {"from": (now - timedelta(days=21)).isoformat()}).json()
    assert answer["totals"]["count"] == 3  # only from given: to stays the range's end (now)


@pytest.mark.parametrize("body, fragment", [
    ({"limit": 5}, "limit: is not accepted"),
    ({"from": "yesterday"}, "from: 'yesterday' is not an RFC 3339 timestamp"),
    ({"from": "2026-01-01T00:00:00Z", "to": "2025-01-01T00:00:00Z"}, "to: must be after from"),
    ({"range": "forever"}, "range: 'forever' is not a range"),
    ([1, 2], "body: must be a JSON object"),
])
def test_a_bad_run_window_is_400(api_as, read_key, organization, body, fragment):
    saved = SavedQuery.objects.filter(organization=organization).first()
    response = run(api_as(read_key), saved.pk, body)
    assert response.status_code == 400 and fragment in response.json()["error"]["message"]


def test_run_as_csv(api_as, full_key, recent):
    client = api_as(full_key)
    saved = create(client).json()
    response = run(client, saved["id"], path="?format=csv")
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert list(csv.reader(io.StringIO(response.content.decode()))) == [
        ["provider", "count", "cost"], ["openai", "1", "1.5"], ["anthropic", "1", "0.5"]]


def test_a_project_saved_query_reads_only_its_project(api_as, full_key, organization, project, now):
    search = make_project(organization=organization, slug="search-api")
    send_events(organization, [event(project="assistant-api", timestamp=now - timedelta(hours=1), cost="1"),
                               event(project="search-api", timestamp=now - timedelta(hours=1), cost="2")])
    client = api_as(full_key)
    saved = create(client, project="search-api", query={"range": "today", "metrics": ["cost"]}).json()
    assert saved["project"] == "search-api"
    assert run(client, saved["id"], {"range": "last_24_hours"}).json()["totals"] == {"cost": "2", "unconverted_count": 0}
    response = create(client, name="Mixed", project="search-api",
                      query={"range": "today", "projects": ["assistant-api"]})
    assert response.status_code == 404  # its project's query cannot read another project
    assert search.pk


def test_a_project_key_sees_its_project_and_organization_wide_queries(api_as, organization, project):
    search = make_project(organization=organization, slug="search-api")
    org_key = make_api_key(organization=organization)
    other = create(api_as(org_key), name="Search only", project="search-api").json()
    key = make_api_key(organization=organization, project=project, scopes="read,manage")
    client = api_as(key)
    mine = create(client, name="Mine").json()
    assert mine["project"] == "assistant-api"  # a project key saves for its project
    names = [item["name"] for item in client.get("/api/v1/saved-queries").json()["results"]]
    assert names == sorted(BUILTIN_NAMES + ["Mine"])
    for response in (client.get(f"/api/v1/saved-queries/{other['id']}"), run(client, other["id"]),
                     client.patch(f"/api/v1/saved-queries/{other['id']}", {"name": "z"}, format="json"),
                     client.delete(f"/api/v1/saved-queries/{other['id']}")):
        assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"
    builtin = SavedQuery.objects.get(organization=organization, name="Production failures")
    assert run(client, builtin.pk).status_code == 200
    response = client.patch(f"/api/v1/saved-queries/{builtin.pk}", {"name": "z"}, format="json")
    assert response.status_code == 403 and response.json()["error"]["code"] == "permission_denied"
    assert client.delete(f"/api/v1/saved-queries/{builtin.pk}").status_code == 403
    assert create(client, name="Org-wide", project=None).status_code == 403
    assert create(client, name="Theirs", project="search-api").status_code == 404
    assert search.pk


def test_another_organization_gets_404_on_every_endpoint(api_as, organization, other_key, other_organization,
                                                         recent):
    saved = SavedQuery.objects.get(organization=organization, name="Provider spend by project")
    client = api_as(other_key)
    path = f"/api/v1/saved-queries/{saved.pk}"
    for response in (client.get(path), client.patch(path, {"name": "mine"}, format="json"), client.delete(path),
                     run(client, saved.pk), run(client, saved.pk, path="?format=csv")):
        assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"
    ids = {item["id"] for item in client.get("/api/v1/saved-queries").json()["results"]}
    assert saved.pk not in ids and len(ids) == 4
    assert SavedQuery.objects.get(pk=saved.pk).name == "Provider spend by project"
    # Their own copy of the built-in runs over their events only: none.
    theirs = SavedQuery.objects.get(organization=other_organization, name="Provider spend by project")
    assert run(client, theirs.pk).json()["rows"] == []


@pytest.mark.parametrize("path", ["/api/v1/saved-queries/99999999999999999999999",
                                  "/api/v1/saved-queries/abc", "/api/v1/saved-queries/0/run"])
def test_unknown_ids_are_404_not_500(api_as, full_key, path):
    response = api_as(full_key).get(path) if not path.endswith("run") else api_as(full_key).post(path)
    assert response.status_code == 404


def test_names_are_unique_per_organization_only(api_as, full_key, other_key):
    assert create(api_as(full_key)).status_code == 201
    assert create(api_as(other_key)).status_code == 201
    assert create(api_as(full_key)).status_code == 400


def test_builtin_definitions_are_valid_everywhere():
    from queries.spec import report_spec_parse

    for builtin in BUILTIN_QUERIES:
        for zone in ("UTC", "America/New_York", "Asia/Kathmandu"):
            report_spec_parse(builtin["query"], timezone_name=zone, now=datetime.now(UTC), allow_range=True)


@pytest.fixture
def admin_client(client, organization):
    client.force_login(make_member(organization=organization, role=Membership.Role.ADMIN).user)
    return client


def test_the_admin_lists_only_this_organizations_queries(admin_client, organization, other_organization):
    SavedQuery.objects.create(organization=other_organization, name="Globex secret plan", query=QUERY)
    response = admin_client.get(reverse("admin:queries_savedquery_changelist"))
    body = response.content.decode()
    assert response.status_code == 200
    assert "Production failures" in body and "last_7_days" in body and "Globex secret plan" not in body
    theirs = SavedQuery.objects.get(name="Globex secret plan")
    response = admin_client.get(reverse("admin:queries_savedquery_change", args=[theirs.pk]))
    assert response.status_code == 302 and response["Location"] == reverse("admin:index")


def test_the_admin_validates_the_query(admin_client, organization, project, other_organization):
    url = reverse("admin:queries_savedquery_add")
    form = {"organization": organization.pk, "project": "", "name": "From the admin", "description": "",
            "query": '{"range": "last_7_days", "metrics": ["cost_usd"]}'}
    response = admin_client.post(url, form)
    assert response.status_code == 200 and "is not a metric" in response.content.decode()
    other_project = make_project(organization=other_organization, slug="globex-only")
    response = admin_client.post(url, {**form, "query": '{"range": "today"}', "project": other_project.pk})
    assert response.status_code == 200 and not SavedQuery.objects.filter(name="From the admin").exists()
    response = admin_client.post(url, {**form, "query": '{"range": "today"}', "project": project.pk})
    assert response.status_code == 302
    saved = SavedQuery.objects.get(name="From the admin")
    assert (saved.organization, saved.project, saved.builtin) == (organization, project, False)


def test_an_organization_created_later_also_gets_the_builtins(db):
    organization = make_organization(timezone_name="Asia/Kolkata")
    assert SavedQuery.objects.filter(organization=organization, builtin=True).count() == 4
