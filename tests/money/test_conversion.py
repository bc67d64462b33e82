"""Events in another currency: converted at ingestion with the rate in force at their
timestamp, kept unconverted (with a warning) when none is known, converted once a rate
arrives; corrected and deleted rates re-convert. One organization's rates never apply
to another."""
import random
from decimal import Decimal

import pytest
from django.db import connection

from events.models import Event
from events.money.conversion import UNCONVERTED_FLAG, convert_amount
from events.money.services import events_convert
from events.tasks import events_convert_sweep
from tests.events.helpers import an_event
from tests.factories import make_api_key, make_organization, make_project
from tests.money.helpers import EVENTS, add_rate, at, send, stored

T0 = "2026-11-10T00:00:00Z"


def eur(event_id: str, timestamp: str, cost: str = "10", charge: str | None = "12", **fields) -> dict:
    return an_event(id=event_id, timestamp=timestamp, cost=cost, charge=charge, currency="EUR", **fields)


def test_an_event_in_another_currency_is_converted_with_the_rate_of_its_timestamp(api_as, ingest_key, read_key,
                                                                                   organization):
    add_rate(organization, "EUR", "1.05", "2026-11-01T00:00:00Z")
    add_rate(organization, "EUR", "1.10", "2026-11-10T00:00:00Z")  # the boundary: in force from this instant
    add_rate(organization, "EUR", "1.20", "2026-11-20T00:00:00Z")  # the latest, which must not leak backwards
    body = send(api_as(ingest_key),
                eur("before", "2026-11-09T23:59:59.999999Z"), eur("on", T0), eur("after", "2026-11-15T12:00:00Z"),
                eur("earliest", "2026-10-31T23:59:59Z"))
    assert (body["accepted"], body["rejected"]) == (4, 0)
    assert [(stored(organization, name).exchange_rate, stored(organization, name).cost_reporting,
             stored(organization, name).charge_reporting) for name in ("before", "on", "after")] == [
        (Decimal("1.05"), Decimal("10.5"), Decimal("12.6")),
        (Decimal("1.10"), Decimal("11"), Decimal("13.2")),
        (Decimal("1.10"), Decimal("11"), Decimal("13.2")),
    ]
    # Before the first rate nothing is in force: stored, with the warning, unconverted.
    earliest = stored(organization, "earliest")
    assert (earliest.cost_reporting, earliest.charge_reporting, earliest.exchange_rate) == (None, None, None)
    [warning] = body["warnings"]
    assert warning["id"] == "earliest"
    assert warning["fields"]["currency"] == ["no exchange rate for EUR -> USD at 2026-10-31T23:59:59Z"]

    # The event list shows what was sent beside what reports count.
    listed = {row["id"]: row for row in api_as(read_key).get(EVENTS).json()["results"]}
    on = listed["on"]
    assert (on["cost"], on["charge"], on["currency"]) == ("10", "12", "EUR")
    assert (on["cost_reporting"], on["charge_reporting"], on["reporting_currency"], on["exchange_rate"],
            on["converted"]) == ("11", "13.2", "USD", "1.1", True)
    assert (on["margin"], on["margin_reporting"]) == ("2", "2.2")
    assert (listed["earliest"]["cost_reporting"], listed["earliest"]["converted"]) == (None, False)


def test_conversion_is_exact_to_the_column_and_rounds_half_up_at_18_places(api_as, ingest_key, organization):
    add_rate(organization, "JPY", "0.006712345678901234", "2026-01-01T00:00:00Z")
    send(api_as(ingest_key), an_event(id="yen", currency="JPY", cost="123456789.123456789", charge="0.5"))
    row = stored(organization, "yen")
    # 123456789.123456789 x 0.006712345678901234 = 828,690.0...; computed independently here.
    exact = Decimal("123456789.123456789") * Decimal("0.006712345678901234")
    assert row.cost_reporting == exact.quantize(Decimal("1e-18"), rounding="ROUND_HALF_UP")
    assert row.charge_reporting == Decimal("0.003356172839450617")  # ...617 exactly (0.5 x rate, last digit kept)


def test_the_reporting_currency_needs_no_rate(api_as, ingest_key, organization):
    body = send(api_as(ingest_key), an_event(id="usd", currency="USD", cost="1.5"))
    assert body["warnings"] == []
    row = stored(organization, "usd")
    assert (row.cost_reporting, row.exchange_rate, row.cost_source) == (Decimal("1.5"), None, "client")


@pytest.mark.django_db(transaction=True)
def test_a_late_rate_converts_pending_events_exactly_once(api_as, ingest_key, organization):
    client = api_as(ingest_key)
    body = send(client, eur("a", "2026-11-10T08:00:00Z", cost="0.000001", charge=None),
                eur("b", "2026-11-12T08:00:00Z", cost="3", charge="4"),
                an_event(id="gbp", timestamp="2026-11-12T08:00:00Z", currency="GBP", cost="1"))
    assert body["accepted"] == 3
    assert [warning["fields"]["currency"] for warning in body["warnings"]] == [
        ["no exchange rate for EUR -> USD at 2026-11-10T08:00:00Z"],
        ["no exchange rate for EUR -> USD at 2026-11-12T08:00:00Z"],
        ["no exchange rate for GBP -> USD at 2026-11-12T08:00:00Z"]]
    pending = Event.objects.filter(organization=organization, cost_reporting__isnull=True)
    assert pending.count() == 3
    assert all(UNCONVERTED_FLAG in row.flags for row in pending)

    add_rate(organization, "EUR", "1.1", "2026-11-01T00:00:00Z")
    first = events_convert(organization=organization, currency="EUR")
    assert (first.converted, first.unconverted) == (2, 0)
    a, b = stored(organization, "a"), stored(organization, "b")
    assert (a.cost_reporting, a.charge_reporting, a.exchange_rate) == (Decimal("0.0000011"), None, Decimal("1.1"))
    assert (b.cost_reporting, b.charge_reporting) == (Decimal("3.3"), Decimal("4.4"))
    assert UNCONVERTED_FLAG not in b.flags
    # GBP has no rate yet: still pending, still flagged.
    assert stored(organization, "gbp").cost_reporting is None

    # Twice, or through the sweep: nothing changes the second time.
    again = events_convert(organization=organization)
    assert (again.converted, again.unconverted) == (0, 0)
    events_convert_sweep()
    assert stored(organization, "b").cost_reporting == Decimal("3.3")

    # A new event after the rate: converted on the way in, no warning.
    body = send(client, eur("c", "2026-11-13T08:00:00Z", cost="1", charge="2"))
    assert body["warnings"] == []
    assert stored(organization, "c").cost_reporting == Decimal("1.1")
    assert Event.objects.filter(organization=organization, cost_reporting__isnull=True).count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_corrected_rate_reconverts_and_a_deleted_one_unconverts(api_as, ingest_key, organization):
    early = add_rate(organization, "EUR", "1.1", "2026-11-01T00:00:00Z")
    later = add_rate(organization, "EUR", "1.2", "2026-11-15T00:00:00Z")
    send(api_as(ingest_key), eur("nov5", "2026-11-05T00:00:00Z"), eur("nov20", "2026-11-20T00:00:00Z"))

    later.rate = Decimal("1.25")
    later.save()
    result = events_convert(organization=organization, currency="EUR", since=at("2026-11-15T00:00:00Z"))
    assert (result.converted, result.unconverted) == (1, 0)
    assert stored(organization, "nov20").cost_reporting == Decimal("12.5")
    assert stored(organization, "nov5").cost_reporting == Decimal("11")  # before the corrected rate

    early.delete()
    result = events_convert(organization=organization, currency="EUR")
    assert (result.converted, result.unconverted) == (0, 1)
    nov5 = stored(organization, "nov5")
    assert (nov5.cost_reporting, nov5.exchange_rate) == (None, None) and UNCONVERTED_FLAG in nov5.flags


def test_a_conversion_too_large_for_the_column_rejects_the_event(api_as, ingest_key, organization):
    add_rate(organization, "EUR", "1000", "2026-01-01T00:00:00Z")
    body = send(api_as(ingest_key), an_event(id="huge", currency="EUR", cost="99999999999999999999"),
                an_event(id="fine", currency="EUR", cost="1"))
    assert (body["accepted"], body["rejected"]) == (1, 1)
    assert body["errors"][0]["fields"] == {"cost": ["is too large once converted to USD"]}


@pytest.mark.django_db(transaction=True)
def test_one_organizations_rates_never_apply_to_another(api_as, ingest_key, organization, other_organization):
    other_project = make_project(organization=other_organization, slug="other")
    other_key = make_api_key(organization=other_organization, project=other_project, scopes="ingest")
    add_rate(other_organization, "EUR", "2", "2026-01-01T00:00:00Z")
    send(api_as(ingest_key), eur("mine", T0))
    send(api_as(other_key), eur("theirs", T0))
    assert stored(organization, "mine").cost_reporting is None
    assert stored(other_organization, "theirs").cost_reporting == Decimal("20")
    # Converting either organization touches only its own events.
    assert events_convert(organization=organization).converted == 0
    events_convert_sweep()
    assert stored(organization, "mine").cost_reporting is None
    add_rate(organization, "EUR", "1.5", "2026-01-01T00:00:00Z")
    assert events_convert(organization=organization).converted == 1
    assert (stored(organization, "mine").cost_reporting, stored(other_organization, "theirs").cost_reporting) == (
        Decimal("15"), Decimal("20"))


def test_an_organization_in_another_reporting_currency_converts_into_it(api_as, db):
    organization = make_organization(currency="JPY")
    project = make_project(organization=organization)
    key = make_api_key(organization=organization, project=project, scopes="ingest")
    add_rate(organization, "USD", "150.5", "2026-01-01T00:00:00Z")
    body = send(api_as(key), an_event(id="dollars", currency="USD", cost="0.02", charge="0.03"),
                an_event(id="yen", cost="3"))
    assert body["warnings"] == []
    dollars, yen = stored(organization, "dollars"), stored(organization, "yen")
    assert (dollars.cost_reporting, dollars.charge_reporting) == (Decimal("3.01"), Decimal("4.515"))
    assert (yen.currency, yen.cost_reporting) == ("JPY", Decimal("3"))


@pytest.mark.django_db(transaction=True)
def test_ingestion_and_late_conversion_round_ties_the_same_way(api_as, ingest_key, organization):
    """A product with a 5 in the 19th place rounds up in Python and in SQL alike, so an
    event converted late carries exactly what it would have carried on time."""
    tiny = "0.000000000000000001"  # x 0.5 = 0.0000000000000000005: a tie at 18 places
    add_rate(organization, "EUR", "0.5", "2026-11-10T00:00:00Z")
    send(api_as(ingest_key), eur("on-time", "2026-11-10T12:00:00Z", cost=tiny, charge="0.000000000000000003"),
         eur("late", "2026-11-09T12:00:00Z", cost=tiny, charge="0.000000000000000003"))
    assert stored(organization, "late").cost_reporting is None
    add_rate(organization, "EUR", "0.5", "2026-11-01T00:00:00Z")
    assert events_convert(organization=organization).converted == 1
    on_time, late = stored(organization, "on-time"), stored(organization, "late")
    assert (on_time.cost_reporting, on_time.charge_reporting) == (Decimal("1E-18"), Decimal("2E-18"))
    assert (late.cost_reporting, late.charge_reporting) == (on_time.cost_reporting, on_time.charge_reporting)


@pytest.mark.django_db(transaction=True)
def test_the_sweep_converts_pending_events_only(api_as, ingest_key, organization):
    """The catch-up for a lost task: pending events get the rate in force; converted
    ones are the rate change's task's business, not the sweep's."""
    rate = add_rate(organization, "EUR", "1.1", "2026-11-01T00:00:00Z")
    send(api_as(ingest_key), eur("converted", "2026-11-05T00:00:00Z"), eur("pending", "2026-10-05T00:00:00Z"))
    rate.rate = Decimal("1.5")  # corrected without its task having run yet
    rate.save()
    add_rate(organization, "EUR", "1.2", "2026-10-01T00:00:00Z")
    events_convert_sweep()
    assert stored(organization, "pending").cost_reporting == Decimal("12")
    assert stored(organization, "converted").cost_reporting == Decimal("11")
    events_convert(organization=organization, currency="EUR")
    assert stored(organization, "converted").cost_reporting == Decimal("15")


def test_python_and_postgresql_convert_every_amount_alike(db):
    """Ingestion converts in Python, the late conversion in SQL: the same 18 places for
    random amounts and rates of every size, ties included."""
    rng = random.Random(42)
    costs, rates = [], []
    for _ in range(3000):
        costs.append(Decimal(rng.randint(0, 10**rng.randint(1, 30))).scaleb(-rng.randint(0, 18)))
        rates.append(Decimal(rng.randint(1, 10**rng.randint(1, 20))).scaleb(-rng.randint(0, 18)))
    costs.append(Decimal("0.000000000000000001"))
    rates.append(Decimal("0.5"))
    pairs = [(cost, rate) for cost, rate in zip(costs, rates) if cost * rate < Decimal(10) ** 19]
    with connection.cursor() as cursor:
        cursor.execute("SELECT round(c * r, 18) FROM unnest(%s::numeric[], %s::numeric[]) "
                       "WITH ORDINALITY AS t(c, r, n) ORDER BY n",
                       [[cost for cost, _ in pairs], [rate for _, rate in pairs]])
        in_sql = [row[0] for row in cursor.fetchall()]
    assert len(pairs) > 2000
    assert [convert_amount(cost, rate) for cost, rate in pairs] == in_sql
