"""Malformed input to POST /api/v1/events: the right refusal, never a 500, nothing half-stored.

A bad event is rejected alone (the rest of its batch is stored); a bad body is refused
whole with the contract's error shape and stores nothing.
"""
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from events.ingest import BodyError, event_ingest_batch
from events.models import Event, EventKey
from organizations.models import ApiKey
from tests.events import helpers

EVENTS = "/api/v1/events"


def an_event(**fields) -> dict:
    # Bad-input tests send nulls as nulls.
    return helpers.an_event(keep_nulls=True, **fields)


def event_text(field: str, raw_value: str) -> str:
    """A valid event as JSON text whose `field` holds `raw_value` verbatim (NaN literals and all)."""
    return json.dumps(an_event(**{field: "@@RAW@@"})).replace('"@@RAW@@"', raw_value)


def post(client, raw):
    return client.post(EVENTS, data=raw, content_type="application/json")


def stored(organization):
    return Event.objects.filter(organization=organization)


def assert_error_body(response, status: int, code: str):
    assert response.status_code == status, response.content[:300]
    error = response.json()["error"]
    assert error["code"] == code
    assert isinstance(error["message"], str) and error["message"]


def future(hours: float) -> str:
    return json.dumps((datetime.now(UTC) + timedelta(hours=hours)).isoformat())


def nested(levels: int) -> str:
    """Metadata `levels` objects deep, counting metadata itself as the first."""
    return "{" + '"k": {' * (levels - 1) + '"leaf": 1' + "}" * levels


def string(length: int, letter: str = "a") -> str:
    return json.dumps(letter * length)


REJECTED = [
    # JSON cannot carry NaN or Infinity, but some clients send them anyway.
    pytest.param("cost", "NaN", "NaN is not an amount", id="cost-NaN-literal"),
    pytest.param("cost", "Infinity", "Infinity is not an amount", id="cost-Infinity-literal"),
    pytest.param("cost", "-Infinity", "-Infinity is not an amount", id="cost-minus-Infinity-literal"),
    pytest.param("charge", "NaN", "NaN is not an amount", id="charge-NaN-literal"),
    pytest.param("charge", "Infinity", "Infinity is not an amount", id="charge-Infinity-literal"),
    pytest.param("charge", "-Infinity", "-Infinity is not an amount", id="charge-minus-Infinity-literal"),
    pytest.param("cost", '"NaN"', "is not an amount", id="cost-NaN-string"),
    pytest.param("cost", '"Infinity"', "is not an amount", id="cost-Infinity-string"),
    pytest.param("cost", '"-Infinity"', "is not an amount", id="cost-minus-Infinity-string"),
    pytest.param("cost", '"sNaN"', "is not an amount", id="cost-sNaN-string"),
    pytest.param("charge", '"NaN"', "is not an amount", id="charge-NaN-string"),
    pytest.param("charge", '"inf"', "is not an amount", id="charge-inf-string"),
    # Too large for numeric(38, 18).
    pytest.param("cost", "1e400", "too large", id="cost-1e400"),
    pytest.param("cost", '"1e400"', "too large", id="cost-1e400-string"),
    pytest.param("charge", "1e400", "too large", id="charge-1e400"),
    pytest.param("cost", "100000000000000000000", "too large", id="cost-21-digit-integer"),
    pytest.param("cost", "1" + "0" * 5000, "too large", id="cost-5000-digit-integer"),
    pytest.param("cost", "-0.01", "must be >= 0", id="cost-negative"),
    pytest.param("cost", "-1", "must be >= 0", id="cost-negative-integer"),
    pytest.param("charge", '"-1"', "must be >= 0", id="charge-negative-string"),
    pytest.param("cost", "0.0000000000000000001", "more than 18 decimal places", id="cost-19-places"),
    pytest.param("cost", '"0.0000000000000000001"', "more than 18 decimal places", id="cost-19-places-string"),
    pytest.param("charge", "1.1234567890123456789", "more than 18 decimal places", id="charge-19-places"),
    pytest.param("cost", '"1e-999999999999999999"', "more than 18 decimal places", id="cost-tiny-exponent"),
    pytest.param("cost", '"12345678901234567890.1234567890123456781"', "more than 18 decimal places",
                 id="cost-39-significant-digits"),
    pytest.param("cost", '"12,5"', "is not a decimal amount", id="cost-comma-string"),
    # Strings holding NUL, which PostgreSQL cannot store.
    pytest.param("environment", '"production\\u0000"', "NUL", id="nul-in-environment"),
    pytest.param("id", '"evt\\u0000x"', "NUL", id="nul-in-id"),
    pytest.param("userId", '"user\\u0000"', "NUL", id="nul-in-user"),
    pytest.param("action", '"completion\\u0000"', "NUL", id="nul-in-action"),
    pytest.param("tags", '["premium", "a\\u0000b"]', "NUL", id="nul-in-tag-item"),
    pytest.param("traces", '["trace\\u0000"]', "NUL", id="nul-in-trace-item"),
    pytest.param("metadata", '{"a\\u0000b": 1}', "NUL", id="nul-in-metadata-key"),
    pytest.param("metadata", '{"note": "x\\u0000"}', "NUL", id="nul-in-metadata-value"),
    pytest.param("metadata", '{"deep": {"list": ["\\u0000"]}}', "NUL", id="nul-in-nested-metadata"),
    # Unpaired UTF-16 surrogates are not text; PostgreSQL cannot store them either.
    pytest.param("userId", '"user\\ud800"', "surrogate", id="lone-surrogate-in-user"),
    pytest.param("metadata", '{"\\udc00": 1}', "surrogate", id="lone-surrogate-in-metadata-key"),
    # Metadata numbers PostgreSQL cannot hold, or NaN where JSON has none.
    pytest.param("metadata", '{"score": NaN}', "NaN", id="metadata-NaN"),
    pytest.param("metadata", '{"score": -Infinity}', "Infinity", id="metadata-Infinity"),
    pytest.param("metadata", '{"score": 1e400000}', "out of range", id="metadata-1e400000"),
    pytest.param("metadata", '{"score": 1e-400000}', "out of range", id="metadata-1e-400000"),
    # Wrong types.
    pytest.param("cost", "[1]", "must be a decimal number or a decimal string", id="cost-list"),
    pytest.param("cost", "true", "must be a decimal number or a decimal string", id="cost-bool"),
    pytest.param("cost", '{"amount": 1}', "must be a decimal number or a decimal string", id="cost-object"),
    pytest.param("cost", "null", "is required", id="cost-null"),
    pytest.param("charge", "false", "must be a decimal number or a decimal string", id="charge-bool"),
    pytest.param("tags", '"premium"', "must be a list of strings", id="tags-string"),
    pytest.param("tags", "[1]", "must hold only strings", id="tags-of-numbers"),
    pytest.param("traces", '"trace_1"', "must be a list of strings", id="traces-string"),
    pytest.param("metadata", "[1, 2]", "must be an object", id="metadata-list"),
    pytest.param("metadata", '"text"', "must be an object", id="metadata-string"),
    pytest.param("timestamp", "1700000000", "must be an RFC 3339 string", id="timestamp-number"),
    pytest.param("environment", "5", "must be a string", id="environment-number"),
    pytest.param("userId", "12", "must be a string", id="user-number"),
    pytest.param("id", "42", "must be a string", id="id-number"),
    pytest.param("currency", "12", "not an ISO 4217 currency code", id="currency-number"),
    # Currency.
    pytest.param("currency", '"XYZ"', "'XYZ' is not an ISO 4217 currency code", id="currency-unknown"),
    pytest.param("currency", '"usd"', "is not an ISO 4217 currency code", id="currency-lowercase"),
    # Lengths and counts.
    pytest.param("environment", string(65), "is 65 characters long; at most 64", id="environment-65-chars"),
    pytest.param("id", string(129), "is 129 characters long; at most 128", id="id-129-chars"),
    pytest.param("id", '""', "not empty", id="id-empty"),
    pytest.param("userId", string(129), "at most 128", id="user-129-chars"),
    pytest.param("tags", json.dumps(["t" * 65]), "items must be 1-64 characters", id="tag-65-chars"),
    pytest.param("traces", json.dumps(["t" * 129]), "items must be 1-128 characters", id="trace-129-chars"),
    pytest.param("tags", json.dumps([f"tag{n}" for n in range(21)]), "holds 21 items; at most 20", id="21-tags"),
    pytest.param("traces", json.dumps([f"t{n}" for n in range(21)]), "holds 21 items; at most 20", id="21-traces"),
    pytest.param("metadata", json.dumps({"blob": "x" * 17_000}), "at most 16 KiB", id="metadata-over-16-KiB"),
    pytest.param("metadata", nested(6), "nested more than 5 levels deep", id="metadata-6-levels"),
    pytest.param("metadata", '{"k": [[[[["deep"]]]]]}', "nested more than 5 levels deep",
                 id="metadata-6-levels-of-lists"),
    # Timestamps.
    pytest.param("timestamp", future(25), "more than 24 hours in the future", id="timestamp-25h-ahead"),
    pytest.param("timestamp", '"yesterday"', "is not an RFC 3339 timestamp", id="timestamp-words"),
    pytest.param("timestamp", '"2026-13-01T00:00:00Z"', "is not an RFC 3339 timestamp", id="timestamp-month-13"),
    pytest.param("timestamp", '"9999-12-31T23:00:00-05:00"', "timestamp", id="timestamp-past-year-9999"),
    pytest.param("timestamp", '"0001-01-01T00:30:00+01:00"', "timestamp", id="timestamp-before-year-1"),
    pytest.param("timestamp", '"1999-12-31T23:59:59Z"', "before 2000", id="timestamp-before-2000"),
]


@pytest.mark.parametrize(("field", "raw_value", "message"), REJECTED)
def test_a_bad_event_is_rejected_alone_and_its_batch_stored(api_as, ingest_key, organization, field, raw_value,
                                                            message):
    client = api_as(ingest_key)
    good = an_event(id="evt_good")
    response = post(client, '{"events": [' + event_text(field, raw_value) + ", " + json.dumps(good) + "]}")
    assert response.status_code == 207, response.content[:500]
    body = response.json()
    assert (body["accepted"], body["duplicates"], body["rejected"]) == (1, 0, 1)
    [error] = body["errors"]
    assert (error["index"], error["code"]) == (0, "invalid")
    assert list(error["fields"]) == [field]
    assert message in error["fields"][field][0]
    assert list(stored(organization).values_list("client_id", flat=True)) == ["evt_good"]

    # Sent alone, the same event is answered 422 with the contract's error shape too.
    response = post(client, event_text(field, raw_value))
    assert_error_body(response, 422, "invalid")
    assert response.json()["rejected"] == 1
    assert stored(organization).count() == 1


ACCEPTED = [
    pytest.param("cost", "0.1000000000000000000000", Decimal("0.1"), id="trailing-zeros-beyond-the-scale"),
    pytest.param("cost", '"  0.5 "', Decimal("0.5"), id="amount-string-with-spaces"),
    pytest.param("cost", "0e100", Decimal("0"), id="zero-with-a-large-exponent"),
    pytest.param("cost", "-0", Decimal("0"), id="negative-zero"),
    pytest.param("cost", "99999999999999999999.999999999999999999", Decimal("99999999999999999999.999999999999999999"),
                 id="largest-amount"),
    pytest.param("cost", "1E+19", Decimal("10000000000000000000"), id="exponent-notation"),
    pytest.param("currency", '"USD"', "USD", id="reporting-currency-named"),
    pytest.param("currency", "null", "USD", id="currency-null-means-default"),
    pytest.param("metadata", nested(5), {"k": {"k": {"k": {"k": {"leaf": 1}}}}}, id="metadata-5-levels"),
    pytest.param("metadata", '{"big": 123456789012345678901234567890}', {"big": 123456789012345678901234567890},
                 id="metadata-big-integer"),
    pytest.param("metadata", '{"ratio": 0.1}', {"ratio": Decimal("0.1")}, id="metadata-decimal"),
    pytest.param("tags", json.dumps([f"tag{n}" for n in range(20)]), [f"tag{n}" for n in range(20)], id="20-tags"),
    pytest.param("environment", string(10, "\u00e9"), None, id="non-ascii-text"),
]


@pytest.mark.parametrize(("field", "raw_value", "expected"), ACCEPTED)
def test_edge_values_that_are_fine_are_stored(api_as, ingest_key, organization, field, raw_value, expected):
    response = post(api_as(ingest_key), event_text(field, raw_value))
    if field == "environment":  # valid text, but not an allowed environment: a taxonomy matter, not a crash
        assert response.status_code == 422 and response.json()["errors"][0]["code"] == "taxonomy_violation"
        assert not stored(organization).exists()
        return
    assert response.status_code == 200, response.content[:500]
    assert response.json()["accepted"] == 1
    row = stored(organization).get()
    value = {"cost": row.cost, "currency": row.currency, "metadata": row.metadata, "tags": row.tags}[field]
    if field == "metadata":
        assert json.loads(json.dumps(value), parse_float=Decimal) == expected
    else:
        assert value == expected


def test_a_timestamp_up_to_24_hours_ahead_is_accepted(api_as, ingest_key, organization):
    response = post(api_as(ingest_key), event_text("timestamp", future(23)))
    assert response.status_code == 200 and response.json()["accepted"] == 1
    assert stored(organization).get().timestamp > datetime.now(UTC) + timedelta(hours=22)


def test_a_timestamp_without_an_offset_is_utc(api_as, ingest_key, organization):
    naive = (datetime.now(UTC) - timedelta(hours=2)).replace(tzinfo=None, microsecond=0)
    response = post(api_as(ingest_key), json.dumps(an_event(timestamp=naive.isoformat())))
    assert response.status_code == 200
    assert stored(organization).get().timestamp == naive.replace(tzinfo=UTC)


def test_a_timestamp_with_an_offset_is_stored_as_that_instant(api_as, ingest_key, organization):
    local = (datetime.now(UTC) - timedelta(hours=3)).replace(microsecond=0)
    sent = local.astimezone(__import__("datetime").timezone(timedelta(hours=5, minutes=30)))
    response = post(api_as(ingest_key), json.dumps(an_event(timestamp=sent.isoformat())))
    assert response.status_code == 200
    assert stored(organization).get().timestamp == local


@pytest.mark.parametrize("name,guess", [("user_id", "userId"), ("userid", "userId"), ("costs", "cost"),
                                        ("enviroment", "environment"), ("tag", "tags")])
def test_an_unknown_field_rejects_the_event_with_a_hint(api_as, ingest_key, organization, name, guess):
    response = post(api_as(ingest_key), json.dumps({**an_event(), name: "x"}))
    assert_error_body(response, 422, "invalid")
    assert response.json()["errors"][0]["fields"] == {name: [f"is not an event field (did you mean '{guess}'?)"]}
    assert not stored(organization).exists()


def test_an_unknown_field_without_a_near_name_gets_no_hint(api_as, ingest_key, organization):
    response = post(api_as(ingest_key), json.dumps({**an_event(), "flavour": "x"}))
    assert response.json()["errors"][0]["fields"] == {"flavour": ["is not an event field"]}
    assert not stored(organization).exists()


def test_an_event_over_32_kib_is_too_large(api_as, ingest_key, organization):
    huge = an_event(id="evt_huge", metadata={"blob": "x" * 33_000})
    response = post(api_as(ingest_key), json.dumps({"events": [huge, an_event(id="evt_ok")]}))
    assert response.status_code == 207
    [error] = response.json()["errors"]
    assert (error["index"], error["id"], error["code"]) == (0, "evt_huge", "too_large")
    assert "at most 32 KiB" in error["fields"]["event"][0]
    assert list(stored(organization).values_list("client_id", flat=True)) == ["evt_ok"]


def test_non_object_items_are_rejected_and_the_rest_accepted(api_as, ingest_key, organization):
    response = post(api_as(ingest_key), json.dumps({"events": [1, "evt", None, [], an_event(id="evt_ok"), True]}))
    assert response.status_code == 207
    body = response.json()
    assert (body["accepted"], body["rejected"]) == (1, 5)
    assert [(e["index"], e["id"], e["code"]) for e in body["errors"]] == [
        (0, None, "invalid"), (1, None, "invalid"), (2, None, "invalid"), (3, None, "invalid"), (5, None, "invalid")]
    assert body["errors"][0]["fields"] == {"event": ["must be a JSON object, not a number"]}
    assert list(stored(organization).values_list("client_id", flat=True)) == ["evt_ok"]


@pytest.mark.parametrize("raw", [
    pytest.param('{"events": [', id="truncated"),
    pytest.param("not json at all", id="text"),
    pytest.param(b"\xff\xfe{}", id="not-utf8"),
    pytest.param("", id="empty-body"),
    pytest.param('{"cost": 1,}', id="trailing-comma"),
])
def test_a_body_that_is_not_json_is_400_invalid_json(api_as, ingest_key, organization, raw):
    assert_error_body(post(api_as(ingest_key), raw), 400, "invalid_json")
    assert not stored(organization).exists()


def test_a_body_nested_too_deeply_to_parse_is_refused_without_a_500(api_as, ingest_key, organization):
    raw = '{"events": [{"metadata": {"k": ' + "[" * 5000 + "]" * 5000 + "}}]}"
    response = post(api_as(ingest_key), raw)
    assert response.status_code == 400
    assert response.json()["error"]["code"] in ("invalid_json", "invalid_request")
    assert not stored(organization).exists()


@pytest.mark.parametrize("raw", [
    pytest.param("[]", id="empty-array"),
    pytest.param(json.dumps([an_event()]), id="array-of-events"),
    pytest.param('"an event"', id="string"),
    pytest.param("42", id="number"),
    pytest.param("null", id="null"),
    pytest.param('{"events": []}', id="empty-batch"),
    pytest.param('{"events": {"id": "evt_1"}}', id="events-an-object"),
    pytest.param('{"events": "evt_1"}', id="events-a-string"),
    pytest.param('{"events": null}', id="events-null"),
    pytest.param('{"events": [' + json.dumps(an_event()) + '], "batch": 1}', id="extra-top-level-key"),
    pytest.param('{"events": [' + ", ".join([json.dumps(an_event(id=None))] * 1001) + "]}", id="1001-events"),
])
def test_a_body_of_the_wrong_shape_is_400_invalid_request(api_as, ingest_key, organization, raw):
    response = post(api_as(ingest_key), raw)
    assert_error_body(response, 400, "invalid_request")
    assert not stored(organization).exists()


def test_1000_events_is_the_largest_batch(api_as, ingest_key, organization):
    events = [an_event(id=f"evt_{n}") for n in range(1000)]
    response = post(api_as(ingest_key), json.dumps({"events": events}))
    assert response.status_code == 200 and response.json()["accepted"] == 1000
    assert stored(organization).count() == 1000
    assert EventKey.objects.filter(organization=organization).count() == 1000


def test_a_body_over_5_mib_is_413(api_as, ingest_key, organization):
    padding = "x" * (5 * 1024 * 1024)
    response = post(api_as(ingest_key), json.dumps({"events": [an_event(metadata={"blob": padding})]}))
    assert_error_body(response, 413, "payload_too_large")
    assert not stored(organization).exists()


@pytest.mark.parametrize("declared", ["abc", "-5", " 12", "1e3", "\u0661\u0662"])
def test_a_malformed_content_length_is_400(api_as, ingest_key, organization, declared):
    body = json.dumps(an_event())
    response = api_as(ingest_key).post(EVENTS, data=body, content_type="application/json", CONTENT_LENGTH=declared)
    assert_error_body(response, 400, "invalid_request")
    assert not stored(organization).exists()


def test_a_body_over_5_mib_without_a_content_length_is_413(ingest_key, organization):
    # A chunked body has no Content-Length to refuse it early (Django's test client
    # always sends one), so the service measures what it was given.
    api_key = ApiKey.objects.get(prefix=ingest_key[3:13])
    raw = json.dumps({"events": [an_event(metadata={"blob": "x" * (5 * 1024 * 1024)})]}).encode()
    with pytest.raises(BodyError) as refused:
        event_ingest_batch(raw_body=raw, api_key=api_key)
    assert (refused.value.status, refused.value.code) == (413, "payload_too_large")
    assert not stored(organization).exists()


def test_the_error_message_names_a_rejected_field_without_echoing_unprintable_input(api_as, ingest_key,
                                                                                     organization):
    # An unknown key holding an unpaired surrogate must not break the response itself.
    response = post(api_as(ingest_key), '{"events": [{"\\ud800": 1}, ' + json.dumps(an_event()) + "]}")
    assert response.status_code == 207
    assert response.json()["accepted"] == 1 and response.json()["rejected"] == 1
    response = post(api_as(ingest_key), '{"events": [' + json.dumps(an_event()) + '], "\\ud800": 1}')
    assert_error_body(response, 400, "invalid_request")
    assert stored(organization).count() == 1
