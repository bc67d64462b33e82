"""GET /api/v1/events: filters, newest first, cursor pages, result fields, and tenancy."""
from datetime import UTC, datetime, timedelta, timezone
from urllib.parse import quote

import msgspec
import pytest

from events.models import Event
from tests.factories import make_api_key, make_project
from tests.events import helpers

EVENTS = "/api/v1/events"
_encode = msgspec.json.Encoder(decimal_format="number").encode
NOW = datetime.now(UTC).replace(microsecond=0)


def at(minutes_ago: int) -> datetime:
    return NOW - timedelta(minutes=minutes_ago)


def an_event(**fields) -> dict:
    return helpers.an_event(**{"timestamp": at(5).isoformat(), "cost": "0.001", "traces": ["trace_x"],
                               "metadata": {"model": "gpt-4o-mini", "status": "success"}, **fields})


def ingest(key: str, api_as, events: list) -> None:
    for start in range(0, len(events), 1000):
        response = api_as(key).post(EVENTS, data=_encode({"events": events[start:start + 1000]}),
                                    content_type="application/json")
        assert response.status_code == 200, response.content[:300]
        assert response.json()["accepted"] == len(events[start:start + 1000])


def ids(client, query: str = "") -> list[str]:
    response = client.get(EVENTS + query)
    assert response.status_code == 200, response.content[:300]
    return [row["id"] for row in response.json()["results"]]


@pytest.fixture
def billing(organization):
    return make_project(organization=organization, slug="billing")


@pytest.fixture
def seeded(api_as, full_key, project, billing):
    """Four events across two projects, each distinguishable by every filter."""
    ingest(full_key, api_as, [
        an_event(id="e1", project="assistant-api", timestamp=at(10).isoformat(), tags=["premium", "eu"],
                 traces=["t1"], userId="u1", metadata={"model": "gpt-4o-mini", "status": "success"}),
        an_event(id="e2", project="billing", timestamp=at(20).isoformat(), environment="staging",
                 provider="anthropic", application="billing", action="invoice_previewed", userId="u2",
                 tags=["free"], traces=["t2"], metadata={"model": "claude-sonnet", "status": "error"}, charge=None),
        an_event(id="e3", project="assistant-api", timestamp=at(30).isoformat(), environment="development",
                 action="summarize", userId="u1", tags=["eu"], traces=["t1", "t3"],
                 metadata={"model": "gpt-4o", "status": "success"}),
        an_event(id="e4", project="billing", timestamp=at(40).isoformat(), provider="mistral", userId="u3",
                 traces=["t4"], metadata={"model": "mistral-large", "status": "error", "errorType": "timeout"}),
    ])


def test_events_are_listed_newest_first_with_the_contract_fields(api_as, read_key, seeded):
    body = api_as(read_key).get(EVENTS).json()
    assert [row["id"] for row in body["results"]] == ["e1", "e2", "e3", "e4"]
    assert body["next"] is None
    first = body["results"][0]
    assert first["project"] == "assistant-api"
    assert datetime.fromisoformat(first["timestamp"]) == at(10)
    assert datetime.fromisoformat(first["received_at"]).tzinfo is not None
    assert first["timestamp"].endswith("+00:00") and first["received_at"].endswith("+00:00")
    assert (first["cost"], first["charge"], first["currency"]) == ("0.001", "0.002", "USD")
    assert (first["margin"], first["margin_pct"]) == ("0.001", 50.0)
    assert (first["environment"], first["provider"], first["application"], first["action"], first["userId"]) == (
        "production", "openai", "assistant", "completion", "u1")
    assert (first["tags"], first["traces"]) == (["premium", "eu"], ["t1"])
    assert first["metadata"] == {"model": "gpt-4o-mini", "status": "success"}
    no_charge = body["results"][1]
    assert (no_charge["charge"], no_charge["margin"], no_charge["margin_pct"]) == (None, None, None)
    assert "charge.missing" in no_charge["flags"]


@pytest.mark.parametrize(("query", "expected"), [
    ("?project=assistant-api", ["e1", "e3"]),
    ("?project=billing", ["e2", "e4"]),
    ("?project=nope", []),
    ("?environment=staging", ["e2"]),
    ("?environment=production", ["e1", "e4"]),
    ("?provider=openai", ["e1", "e3"]),
    ("?application=billing", ["e2"]),
    ("?action=summarize", ["e3"]),
    ("?user=u1", ["e1", "e3"]),
    ("?model=gpt-4o", ["e3"]),
    ("?status=error", ["e2", "e4"]),
    ("?tag=eu", ["e1", "e3"]),
    ("?tag=premium&tag=free", ["e1", "e2"]),
    ("?tag=nothing", []),
    ("?trace=t1", ["e1", "e3"]),
    ("?trace=t3", ["e3"]),
    ("?project=assistant-api&environment=development", ["e3"]),
    ("?status=error&provider=mistral", ["e4"]),
], ids=lambda value: value if isinstance(value, str) else None)
def test_each_filter_narrows_the_list(api_as, read_key, seeded, query, expected):
    assert ids(api_as(read_key), query) == expected


def test_since_and_until_are_half_open(api_as, read_key, seeded):
    client = api_as(read_key)
    since, until = quote(at(30).isoformat()), quote(at(10).isoformat())
    assert ids(client, f"?since={since}&until={until}") == ["e2", "e3"]
    assert ids(client, f"?since={quote(at(10).isoformat())}") == ["e1"]
    assert ids(client, f"?until={quote(at(40).isoformat())}") == []


def test_a_time_without_an_offset_means_utc(api_as, read_key, seeded):
    naive = at(20).replace(tzinfo=None).isoformat()
    assert ids(api_as(read_key), f"?since={naive}") == ["e1", "e2"]
    zulu = at(20).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert ids(api_as(read_key), f"?until={zulu}") == ["e3", "e4"]


def test_offsets_and_lowercase_z_are_understood_even_unencoded(api_as, read_key, seeded):
    client = api_as(read_key)
    plus_one = at(20).astimezone(timezone(timedelta(hours=1))).isoformat()  # "...+01:00"
    assert ids(client, f"?since={quote(plus_one)}") == ["e1", "e2"]
    assert ids(client, f"?since={plus_one}") == ["e1", "e2"]  # the '+' arrives as a space
    minus = at(20).astimezone(timezone(timedelta(hours=-5))).isoformat()
    assert ids(client, f"?until={minus}") == ["e3", "e4"]
    assert ids(client, f"?until={at(20).strftime('%Y-%m-%dt%H:%M:%Sz')}") == ["e3", "e4"]


@pytest.mark.parametrize("value", ["yesterday", "2026-13-01T00:00:00Z", "9999-12-31T23:00:00-05:00", "1e9"])
def test_a_bad_time_filter_is_400(api_as, read_key, seeded, value):
    response = api_as(read_key).get(f"{EVENTS}?since={quote(value)}")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_request"
    assert "RFC 3339" in response.json()["error"]["message"]


def test_pages_follow_the_cursor_to_the_end(api_as, read_key, seeded):
    client = api_as(read_key)
    first = client.get(EVENTS + "?limit=3").json()
    assert [row["id"] for row in first["results"]] == ["e1", "e2", "e3"]
    assert first["next"]
    second = client.get(first["next"]).json()
    assert [row["id"] for row in second["results"]] == ["e4"]
    assert second["next"] is None


def test_the_cursor_keeps_the_filters(api_as, read_key, seeded):
    client = api_as(read_key)
    first = client.get(EVENTS + "?status=error&limit=1").json()
    assert [row["id"] for row in first["results"]] == ["e2"]
    second = client.get(first["next"]).json()
    assert [row["id"] for row in second["results"]] == ["e4"]
    assert second["next"] is None


@pytest.mark.parametrize("limit", ["0", "501", "-1", "abc"])
def test_a_limit_outside_1_to_500_is_400(api_as, read_key, limit):
    response = api_as(read_key).get(f"{EVENTS}?limit={limit}")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_request"


@pytest.mark.parametrize("cursor", ["garbage", "Zm9vYmFy", "%00", "MjAyNi0wMS0wMVQwMDowMDowMHw1", "bz0xMTAw"])
def test_a_tampered_cursor_is_400_not_500(api_as, read_key, seeded, cursor):
    response = api_as(read_key).get(f"{EVENTS}?cursor={cursor}")
    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"] == "invalid_request"


def test_the_default_page_is_100_and_500_is_allowed(api_as, read_key, full_key, project):
    ingest(full_key, api_as, [an_event(id=f"evt_{n}", project="assistant-api", timestamp=at(n % 50).isoformat())
                              for n in range(120)])
    client = api_as(read_key)
    page = client.get(EVENTS).json()
    assert len(page["results"]) == 100 and page["next"]
    assert len(client.get(EVENTS + "?limit=500").json()["results"]) == 120
    assert len(client.get(EVENTS + "?limit=1").json()["results"]) == 1


def test_many_events_sharing_a_timestamp_page_through_completely(api_as, read_key, full_key, organization, project):
    # A batch without timestamps is stamped with one instant; clients often send whole seconds.
    same = at(1).isoformat()
    ingest(full_key, api_as, [an_event(id=f"evt_{n}", project="assistant-api", timestamp=same)
                              for n in range(1250)])
    client = api_as(read_key)
    seen: list[str] = []
    url = EVENTS + "?limit=100"
    for _ in range(20):
        body = client.get(url).json()
        seen += [row["id"] for row in body["results"]]
        url = body["next"]
        if url is None:
            break
    assert url is None, "the pages never ended"
    assert len(seen) == len(set(seen)) == 1250
    assert Event.objects.filter(organization=organization).count() == 1250


def test_another_organization_sees_none_of_these_events(api_as, other_key, seeded, other_project):
    client = api_as(other_key)
    assert ids(client) == []
    assert ids(client, "?trace=t1") == []
    assert ids(client, "?project=assistant-api") == []
    assert ids(client, "?user=u1") == []
    ingest(other_key, api_as, [an_event(id="globex_1", project="assistant-api", traces=["t1"])])
    assert ids(client, "?trace=t1") == ["globex_1"]


def test_this_organization_does_not_see_the_other_organizations_events(api_as, read_key, other_key, seeded,
                                                                        other_project):
    ingest(other_key, api_as, [an_event(id="globex_1", project="assistant-api", traces=["t1"])])
    assert "globex_1" not in ids(api_as(read_key), "?trace=t1&limit=500")
    assert ids(api_as(read_key), "?trace=t1") == ["e1", "e3"]


def test_a_project_key_sees_only_its_project(api_as, organization, project, billing, seeded):
    key = make_api_key(organization=organization, project=project, scopes="read")
    client = api_as(key)
    assert ids(client) == ["e1", "e3"]
    assert ids(client, "?project=billing") == []
    assert ids(client, "?trace=t4") == []
    assert {row["project"] for row in client.get(EVENTS).json()["results"]} == {"assistant-api"}


def test_the_openapi_document_lists_every_filter_and_the_cursor(api_client):
    response = api_client.get("/api/schema/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    document = response.json()
    parameters = {p["name"] for p in document["paths"]["/api/v1/events"]["get"]["parameters"]}
    assert parameters >= {"limit", "cursor", "project", "environment", "provider", "application", "action", "user",
                          "model", "status", "tag", "trace", "since", "until"}
