"""POST /api/v1/reports: every metric and group against the Python oracle, filters,
totals, ordering, CSV, errors, and tenancy."""
import csv
import io
from datetime import timedelta
from decimal import Decimal

import pytest

from queries.spec import GROUPS, METRICS, report_spec_parse
from tests.factories import make_api_key, make_project
from tests.queries.helpers import send_events, utc
from tests.queries.oracle import assert_same_report, oracle_report

FROM, TO = utc(2026, 11, 2), utc(2026, 11, 9)
WINDOW = {"from": "2026-11-02T00:00:00Z", "to": "2026-11-09T00:00:00Z"}


def ev(hours: float, project="assistant-api", cost="0.01", charge=None, environment="production", provider="openai",
       application="chat", action="completion", user=None, tags=(), model=None, latency_ms=None, status=None,
       metadata=None) -> dict:
    return {"project": project, "timestamp": FROM + timedelta(hours=hours), "cost": Decimal(cost),
            "charge": None if charge is None else Decimal(charge), "environment": environment, "provider": provider,
            "application": application, "action": action, "user": user, "tags": list(tags), "model": model,
            "latency_ms": latency_ms, "status": status,
            "metadata": {**(metadata or {}), **({"model": model} if model else {}),
                         **({"latencyMs": latency_ms} if latency_ms is not None else {}),
                         **({"status": status} if status else {})}}


EVENTS = [
    ev(0, cost="142", charge="199", user="usr_8f9c", tags=["premium", "chat"], model="gpt-4.1-mini", latency_ms=684,
       status="success", metadata={"region": "eu"}),  # exactly at `from`: inside
    ev(1.5, cost="0.0012", charge="0", user="usr_8f9c", tags=["premium"], model="gpt-4.1-mini", latency_ms=120,
       status="success", metadata={"region": "eu", "tier": {"plan": "gold"}}),  # a charge of 0 is a charge
    ev(2, cost="0.5", provider="anthropic", user="usr_2", tags=["chat", "chat"], model="claude-sonnet",
       latency_ms=2300, status="error", metadata={"region": "us"}),  # no charge: margin unknown
    ev(26, cost="1.25", charge="1", provider="anthropic", application="search", action="embedding", user="usr_2",
       model="claude-sonnet", latency_ms=45, status="success"),  # negative margin
    ev(30, cost="3", charge="0", provider="google", application="search", action="embedding", tags=["batch"],
       latency_ms=90, status="error"),  # only zero charges for google: margin_pct null
    ev(50, project="billing-api", cost="2.75", charge="5.5", environment="staging", provider="openai",
       application="billing", action="invoice_previewed", user="usr_3", tags=["premium"], model="gpt-4.1-mini",
       latency_ms=300, status="success", metadata={"region": "eu"}),
    ev(51, project="billing-api", cost="0.25", environment="staging", provider="mistral", application="billing",
       action="export_started", user="usr_3", status="error"),  # mistral: never charged, margin_pct null
    ev(100, cost="10", charge="12.5", provider="openai", application="chat", action="completion", user="usr_4",
       tags=["premium", "beta"], model="gpt-4.1", latency_ms=1000, status="success", metadata={"region": "eu"}),
    ev(101, cost="0.333", charge="0.5", provider="openai", user="usr_4", tags=["beta"], model="gpt-4.1",
       latency_ms=1500, status="success"),
    ev(-0.001, cost="1000"),  # just before `from`: outside
    ev(24 * 7, cost="1000"),  # exactly at `to`: outside (half-open)
]


def as_api_event(event: dict) -> dict:
    body = {"project": event["project"], "timestamp": event["timestamp"].isoformat(), "cost": str(event["cost"]),
            "environment": event["environment"], "provider": event["provider"],
            "application": event["application"], "action": event["action"], "tags": event["tags"],
            "metadata": event["metadata"]}
    if event["charge"] is not None:
        body["charge"] = str(event["charge"])
    if event["user"] is not None:
        body["userId"] = event["user"]
    return body


@pytest.fixture
def billing(organization):
    return make_project(organization=organization, slug="billing-api")


@pytest.fixture
def stored(organization, project, billing):
    send_events(organization, [as_api_event(event) for event in EVENTS])
    return EVENTS


def report(client, body: dict, **kwargs):
    return client.post("/api/v1/reports", body, format="json", **kwargs)


def expected(body: dict, *, timezone_name="UTC", visible=("assistant-api", "billing-api"), events=EVENTS):
    spec = report_spec_parse(body, timezone_name=timezone_name, now=TO)
    return oracle_report(events, spec, timezone_name=timezone_name, visible=set(visible))


def check(client, body: dict, **kwargs) -> dict:
    response = report(client, body)
    assert response.status_code == 200, response.json()
    answer = response.json()
    assert_same_report(answer, expected(body, **kwargs))
    return answer


@pytest.mark.parametrize("group", GROUPS)
def test_every_metric_by_each_group_matches_the_oracle(api_as, read_key, stored, group):
    check(api_as(read_key), {**WINDOW, "group_by": [group], "metrics": list(METRICS)})


@pytest.mark.parametrize("group_by", [[], ["project", "provider"], ["day", "tag", "model"], ["user", "status"],
                                      ["week", "month", "hour"]])
def test_group_combinations_match_the_oracle(api_as, read_key, stored, group_by):
    check(api_as(read_key), {**WINDOW, "group_by": group_by, "metrics": list(METRICS)})


def test_the_numbers_by_hand(api_as, read_key, stored):
    answer = check(api_as(read_key), {**WINDOW, "group_by": ["provider"], "metrics": list(METRICS),
                                      "order_by": "provider"})
    assert answer["currency"] == "USD"
    assert answer["columns"] == ["provider", *METRICS]
    rows = {row[0]: dict(zip(answer["columns"], row)) for row in answer["rows"]}
    assert list(rows) == ["anthropic", "google", "mistral", "openai"]
    anthropic = rows["anthropic"]
    assert (anthropic["count"], anthropic["cost"], anthropic["charge"], anthropic["margin"]) == (
        2, "1.75", "1", "-0.25")
    assert anthropic["margin_pct"] == -25.0  # only the charged event counts: (1 - 1.25) / 1
    assert (anthropic["uncharged_count"], anthropic["uncharged_cost"]) == (1, "0.5")
    assert (anthropic["error_count"], anthropic["error_rate"], anthropic["users"]) == (1, 0.5, 1)
    assert (anthropic["latency_avg"], anthropic["latency_p50"]) == (1172.5, 1172.5)
    assert anthropic["latency_p95"] == pytest.approx(45 + 0.95 * (2300 - 45))
    google = rows["google"]  # charged, but only with 0: margin_pct is undefined
    assert (google["charge"], google["margin"], google["margin_pct"], google["uncharged_count"]) == (
        "0", "-3", None, 0)
    mistral = rows["mistral"]  # never charged: no margin, margin_pct null, no latency
    assert (mistral["charge"], mistral["margin"], mistral["margin_pct"]) == ("0", "0", None)
    assert (mistral["latency_avg"], mistral["latency_p99"], mistral["users"]) == (None, None, 1)
    openai = rows["openai"]
    assert openai["cost"] == "155.0842" and openai["charge"] == "217.5" and openai["margin"] == "62.4158"
    assert openai["uncharged_count"] == 0
    totals = answer["totals"]
    assert (totals["count"], totals["cost"], totals["charge"]) == (9, "160.0842", "218.5")
    assert totals["margin_pct"] == pytest.approx(float(Decimal("59.1658") / Decimal("218.5") * 100))
    assert totals["users"] == 4 and totals["error_rate"] == pytest.approx(3 / 9)


def test_without_groups_one_row_equal_to_the_totals(api_as, read_key, stored):
    answer = check(api_as(read_key), WINDOW)
    assert answer["columns"] == ["count", "cost", "charge", "margin", "margin_pct"]
    assert answer["rows"] == [[answer["totals"][name] for name in answer["columns"]]]


def test_the_window_is_half_open(api_as, read_key, stored):
    client = api_as(read_key)
    answer = check(client, {"from": "2026-11-02T00:00:00Z", "to": "2026-11-02T01:30:00Z", "metrics": ["count"]})
    assert answer["totals"]["count"] == 1  # the event at 00:00 is in, the one at 01:30 is not
    answer = check(client, {"from": "2026-11-02T01:30:00Z", "to": "2026-11-02T01:30:00.000001Z",
                            "metrics": ["count"]})
    assert answer["totals"]["count"] == 1
    answer = check(client, {"from": "2026-11-01T23:00:00-01:00", "to": "2026-11-09T00:00:00Z",
                            "metrics": ["count"]})  # offsets are honoured: from = 2026-11-02T00:00Z
    assert answer["totals"]["count"] == 9


def test_tag_groups_count_an_event_under_each_tag_and_totals_count_it_once(api_as, read_key, stored):
    answer = check(api_as(read_key), {**WINDOW, "group_by": ["tag"], "metrics": ["count", "cost"]})
    rows = {row[0]: row[1:] for row in answer["rows"]}
    assert rows == {"batch": [1, "3"], "beta": [2, "10.333"], "chat": [2, "142.5"], "premium": [4, "154.7512"],
                    None: [2, "1.5"]}  # chat is counted once for the event tagged chat twice
    assert answer["totals"] == {"count": 9, "cost": "160.0842", "unconverted_count": 0}


def test_tag_filter_means_any_of(api_as, read_key, stored):
    answer = check(api_as(read_key), {**WINDOW, "filters": {"tags": ["beta", "batch"]}, "metrics": ["count"]})
    assert answer["totals"]["count"] == 3
    # Filtered events still appear under each of their tags.
    answer = check(api_as(read_key), {**WINDOW, "filters": {"tags": ["beta"]}, "group_by": ["tag"],
                                      "metrics": ["count"]})
    assert answer["rows"] == [["beta", 2], ["premium", 1]]


@pytest.mark.parametrize("metadata, count", [
    ({"region": "eu"}, 4), ({"region": "us"}, 1), ({"region": "eu", "model": "gpt-4.1"}, 1),
    ({"tier": {"plan": "gold"}}, 1), ({"latencyMs": 684}, 1), ({"latencyMs": "684"}, 0), ({"region": "mars"}, 0),
])
def test_metadata_filter_is_containment(api_as, read_key, stored, metadata, count):
    answer = check(api_as(read_key), {**WINDOW, "filters": {"metadata": metadata}, "metrics": ["count"]})
    assert answer["totals"]["count"] == count


@pytest.mark.parametrize("filters", [
    {"environment": ["staging"]}, {"provider": ["openai", "google"]}, {"application": ["search"]},
    {"action": ["embedding", "export_started"]}, {"model": ["gpt-4.1-mini"]}, {"user": ["usr_2", "usr_3"]},
    {"status": ["error"]}, {"user": [None]}, {"model": [None, "gpt-4.1"]}, {"provider": []},
    {"environment": ["production"], "status": ["success"], "tags": ["premium"], "metadata": {"region": "eu"}},
])
def test_filters_match_the_oracle(api_as, read_key, stored, filters):
    check(api_as(read_key), {**WINDOW, "filters": filters, "group_by": ["provider"], "metrics": list(METRICS)})


@pytest.mark.parametrize("order_by", ["-cost", "cost", "-margin_pct", "margin_pct", "-provider", "-latency_p95",
                                      "error_rate", "-users", "-count"])
def test_order_by_and_limit(api_as, read_key, stored, order_by):
    body = {**WINDOW, "group_by": ["provider", "application"], "metrics": list(METRICS), "order_by": order_by}
    full = check(api_as(read_key), body)
    limited = check(api_as(read_key), {**body, "limit": 2})
    assert limited["rows"] == full["rows"][:2] and limited["truncated"] and not full["truncated"]
    assert limited["totals"] == full["totals"]  # totals are over every matching event, not the rows shown


def test_nulls_sort_last_both_ways(api_as, read_key, stored):
    for order_by in ("margin_pct", "-margin_pct"):
        answer = check(api_as(read_key), {**WINDOW, "group_by": ["provider"], "order_by": order_by})
        assert [row[0] for row in answer["rows"]][-2:] == ["google", "mistral"]
    answer = check(api_as(read_key), {**WINDOW, "group_by": ["user"], "order_by": "-cost"})
    # usr_3 and the events without a user both cost 3: the group breaks the tie, null last.
    assert [row[0] for row in answer["rows"]] == ["usr_8f9c", "usr_4", "usr_3", None, "usr_2"]


def test_csv_is_the_same_table(api_as, read_key, stored):
    body = {**WINDOW, "group_by": ["day", "provider"], "metrics": ["count", "cost", "margin_pct"],
            "order_by": "-cost"}
    answer = report(api_as(read_key), body).json()
    response = api_as(read_key).post("/api/v1/reports?format=csv", body, format="json")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    table = list(csv.reader(io.StringIO(response.content.decode())))
    assert table[0] == answer["columns"]
    assert table[1:] == [["" if value is None else str(value) for value in row] for row in answer["rows"]]
    assert ["2026-11-02T00:00:00+00:00", "anthropic", "1", "0.5", ""] in table


def test_csv_errors_are_still_json(api_as, read_key, stored):
    response = api_as(read_key).post("/api/v1/reports?format=csv", {**WINDOW, "metrics": ["nope"]}, format="json")
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_request"
    response = api_as(read_key).post("/api/v1/reports?format=xml", WINDOW, format="json")
    assert response.status_code == 400 and "format" in response.json()["error"]["message"]


def test_amounts_are_exact_decimal_strings(api_as, read_key, organization, project):
    send_events(organization, [
        {"project": "assistant-api", "timestamp": "2026-11-03T00:00:00Z", "cost": "0.000000000000000001",
         "charge": 0.1, "environment": "production", "action": "completion"},
        {"project": "assistant-api", "timestamp": "2026-11-03T00:00:00Z", "cost": "12345678901234567890",
         "charge": "0.2", "environment": "production", "action": "completion"},
    ])
    totals = report(api_as(read_key), {**WINDOW, "metrics": ["cost", "charge", "margin"]}).json()["totals"]
    assert totals == {"cost": "12345678901234567890.000000000000000001", "charge": "0.3",
                      "margin": "-12345678901234567889.700000000000000001", "unconverted_count": 0}


@pytest.mark.parametrize("body, status, field", [
    ({"to": "2026-11-09T00:00:00Z"}, 400, "from"),
    ({**WINDOW, "group_by": ["day", "provider", "model", "user"]}, 400, "group_by"),
    ({**WINDOW, "metrics": ["cost_usd"]}, 400, "metrics"),
    ({**WINDOW, "order_by": "-latency_p95"}, 400, "order_by"),
    ({**WINDOW, "filters": {"tags": "premium"}}, 400, "filters.tags"),
    ({**WINDOW, "limit": 0}, 400, "limit"),
    ({**WINDOW, "projects": ["no-such-project"]}, 404, "projects"),
])
def test_mistakes_answer_with_the_contract_error_body(api_as, read_key, stored, body, status, field):
    response = report(api_as(read_key), body)
    assert response.status_code == status
    error = response.json()["error"]
    assert error["code"] == ("not_found" if status == 404 else "invalid_request")
    assert error["details"]["field"] == field and error["message"].endswith(".")


@pytest.mark.parametrize("raw, content_type, code", [
    (b"{not json", "application/json", "invalid_json"),
    (b"[1, 2]", "application/json", "invalid_request"),
    (b'"report"', "application/json", "invalid_request"),
    (b"{}", "application/json", "invalid_request"),
    (b"from=x", "application/x-www-form-urlencoded", "invalid_request"),
])
def test_malformed_bodies_never_500(api_as, read_key, raw, content_type, code):
    response = api_as(read_key).generic("POST", "/api/v1/reports", raw, content_type=content_type)
    assert 400 <= response.status_code < 500 and response.json()["error"]["code"] == code


def test_reports_need_the_read_scope(api_as, organization, stored):
    assert report(api_as(None), WINDOW).status_code == 401
    ingest_only = make_api_key(organization=organization, scopes="ingest")
    assert report(api_as(ingest_only), WINDOW).status_code == 403
    manage_only = make_api_key(organization=organization, scopes="manage")
    assert report(api_as(manage_only), WINDOW).status_code == 403


def test_another_organization_sees_none_of_these_events(api_as, stored, other_key, other_organization,
                                                        other_project):
    send_events(other_organization, [as_api_event(ev(3, cost="7", charge="9"))])
    answer = report(api_as(other_key), {**WINDOW, "group_by": ["project"], "metrics": list(METRICS)}).json()
    assert answer["rows"] == [["assistant-api", 1, "7", "9", "2", pytest.approx(2 / 9 * 100), 0, "0", 0, 0.0,
                               None, None, None, None, 0]]
    assert answer["totals"]["count"] == 1
    # A slug both organizations use names the caller's own project; one only this one has is 404.
    assert report(api_as(other_key), {**WINDOW, "projects": ["assistant-api"]}).json()["totals"]["count"] == 1
    assert report(api_as(other_key), {**WINDOW, "projects": ["billing-api"]}).status_code == 404


def test_a_project_key_reads_only_its_project(api_as, organization, project, billing, stored):
    key = make_api_key(organization=organization, project=billing, scopes="read")
    check(api_as(key), {**WINDOW, "group_by": ["project", "provider"], "metrics": list(METRICS)},
          visible=["billing-api"])
    answer = report(api_as(key), {**WINDOW, "group_by": ["project"]}).json()
    assert [row[0] for row in answer["rows"]] == ["billing-api"] and answer["totals"]["count"] == 2
    response = report(api_as(key), {**WINDOW, "projects": ["assistant-api"]})
    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"
    assert report(api_as(key), {**WINDOW, "projects": ["billing-api"]}).json()["totals"]["count"] == 2


def test_projects_narrow_an_organization_key(api_as, read_key, stored):
    check(api_as(read_key), {**WINDOW, "projects": ["billing-api"], "group_by": ["provider"]})
    answer = check(api_as(read_key), {**WINDOW, "projects": ["billing-api", "assistant-api"]})
    assert answer["totals"]["count"] == 9


def test_an_empty_window_has_rows_of_nothing(api_as, read_key, stored):
    body = {"from": "2026-01-01T00:00:00Z", "to": "2026-01-02T00:00:00Z", "metrics": list(METRICS)}
    answer = check(api_as(read_key), {**body, "group_by": ["day"]})
    assert answer["rows"] == [] and answer["totals"]["count"] == 0 and answer["totals"]["cost"] == "0"
    assert answer["totals"]["margin_pct"] is None and answer["totals"]["error_rate"] is None
    answer = check(api_as(read_key), body)
    assert answer["rows"] == [[answer["totals"][name] for name in METRICS]]


def test_a_report_that_runs_too_long_is_503_not_500(api_as, read_key, monkeypatch):
    from queries import selectors
    from queries.engine import compile_report

    def slow(spec, scope):
        compiled = compile_report(spec, scope)
        return type(compiled)(**{**compiled.__dict__, "sql": "SELECT pg_sleep(2)"})

    monkeypatch.setattr(selectors, "STATEMENT_TIMEOUT_MS", 50)
    monkeypatch.setattr(selectors, "compile_report", slow)
    response = report(api_as(read_key), WINDOW)
    assert response.status_code == 503 and response["Retry-After"] == "30"
    assert response.json()["error"]["code"] == "unavailable"
    monkeypatch.undo()
    assert report(api_as(read_key), WINDOW).status_code == 200  # the timeout did not outlive the report


def test_an_event_awaiting_its_exchange_rate_is_unconverted_not_uncharged(api_as, read_key, organization, project):
    from django.db import connection

    from queries.rollups import rollup_fold

    send_events(organization, [
        {"project": "assistant-api", "timestamp": "2026-11-03T00:00:00Z", "cost": "2", "charge": "3",
         "environment": "production", "action": "completion", "id": "converted"},
        {"project": "assistant-api", "timestamp": "2026-11-03T01:00:00Z", "cost": "5", "charge": "7",
         "environment": "production", "action": "completion", "id": "awaiting"},
        {"project": "assistant-api", "timestamp": "2026-11-03T02:00:00Z", "cost": "1",
         "environment": "production", "action": "completion", "id": "uncharged"},
    ])
    with connection.cursor() as cursor:  # what a EUR event looks like before its rate arrives
        cursor.execute("UPDATE events_event SET cost_reporting = NULL, charge_reporting = NULL "
                       "WHERE organization_id = %s AND client_id = 'awaiting'", [organization.pk])
        cursor.execute("SELECT now()")
        [now] = cursor.fetchone()
    body = {**WINDOW, "metrics": ["count", "cost", "charge", "margin", "uncharged_count", "uncharged_cost"]}
    want = {"count": 3, "cost": "3", "charge": "3", "margin": "1", "uncharged_count": 1, "uncharged_cost": "1",
            "unconverted_count": 1}
    assert report(api_as(read_key), body).json()["totals"] == want  # raw events
    rollup_fold(up_to=now + timedelta(seconds=1))
    assert report(api_as(read_key), body).json()["totals"] == want  # the rollups
