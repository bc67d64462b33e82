"""Idempotency: a client id is stored once per project, however often and however concurrently it is sent."""
import random
import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import msgspec
import pytest
from django.db import connection
from django.test import Client

import events.ingest.store
import events.partitions
from events.models import Event, EventKey
from events.partitions import forget_known_partitions, partition_name
from tests.factories import make_api_key, make_organization, make_project
from tests.events import helpers

EVENTS = "/api/v1/events"
_encode = msgspec.json.Encoder(decimal_format="number").encode
EVENT_COLUMNS = [field.attname for field in Event._meta.concrete_fields]


def an_event(**fields) -> dict:
    return helpers.an_event(keep_nulls=True, **{"metadata": {"model": "gpt-4o-mini", "latencyMs": 120}, **fields})


def send(client, body):
    return client.post(EVENTS, data=body if isinstance(body, (str, bytes)) else _encode(body),
                       content_type="application/json")


def counts(response) -> tuple:
    body = response.json()
    return body["accepted"], body["duplicates"], body["rejected"]


def snapshot(organization) -> list[dict]:
    """Every column of every stored event, to prove nothing changed."""
    return list(Event.objects.filter(organization=organization).order_by("seq").values(*EVENT_COLUMNS))


def test_a_retried_batch_is_all_duplicates_and_changes_nothing(api_as, ingest_key, organization):
    batch = {"events": [an_event(id=f"evt_{n}") for n in range(5)]}
    client = api_as(ingest_key)
    first = send(client, batch)
    assert (first.status_code, counts(first)) == (200, (5, 0, 0))
    before = snapshot(organization)

    retry = send(client, batch)
    assert retry.status_code == 200
    assert retry.json() == {"accepted": 0, "duplicates": 5, "rejected": 0, "errors": [], "warnings": []}
    assert snapshot(organization) == before
    assert EventKey.objects.filter(organization=organization).count() == 5


def test_the_same_id_with_different_content_is_an_id_conflict_and_the_stored_event_is_unchanged(
        api_as, ingest_key, organization):
    original = an_event(id="evt_1", cost="0.5")
    client = api_as(ingest_key)
    assert counts(send(client, original)) == (1, 0, 0)
    before = snapshot(organization)

    changed = {**original, "cost": "0.7", "metadata": {"model": "gpt-4o"}}
    response = send(client, {"events": [changed, an_event(id="evt_2")]})
    assert response.status_code == 207
    assert counts(response) == (1, 0, 1)
    [error] = response.json()["errors"]
    assert (error["index"], error["id"], error["code"]) == (0, "evt_1", "id_conflict")
    assert error["fields"] == {"id": ["already used for an event with different content"]}
    assert snapshot(organization)[0] == before[0]

    alone = send(client, changed)
    assert alone.status_code == 422
    assert alone.json()["error"]["code"] == "id_conflict"
    assert Event.objects.filter(organization=organization).count() == 2


def test_repeats_within_a_batch_count_the_first_occurrence(api_as, ingest_key, organization):
    first = an_event(id="evt_a", cost="1")
    batch = [first, an_event(id="evt_b"), dict(first), {**first, "cost": "2"}, dict(first)]
    response = send(api_as(ingest_key), {"events": batch})
    assert response.status_code == 207
    assert counts(response) == (2, 2, 1)
    assert [(e["index"], e["id"], e["code"]) for e in response.json()["errors"]] == [(3, "evt_a", "id_conflict")]
    assert Event.objects.get(organization=organization, client_id="evt_a").cost == Decimal("1")
    assert Event.objects.filter(organization=organization).count() == 2


def test_a_later_copy_of_a_conflicting_event_in_the_same_batch_is_a_conflict_too(api_as, ingest_key, organization):
    stored = an_event(id="evt_a", cost="1")
    client = api_as(ingest_key)
    assert counts(send(client, stored)) == (1, 0, 0)
    changed = {**stored, "cost": "2"}
    # The second copy equals the first, but neither equals what is stored under evt_a.
    response = send(client, {"events": [changed, dict(changed), dict(stored)]})
    assert counts(response) == (0, 1, 2)
    assert [(e["index"], e["code"]) for e in response.json()["errors"]] == [(0, "id_conflict"), (1, "id_conflict")]
    assert Event.objects.get(organization=organization, client_id="evt_a").cost == Decimal("1")
    assert Event.objects.filter(organization=organization).count() == 1


@pytest.mark.parametrize("path", ["/api/v1/events", "/api/v1/events/validate"])
def test_validate_judges_in_batch_repeats_like_a_real_send(api_as, ingest_key, organization, path):
    stored = an_event(id="evt_a", cost="1")
    client = api_as(ingest_key)
    send(client, stored)
    changed = {**stored, "cost": "2"}
    fresh = an_event(id="evt_new")
    response = client.post(path, data=_encode({"events": [changed, dict(changed), fresh, dict(fresh)]}),
                           content_type="application/json")
    assert counts(response) == (1, 1, 2)
    assert [e["index"] for e in response.json()["errors"]] == [0, 1]
    assert Event.objects.filter(organization=organization).count() == (2 if path == EVENTS else 1)


@pytest.mark.parametrize("cost", [142, "142", Decimal("142.0"), "142.000", Decimal("1.42E+2")],
                         ids=["number", "string", "number-with-a-point", "string-with-zeros", "exponent"])
def test_the_same_amount_written_differently_is_a_duplicate(api_as, ingest_key, organization, cost):
    original = an_event(id="evt_142", cost=142, charge=Decimal("200.50"))
    client = api_as(ingest_key)
    assert counts(send(client, original)) == (1, 0, 0)
    again = send(client, {**original, "cost": cost, "charge": "200.5"})
    assert (again.status_code, counts(again)) == (200, (0, 1, 0))
    assert Event.objects.filter(organization=organization).count() == 1


def test_amounts_differing_only_past_28_digits_are_different_content(api_as, ingest_key, organization):
    original = an_event(id="evt_long", cost="12345678901234567890.123456789012345678")
    client = api_as(ingest_key)
    assert counts(send(client, original)) == (1, 0, 0)
    response = send(client, {**original, "cost": "12345678901234567890.123456789012345679"})
    assert counts(response) == (0, 0, 1)
    assert response.json()["errors"][0]["code"] == "id_conflict"
    assert Event.objects.filter(organization=organization).count() == 1


def test_a_field_sent_as_null_is_the_same_content_as_one_left_out(api_as, ingest_key, organization):
    original = an_event(id="evt_n")
    client = api_as(ingest_key)
    assert counts(send(client, original)) == (1, 0, 0)
    assert counts(send(client, {**original, "currency": None, "tags": None})) == (0, 1, 0)
    assert Event.objects.filter(organization=organization).count() == 1


def test_the_same_id_in_another_organization_is_its_own_event(api_as, ingest_key, other_key, organization,
                                                             other_project):
    event = an_event(id="evt_shared")
    assert counts(send(api_as(ingest_key), event)) == (1, 0, 0)
    assert counts(send(api_as(other_key), {**event, "project": "assistant-api"})) == (1, 0, 0)
    assert Event.objects.filter(client_id="evt_shared").count() == 2


def test_a_failure_between_deduplication_and_the_write_leaves_the_event_retryable(api_as, ingest_key,
                                                                                   organization, monkeypatch):
    claimed_before_failure = []
    real_stored_digests = events.ingest.store.stored_digests

    def fail_after_the_claim(cursor, organization_id, keyed):
        real_stored_digests(cursor, organization_id, keyed)
        cursor.execute("SELECT count(*) FROM events_eventkey WHERE organization_id = %s", [organization_id])
        claimed_before_failure.append(cursor.fetchone()[0])
        raise RuntimeError("the disk filled up")

    monkeypatch.setattr(events.ingest.store, "stored_digests", fail_after_the_claim)
    event = an_event(id="evt_retry")
    client = api_as(ingest_key)
    response = send(client, event)
    assert response.status_code == 500
    assert response.json()["error"]["code"] == "internal"
    assert "request id" in response.json()["error"]["message"]
    assert claimed_before_failure == [1]  # the key had been claimed when the failure struck
    assert not EventKey.objects.filter(organization=organization).exists()
    assert not Event.objects.filter(organization=organization).exists()

    monkeypatch.setattr(events.ingest.store, "stored_digests", real_stored_digests)
    retry = send(client, event)
    assert (retry.status_code, counts(retry)) == (200, (1, 0, 0))
    assert Event.objects.filter(organization=organization, client_id="evt_retry").count() == 1


def test_a_failing_copy_rolls_back_the_key_claim(api_as, ingest_key, organization, monkeypatch):
    monkeypatch.setattr(events.ingest.store, "_COPY_EVENTS", "COPY events_event (no_such_column) FROM STDIN")
    event = an_event(id="evt_copy")
    client = api_as(ingest_key)
    response = send(client, event)
    assert response.status_code == 500 and response.json()["error"]["code"] == "internal"
    assert not EventKey.objects.filter(organization=organization).exists()
    monkeypatch.undo()
    assert counts(send(client, event)) == (1, 0, 0)
    assert Event.objects.filter(organization=organization, client_id="evt_copy").count() == 1


def _months_ago(months: int) -> datetime:
    today = datetime.now(UTC)
    year, month = today.year, today.month - months
    while month < 1:
        year, month = year - 1, month + 12
    return datetime(year, month, 15, 12, tzinfo=UTC)


@pytest.fixture
def forget_partitions():
    """Partitions created inside a test's transaction vanish with its rollback; so must the cache."""
    forget_known_partitions()
    yield
    forget_known_partitions()


def _partitions() -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                       "WHERE i.inhparent = 'events_event'::regclass")
        return {name for (name,) in cursor.fetchall()}


def test_events_of_two_months_land_in_their_partitions_created_on_demand(api_as, ingest_key, organization,
                                                                         forget_partitions):
    old, recent = _months_ago(14), datetime.now(UTC) - timedelta(hours=1)
    old_partition = partition_name(old.year, old.month)
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {old_partition}")
    forget_known_partitions()

    response = send(api_as(ingest_key), {"events": [an_event(id="evt_old", timestamp=old.isoformat()),
                                                     an_event(id="evt_new", timestamp=recent.isoformat())]})
    assert (response.status_code, counts(response)) == (200, (2, 0, 0))
    assert old_partition in _partitions()
    with connection.cursor() as cursor:
        cursor.execute("SELECT tableoid::regclass::text, client_id FROM events_event WHERE organization_id = %s "
                       "ORDER BY client_id", [organization.pk])
        assert cursor.fetchall() == [
            (partition_name(recent.year, recent.month), "evt_new"), (old_partition, "evt_old")]


def test_a_partition_the_process_wrongly_remembers_is_created_again(api_as, ingest_key, organization,
                                                                    forget_partitions):
    old = _months_ago(15)
    old_partition = partition_name(old.year, old.month)
    events.partitions._known_partitions.add((old.year, old.month))  # e.g. dropped by retention since
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {old_partition}")
    response = send(api_as(ingest_key), an_event(id="evt_old", timestamp=old.isoformat()))
    assert (response.status_code, counts(response)) == (200, (1, 0, 0))
    assert old_partition in _partitions()
    assert Event.objects.filter(organization=organization, client_id="evt_old").count() == 1


# Concurrency: real threads, each with its own database connection, so the
# transactions truly overlap; hence transaction=True.

def _send_concurrently(key: str, bodies: list) -> list:
    barrier = threading.Barrier(len(bodies))
    responses: list = [None] * len(bodies)
    failures: list = []

    def run(number: int) -> None:
        try:
            client = Client(HTTP_AUTHORIZATION=f"Bearer {key}")
            barrier.wait(timeout=10)
            responses[number] = send(client, bodies[number])
        except Exception as error:  # surfaced below; a thread cannot fail the test itself
            failures.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(number,)) for number in range(len(bodies))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not failures, failures
    return responses


@pytest.fixture
def shared_tenant(transactional_db):
    organization = make_organization(name="Concurrent")
    project = make_project(organization=organization, slug="assistant-api")
    key = make_api_key(organization=organization, project=project, scopes="ingest")
    yield organization, key
    # events_event is unmanaged, so the transactional flush leaves its rows behind.
    Event.objects.filter(organization=organization).delete()


@pytest.mark.django_db(transaction=True)
def test_eight_concurrent_identical_batches_store_one_copy(shared_tenant):
    organization, key = shared_tenant
    batch = {"events": [an_event(id=f"evt_{n}") for n in range(40)]}
    responses = _send_concurrently(key, [batch] * 8)
    assert [response.status_code for response in responses] == [200] * 8
    assert sum(response.json()["accepted"] for response in responses) == 40
    assert sum(response.json()["duplicates"] for response in responses) == 7 * 40
    assert Event.objects.filter(organization=organization).count() == 40
    assert EventKey.objects.filter(organization=organization).count() == 40


@pytest.mark.django_db(transaction=True)
def test_concurrent_overlapping_batches_in_any_order_store_each_event_once(shared_tenant):
    organization, key = shared_tenant
    pool = [an_event(id=f"evt_{n}") for n in range(60)]
    rng = random.Random(7)
    bodies = [{"events": rng.sample(pool, 30)} for _ in range(8)]
    distinct = {event["id"] for body in bodies for event in body["events"]}
    responses = _send_concurrently(key, bodies)
    assert [response.status_code for response in responses] == [200] * 8
    assert sum(response.json()["accepted"] for response in responses) == len(distinct)
    assert sum(response.json()["duplicates"] for response in responses) == 8 * 30 - len(distinct)
    assert Event.objects.filter(organization=organization).count() == len(distinct)


def test_naming_the_keys_own_project_or_not_is_the_same_content(api_as, ingest_key, organization):
    original = an_event(id="evt_p")
    client = api_as(ingest_key)
    assert counts(send(client, original)) == (1, 0, 0)
    # The project is part of the idempotency key already; spelling it out changes nothing.
    assert counts(send(client, {**original, "project": "assistant-api"})) == (0, 1, 0)
    assert Event.objects.filter(organization=organization).count() == 1
