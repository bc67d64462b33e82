"""POST /api/v1/events and /events/validate: the response contract and what is stored."""
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import msgspec
import pytest

from events.models import Event, EventKey
from tests.factories import make_api_key, make_project
from tests.events.helpers import an_event

EVENTS = "/api/v1/events"
VALIDATE = "/api/v1/events/validate"
_encode = msgspec.json.Encoder(decimal_format="number").encode


def send(client, body, path: str = EVENTS):
    """POSTs `body` (a dict/list, or raw JSON text/bytes) and returns the response."""
    raw = body if isinstance(body, (bytes, str)) else _encode(body)
    return client.post(path, data=raw, content_type="application/json")


def stored(organization):
    return Event.objects.filter(organization=organization)


def listed(client, query: str = "") -> list:
    response = client.get(f"{EVENTS}{query}")
    assert response.status_code == 200, response.content
    return response.json()["results"]


def test_a_single_event_is_accepted_and_stored(api_as, ingest_key, organization, project):
    event = an_event()
    response = send(api_as(ingest_key), event)
    assert response.status_code == 200
    assert response.json() == {"accepted": 1, "duplicates": 0, "rejected": 0, "errors": [], "warnings": []}
    row = stored(organization).get()
    assert (row.client_id, row.project_id, row.environment, row.cost, row.charge, row.currency) == (
        event["id"], project.pk, "production", Decimal("0.0012"), Decimal("0.002"), "USD")
    assert row.timestamp == datetime.fromisoformat(event["timestamp"])
    assert EventKey.objects.filter(organization=organization, client_id=event["id"]).count() == 1


def test_a_mixed_batch_answers_207_with_per_event_errors_and_warnings(api_as, ingest_key, organization):
    clean = an_event(id="evt_1")
    aliased = an_event(id="evt_2", environment="prod", traces=None, charge=None)
    bad_environment = an_event(id="evt_3", environment="prod-eu")
    bad_cost = an_event(id="evt_4", cost="-1")
    response = send(api_as(ingest_key), {"events": [clean, aliased, bad_environment, bad_cost]})

    assert response.status_code == 207
    body = response.json()
    assert (body["accepted"], body["duplicates"], body["rejected"]) == (2, 0, 2)
    assert [(e["index"], e["id"], e["code"]) for e in body["errors"]] == [
        (2, "evt_3", "taxonomy_violation"), (3, "evt_4", "invalid")]
    assert body["errors"][0]["fields"] == {"environment": [
        "'prod-eu' is not an allowed environment (allowed: development, production, staging)"]}
    assert list(body["errors"][1]["fields"]) == ["cost"]
    assert body["warnings"] == [{"index": 1, "id": "evt_2", "fields": {
        "environment": ["'prod' normalized to 'production'"],
        "traces": ["missing: the taxonomy recommends trace ids"],
        "charge": ["missing: margin cannot be computed without charge"],
    }}]
    assert sorted(stored(organization).values_list("client_id", flat=True)) == ["evt_1", "evt_2"]
    flags = stored(organization).get(client_id="evt_2").flags
    assert set(flags) == {"traces.missing", "charge.missing"}


def test_a_single_rejected_event_answers_422_with_the_ingest_body_and_the_error_shape(api_as, ingest_key,
                                                                                    organization):
    response = send(api_as(ingest_key), an_event(id="evt_bad", environment="prod-eu"))
    assert response.status_code == 422
    body = response.json()
    assert (body["accepted"], body["duplicates"], body["rejected"]) == (0, 0, 1)
    assert body["errors"][0]["code"] == "taxonomy_violation" and body["errors"][0]["id"] == "evt_bad"
    # Every non-2xx response carries {"error": {"code", "message"}} (API.md, Conventions).
    assert body["error"]["code"] == "taxonomy_violation"
    assert "prod-eu" in body["error"]["message"]
    assert not stored(organization).exists()


def test_stored_values_are_canonical_after_normalization(api_as, ingest_key, read_key, organization):
    response = send(api_as(ingest_key), an_event(id="evt_c", environment="PROD", provider="OpenAI"))
    assert response.status_code == 200 and response.json()["accepted"] == 1
    assert response.json()["warnings"][0]["fields"] == {
        "environment": ["'PROD' normalized to 'production'"], "provider": ["'OpenAI' normalized to 'openai'"]}
    row = stored(organization).get()
    assert (row.environment, row.provider) == ("production", "openai")
    [result] = listed(api_as(read_key))
    assert (result["environment"], result["provider"]) == ("production", "openai")


def test_metadata_aliases_are_rewritten_and_well_known_keys_promoted(api_as, ingest_key, read_key, organization):
    metadata = {"model": "gpt-4o-mini", "latency_ms": 840, "prompt_tokens": 1200, "completion_tokens": 300,
                "status": "error", "error_type": "rate_limit", "region": "eu"}
    response = send(api_as(ingest_key), an_event(id="evt_m", metadata=metadata))
    assert response.status_code == 200 and response.json()["accepted"] == 1
    assert response.json()["warnings"][0]["fields"] == {
        "metadata.latencyMs": ["'latency_ms' normalized to 'latencyMs'"],
        "metadata.inputTokens": ["'prompt_tokens' normalized to 'inputTokens'"],
        "metadata.outputTokens": ["'completion_tokens' normalized to 'outputTokens'"],
        "metadata.errorType": ["'error_type' normalized to 'errorType'"],
    }
    row = stored(organization).get()
    assert row.metadata == {"model": "gpt-4o-mini", "latencyMs": 840, "inputTokens": 1200, "outputTokens": 300,
                            "status": "error", "errorType": "rate_limit", "region": "eu"}
    assert (row.model, row.latency_ms, row.input_tokens, row.output_tokens, row.status, row.error_type) == (
        "gpt-4o-mini", 840, 1200, 300, "error", "rate_limit")
    assert listed(api_as(read_key))[0]["metadata"] == row.metadata


def test_a_registered_metadata_key_with_the_wrong_type_rejects(api_as, ingest_key, organization):
    response = send(api_as(ingest_key), an_event(metadata={"latencyMs": "fast"}))
    assert response.status_code == 422
    assert list(response.json()["errors"][0]["fields"]) == ["metadata.latencyMs"]
    assert not stored(organization).exists()


@pytest.mark.parametrize("as_number", [True, False], ids=["json-numbers", "decimal-strings"])
def test_amounts_are_exact_decimals_never_floats(api_as, ingest_key, read_key, organization, as_number):
    amounts = [("0.1", "0.2"), ("0.30000000000000004", "0.3"), ("142", "142.000"), ("0.000000000000000001", "1"),
               ("12345678901234567890.123456789012345678", "99999999999999999999.999999999999999999")]
    events = []
    for number, (cost, charge) in enumerate(amounts):
        cost_value, charge_value = (Decimal(cost), Decimal(charge)) if as_number else (cost, charge)
        events.append(an_event(id=f"evt_{number}", cost=cost_value, charge=charge_value,
                               timestamp=(datetime.now(UTC) - timedelta(minutes=number + 1)).isoformat()))
    response = send(api_as(ingest_key), {"events": events})
    assert response.status_code == 200 and response.json()["accepted"] == len(amounts)
    assert stored(organization).count() == len(amounts)
    assert stored(organization).get(client_id="evt_0").cost == Decimal("0.1")
    results = listed(api_as(read_key))
    assert [(r["cost"], r["charge"]) for r in results] == [
        ("0.1", "0.2"), ("0.30000000000000004", "0.3"), ("142", "142"), ("0.000000000000000001", "1"),
        ("12345678901234567890.123456789012345678", "99999999999999999999.999999999999999999")]
    assert [r["margin"] for r in results] == [
        "0.1", "-0.00000000000000004", "0", "0.999999999999999999", "87654321098765432109.876543210987654321"]
    assert results[0]["margin_pct"] == 50.0


def test_a_zero_charge_is_a_real_charge_and_a_missing_one_leaves_margin_unknown(api_as, ingest_key, read_key):
    now = datetime.now(UTC)
    events = [
        an_event(id="evt_zero", cost="0.5", charge=0, timestamp=(now - timedelta(minutes=1)).isoformat()),
        an_event(id="evt_none", cost="0.5", charge=None, timestamp=(now - timedelta(minutes=2)).isoformat()),
        an_event(id="evt_null", cost="0.5", timestamp=(now - timedelta(minutes=3)).isoformat()),
    ]
    events[2]["charge"] = None  # an explicit null is "unknown", like a missing charge
    response = send(api_as(ingest_key), {"events": events})
    body = response.json()
    assert response.status_code == 200 and body["accepted"] == 3
    # Only the events without a charge are flagged; a charge of 0 is a charge.
    assert [w["id"] for w in body["warnings"]] == ["evt_none", "evt_null"]
    zero, missing, null = listed(api_as(read_key))
    assert (zero["charge"], zero["margin"], zero["margin_pct"]) == ("0", "-0.5", None)
    assert (missing["charge"], missing["margin"], missing["margin_pct"]) == (None, None, None)
    assert (null["charge"], null["margin"], null["margin_pct"]) == (None, None, None)


def test_an_organization_key_must_name_the_project(api_as, full_key, organization, project):
    client = api_as(full_key)
    response = send(client, an_event(id="evt_noproject"))
    assert response.status_code == 422
    assert "required with an organization key" in response.json()["errors"][0]["fields"]["project"][0]
    response = send(client, an_event(id="evt_unknown", project="no-such-project"))
    assert response.status_code == 422
    assert "not a project of this organization" in response.json()["errors"][0]["fields"]["project"][0]
    assert not stored(organization).exists()

    response = send(client, an_event(id="evt_named", project="assistant-api"))
    assert response.status_code == 200 and response.json()["accepted"] == 1
    assert stored(organization).get().project_id == project.pk


def test_a_project_key_rejects_another_project_and_accepts_its_own(api_as, ingest_key, organization, project):
    make_project(organization=organization, slug="billing")
    client = api_as(ingest_key)
    response = send(client, an_event(id="evt_other", project="billing"))
    assert response.status_code == 422
    assert response.json()["errors"][0]["fields"]["project"] == [
        "this key sends events for 'assistant-api' only, not 'billing'"]
    assert not stored(organization).exists()
    for sent in ("NaN", "12", '{"a": 1}'):
        body = json.dumps({"events": [an_event(id="evt_odd")]}).replace('"id": "evt_odd"', f'"id": "evt_odd", "project": {sent}')
        response = client.post("/api/v1/events", body, content_type="application/json")
        message = response.json()["errors"][0]["fields"]["project"][0]
        assert response.json()["rejected"] == 1 and message.startswith("must be a project slug string, not "), message
        assert "object at 0x" not in message and "Decimal" not in message

    response = send(client, {"events": [an_event(id="evt_same", project="assistant-api"), an_event(id="evt_absent")]})
    assert response.status_code == 200 and response.json()["accepted"] == 2
    assert list(stored(organization).values_list("project_id", flat=True)) == [project.pk, project.pk]


def test_the_same_client_id_in_two_projects_is_two_events(api_as, full_key, organization, project):
    billing = make_project(organization=organization, slug="billing")
    response = send(api_as(full_key), {"events": [an_event(id="evt_shared", project="assistant-api"),
                                                  an_event(id="evt_shared", project="billing")]})
    assert response.status_code == 200
    assert response.json()["accepted"] == 2 and response.json()["duplicates"] == 0
    assert sorted(stored(organization).values_list("project_id", flat=True)) == sorted([project.pk, billing.pk])


def test_an_event_lands_in_the_sending_organization_even_when_slugs_collide(api_as, other_key, organization,
                                                                           project, other_project):
    response = send(api_as(other_key), an_event(id="evt_globex", project="assistant-api"))
    assert response.status_code == 200 and response.json()["accepted"] == 1
    assert not stored(organization).exists()
    row = Event.objects.get(client_id="evt_globex")
    assert (row.organization_id, row.project_id) == (other_project.organization_id, other_project.pk)


def test_validate_answers_like_a_real_send_and_stores_nothing(api_as, ingest_key, organization):
    first = an_event(id="evt_1")
    batch = {"events": [first, an_event(id="evt_2", environment="prod", traces=None),
                        an_event(id="evt_3", environment="prod-eu"), first]}
    client = api_as(ingest_key)
    checked = send(client, batch, VALIDATE)
    assert checked.status_code == 207
    assert not stored(organization).exists()
    assert not EventKey.objects.filter(organization=organization).exists()

    sent = send(client, batch)
    assert (sent.status_code, sent.json()) == (checked.status_code, checked.json())
    assert checked.json()["accepted"] == 2 and checked.json()["duplicates"] == 1
    assert stored(organization).count() == 2

    # Validating what is already stored reports what a resend would: duplicates.
    again = send(client, batch, VALIDATE).json()
    assert (again["accepted"], again["duplicates"], again["rejected"]) == (0, 3, 1)
    assert stored(organization).count() == 2


def test_a_read_only_key_cannot_send_events(api_as, read_key, organization, project):
    for path in (EVENTS, VALIDATE):
        response = send(api_as(read_key), an_event(project="assistant-api"), path)
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "permission_denied"
    assert not stored(organization).exists()


def test_an_ingest_only_key_cannot_list_events(api_as, ingest_key):
    response = api_as(ingest_key).get(EVENTS)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"


def test_sending_without_a_key_is_401(api_as, organization):
    response = send(api_as(None), an_event())
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "authentication_failed"
    assert not stored(organization).exists()


def test_an_event_without_an_id_gets_one_and_cannot_be_deduplicated(api_as, ingest_key, organization):
    event = an_event(id=None)
    client = api_as(ingest_key)
    assert send(client, event).json()["accepted"] == 1
    assert send(client, event).json()["accepted"] == 1
    ids = list(stored(organization).values_list("client_id", flat=True))
    assert len(set(ids)) == 2 and all(client_id.startswith("evt_") for client_id in ids)
    assert not EventKey.objects.filter(organization=organization).exists()


@pytest.mark.django_db(transaction=True)  # received_at is the write's own transaction start
def test_an_event_without_a_timestamp_is_stamped_when_received(api_as, ingest_key, organization):
    before = datetime.now(UTC)
    assert send(api_as(ingest_key), an_event(timestamp=None)).status_code == 200
    row = stored(organization).get()
    # .get(): exactly the one accepted row. The timestamp is taken as the request
    # arrives, received_at when its write begins.
    assert before <= row.timestamp <= row.received_at <= datetime.now(UTC)


def test_a_project_key_of_another_project_is_not_told_about_this_one(api_as, organization, project):
    billing = make_project(organization=organization, slug="billing")
    key = make_api_key(organization=organization, project=billing, scopes="ingest")
    response = send(api_as(key), an_event(project="assistant-api"))
    assert response.status_code == 422
    assert not stored(organization).exists()


def test_text_with_quotes_backslashes_tabs_and_newlines_is_stored_exactly(api_as, ingest_key, read_key,
                                                                           organization):
    awkward = ['a"b', "back\\slash", "tab\tx", "nl\nx", "cr\rx", "{brace}", "comma,x", "ünïcode", "NULL", "\\N"]
    event = an_event(
        tags=awkward, traces=awkward, application='app\\with\t"tab"', userId='u"\\\n\\N',
        metadata={"model": "m\\\t1", "prompt": {"text": 'line1\nline2\t\\ "q" \\N', "k\\": ["x\"y", "\\"]}},
    )
    response = send(api_as(ingest_key), event)
    assert response.status_code == 200, response.content
    assert stored(organization).count() == 1
    [row] = listed(api_as(read_key))
    assert row["tags"] == awkward and row["traces"] == awkward
    assert row["application"] == 'app\\with\t"tab"'
    assert row["userId"] == 'u"\\\n\\N'
    assert row["metadata"]["prompt"] == event["metadata"]["prompt"]
    assert Event.objects.get(organization=organization).model == "m\\\t1"
