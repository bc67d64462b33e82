"""Re-pricing after an organization's price is added or corrected: computed costs are
recomputed for a time range (admin action, management command), client costs never;
a second run changes nothing."""
import json
from decimal import Decimal
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse

from organizations.models import Membership, ModelPrice
from tests.events.helpers import an_event
from tests.factories import make_api_key, make_member, make_project
from tests.money.helpers import add_price, add_rate, send, stored
from tests.money.test_pricing import catalog, tokens_event


def reprice(organization, since: str, until: str) -> dict:
    out = StringIO()
    call_command("reprice_events", "--org", organization.slug, "--from", since, "--to", until, "--json", stdout=out)
    return json.loads(out.getvalue())


@pytest.fixture
def priced_events(api_as, ingest_key, organization):
    """Three computed costs (one outside the range), one client cost of the same model."""
    send(api_as(ingest_key),
         tokens_event("nov10", "gpt-4o-mini", timestamp="2026-11-10T12:00:00Z"),
         tokens_event("nov11", "gpt-4o-mini", timestamp="2026-11-11T12:00:00Z"),
         tokens_event("dec02", "gpt-4o-mini", timestamp="2026-12-02T12:00:00Z"),
         an_event(id="client", cost="0.5", timestamp="2026-11-10T12:00:00Z",
                  metadata={"model": "gpt-4o-mini", "inputTokens": 1000, "outputTokens": 500}))
    assert stored(organization, "nov10").cost == catalog("gpt-4o-mini", "openai")


@pytest.mark.django_db(transaction=True)
def test_reprice_recomputes_computed_costs_in_range_once(priced_events, organization):
    add_price(organization, "gpt-4o-mini", "1", "2", valid_from="2026-11-11T00:00:00Z")
    first = reprice(organization, "2026-11-01", "2026-12-01")
    assert {key: first[key] for key in ("examined", "changed", "unpriced")} == {"examined": 2, "changed": 1,
                                                                                 "unpriced": 0}
    nov10, nov11, dec02 = (stored(organization, name) for name in ("nov10", "nov11", "dec02"))
    assert nov10.cost == catalog("gpt-4o-mini", "openai")  # before the override's valid_from
    assert (nov11.cost, nov11.cost_reporting) == (Decimal("0.002"), Decimal("0.002"))
    assert nov11.price_ref.startswith("override #")
    assert dec02.cost == catalog("gpt-4o-mini", "openai")  # outside the range: left for another run
    assert stored(organization, "client").cost == Decimal("0.5")  # sent by the client: never re-priced

    second = reprice(organization, "2026-11-01", "2026-12-01")
    assert (second["examined"], second["changed"]) == (2, 0)

    # A corrected price: the same range again picks it up.
    ModelPrice.objects.filter(organization=organization).update(input_per_million=Decimal("3"))
    assert reprice(organization, "2026-11-01", "2026-12-01")["changed"] == 1
    assert stored(organization, "nov11").cost == Decimal("0.004")


@pytest.mark.django_db(transaction=True)
def test_reprice_keeps_reporting_amounts_in_step_for_other_currencies(api_as, ingest_key, organization):
    add_rate(organization, "EUR", "2", "2026-01-01T00:00:00Z")
    add_price(organization, "house-model", "1", "1", provider="", currency="EUR")
    event = tokens_event("eur", "house-model")
    event["currency"] = "EUR"
    send(api_as(ingest_key), event)
    row = stored(organization, "eur")
    assert (row.cost, row.cost_reporting) == (Decimal("0.0015"), Decimal("0.003"))
    ModelPrice.objects.filter(organization=organization).update(output_per_million=Decimal("3"))
    assert reprice(organization, "2026-11-01", "2026-12-01")["changed"] == 1
    row = stored(organization, "eur")
    assert (row.cost, row.cost_reporting, row.exchange_rate) == (Decimal("0.0025"), Decimal("0.005"), Decimal("2"))


def test_reprice_command_refuses_bad_input(organization):
    with pytest.raises(CommandError, match="No organization with slug 'nope'"):
        call_command("reprice_events", "--org", "nope", "--from", "2026-11-01", "--to", "2026-12-01")
    with pytest.raises(CommandError, match="not an RFC 3339 timestamp"):
        call_command("reprice_events", "--org", organization.slug, "--from", "yesterday", "--to", "2026-12-01")
    with pytest.raises(CommandError, match="--from must be before --to"):
        call_command("reprice_events", "--org", organization.slug, "--from", "2026-12-01", "--to", "2026-11-01")


@pytest.mark.django_db(transaction=True)
def test_reprice_touches_only_its_own_organization(priced_events, organization, other_organization, api_as):
    other_key = make_api_key(organization=other_organization, project=make_project(organization=other_organization),
                             scopes="ingest")
    send(api_as(other_key), tokens_event("theirs", "gpt-4o-mini", timestamp="2026-11-11T12:00:00Z"))
    add_price(organization, "gpt-4o-mini", "1", "2")
    result = reprice(organization, "2026-11-01", "2026-12-01")
    assert result["changed"] == 2
    assert stored(other_organization, "theirs").cost == catalog("gpt-4o-mini", "openai")


def _admin_client(organization, email: str) -> Client:
    make_member(organization=organization, role=Membership.Role.ADMIN, email=email)
    client = Client()
    client.force_login(get_user_model().objects.get(email=email))
    return client


@pytest.mark.django_db(transaction=True)
def test_the_admin_action_recomputes_only_the_admins_organization(priced_events, organization, other_organization,
                                                                  api_as):
    other_key = make_api_key(organization=other_organization, project=make_project(organization=other_organization),
                             scopes="ingest")
    send(api_as(other_key), tokens_event("theirs", "gpt-4o-mini", timestamp="2026-11-11T12:00:00Z"))
    mine = add_price(organization, "gpt-4o-mini", "1", "2", valid_from="2026-11-11T00:00:00Z")
    theirs = add_price(other_organization, "gpt-4o-mini", "5", "5", valid_from="2026-11-01T00:00:00Z")
    client = _admin_client(organization, "prices@acme.test")
    changelist = reverse("admin:organizations_modelprice_changelist")
    response = client.post(changelist, {"action": "recompute_costs", "_selected_action": [mine.pk, theirs.pk]},
                           follow=True)
    assert response.status_code == 200
    page = response.content.decode()
    assert "2 event(s) with a computed cost since 2026-11-11T00:00:00+00:00, 2 changed" in page
    assert stored(organization, "nov11").cost == Decimal("0.002")
    assert stored(organization, "dec02").cost == Decimal("0.002")
    assert stored(organization, "nov10").cost == catalog("gpt-4o-mini", "openai")
    # The other organization's price and events are out of reach, even when posted by id.
    assert stored(other_organization, "theirs").cost == catalog("gpt-4o-mini", "openai")
    assert other_organization.name not in page
    listed = client.get(changelist).content.decode()
    assert "gpt-4o-mini" in listed and f"/{theirs.pk}/change/" not in listed
    assert client.get(reverse("admin:organizations_modelprice_change", args=[theirs.pk])).status_code == 302


def test_the_admin_saves_a_price_and_new_events_use_it_at_once(organization, api_as, ingest_key):
    client = _admin_client(organization, "prices@acme.test")
    response = client.post(reverse("admin:organizations_modelprice_add"), {
        "organization": organization.pk, "provider": " OpenAI ", "model": "GPT-4o-mini ", "currency": "usd",
        "input_per_million": "1", "output_per_million": "2", "valid_from_0": "2026-01-01", "valid_from_1": "00:00:00",
    })
    assert response.status_code == 302, response.content.decode()[:3000]
    price = ModelPrice.objects.get(organization=organization)
    assert (price.provider, price.model, price.currency) == ("openai", "gpt-4o-mini", "USD")
    send(api_as(ingest_key), tokens_event("after", "gpt-4o-mini"))
    assert stored(organization, "after").cost == Decimal("0.002")
