"""What each page lets people do: keys shown once and revoked, the event explorer's
filters, trace lookup and detail, budgets with their status and alerts."""
import re
from decimal import Decimal
from html import unescape

import pytest
from django.utils import timezone

from budgets.models import BudgetAlert
from budgets.services import budget_create
from koala.money import money_display
from organizations.models import ApiKey
from tests.dashboard import html
from tests.money.helpers import add_price, add_rate, send

pytestmark = pytest.mark.django_db


def test_an_admin_creates_a_key_sees_it_once_and_revokes_it(organization, project, owner_client, api_as):
    slug = organization.slug
    created = owner_client.post(f"/o/{slug}/api-keys/", {"name": "backend", "project": project.slug,
                                                        "scope": ["ingest", "read"]})
    assert created.status_code == 200
    assert created["Cache-Control"] == "no-store"
    text = created.content.decode()
    plaintext = text.split('id="new-key">')[1].split("<")[0]
    assert plaintext.startswith("tk_")
    key = ApiKey.objects.get(organization=organization, name="backend")
    assert key.project == project and key.scopes == ["ingest", "read"]
    # The key works against the API, for its project only...
    assert api_as(plaintext).get("/api/v1/events").status_code == 200
    # ...and is never shown again.
    listing = owner_client.get(f"/o/{slug}/api-keys/")
    assert plaintext not in listing.content.decode() and key.prefix in listing.content.decode()
    revoked = owner_client.post(f"/o/{slug}/api-keys/{key.pk}/revoke/", follow=True)
    assert revoked.status_code == 200 and b"Revoked" in revoked.content
    assert api_as(plaintext).get("/api/v1/events").status_code == 401


def test_a_key_needs_a_scope_and_a_project_of_this_organization(organization, other_project, owner_client):
    no_scope = owner_client.post(f"/o/{organization.slug}/api-keys/", {"name": "x"})
    assert no_scope.status_code == 400 and b"at least one scope" in no_scope.content
    foreign = owner_client.post(f"/o/{organization.slug}/api-keys/", {"name": "x", "project": "no-such",
                                                                     "scope": ["read"]})
    assert foreign.status_code == 400
    assert not ApiKey.objects.filter(organization=organization).exists()


def test_event_explorer_filters_and_trace_lookup(organization, owner_client, events_sent):
    slug = organization.slug
    everything = html.table(owner_client.get(f"/o/{slug}/events/").content, "events")["body"]
    assert len(everything) == 5  # newest first
    assert [row[5] for row in everything] == ["usr_good", "usr_loss", "usr_good", "usr_big", "usr_good"]
    by_provider = html.table(owner_client.get(f"/o/{slug}/events/?provider=anthropic").content, "events")["body"]
    assert [row[3] for row in by_provider] == ["anthropic"]
    by_trace = html.table(owner_client.get(f"/o/{slug}/events/?trace=trace_2039").content, "events")["body"]
    assert len(by_trace) == 1 and by_trace[0][5] == "usr_good" and by_trace[0][8] == "1.00 USD"
    bad = owner_client.get(f"/o/{slug}/events/?since=not-a-time")
    assert bad.status_code == 400 and b"is not an RFC 3339 timestamp" in bad.content


def test_event_explorer_pages_through_older_events(organization, owner_client, events_sent, monkeypatch):
    monkeypatch.setattr("queries.views.events.PAGE_SIZE", 2)
    slug = organization.slug
    seen, url = [], f"/o/{slug}/events/?project="
    while url:
        page = owner_client.get(url)
        seen += [row[0] for row in html.table(page.content, "events")["body"]]
        text = page.content.decode()
        url = text.split('href="?')[1].split('"')[0].replace("&amp;", "&") if 'rel="next"' in text else None
        url = f"/o/{slug}/events/?{url}" if url else None
    assert len(seen) == 5 and len(set(seen)) == 5 and seen == sorted(seen, reverse=True)


def test_event_detail_shows_its_metadata(organization, owner_client, events_sent):
    page = owner_client.get(f"/o/{organization.slug}/events/view/?project=assistant-api&id=e1")
    assert page.status_code == 200
    text = unescape(page.content.decode())
    assert '"region": "eu"' in text and '"latencyMs": 684' in text and "trace_2039" in text
    assert "2.50 USD" in text and "1.50 USD" in text  # charge and margin (2.5 - 1.004, rounded)
    assert owner_client.get(f"/o/{organization.slug}/events/view/?project=assistant-api&id=nope").status_code == 404


def test_events_in_another_currency_show_both_amounts_and_where_the_cost_came_from(organization, project, owner_client,
                                                                                     ingest_key, api_as):
    client = api_as(ingest_key)
    add_rate(organization, "EUR", "1.25", "2020-01-01T00:00:00Z")
    add_price(organization, "house-model", "1000000", "2000000")  # 1 USD per input token, 2 per output token
    now = timezone.now()
    common = {"timestamp": now.isoformat(), "environment": "production", "action": "chat_reply"}
    result = send(client, {"id": "eur", "cost": "8", "charge": "10", "currency": "EUR", **common},
                  {"id": "gbp", "cost": "3", "currency": "GBP", **common},
                  {"id": "tokens", "provider": "openai", **common,
                   "metadata": {"model": "house-model", "inputTokens": 3, "outputTokens": 1}})
    assert result["accepted"] == 3, result
    slug = organization.slug
    rows = html.table(owner_client.get(f"/o/{slug}/events/").content, "events")["body"]
    assert len(rows) == 3, rows
    cells = {(row[8], row[9]) for row in rows}
    assert ("8.00 EUR 10.00 USD", "10.00 EUR 12.50 USD") in cells
    assert ("3.00 GBP no rate yet", "—") in cells

    def detail(client_id):
        page = owner_client.get(f"/o/{slug}/events/view/?project={project.slug}&id={client_id}")
        assert page.status_code == 200
        return " ".join(unescape(re.sub(r"<[^>]+>", " ", page.content.decode())).split())

    eur = detail("eur")
    assert "Cost in USD 10.00 USD" in eur and "Charge in USD 12.50 USD" in eur and "1 EUR = 1.25 USD" in eur
    assert "sent by the client" in eur
    assert "not converted yet: no exchange rate for GBP → USD" in detail("gbp")
    tokens = detail("tokens")
    assert "computed from tokens with" in tokens and "5.00 USD" in tokens


def test_budgets_page_shows_status_forecast_and_alert_history(organization, project, owner_client, events_sent,
                                                              api_as, read_key):
    budget = budget_create(organization=organization, api_key=None, name="Assistant monthly", amount="2",
                           project=project, period="month")
    now = timezone.now()
    status = api_as(read_key).get(f"/api/v1/budgets/{budget.pk}/status").json()
    BudgetAlert.objects.create(organization=organization, budget=budget, kind=BudgetAlert.Kind.THRESHOLD,
                               period_start=now, period_end=now, threshold=80, triggered_at=now,
                               spent=Decimal("1.9"), amount=Decimal("2"))
    page = owner_client.get(f"/o/{organization.slug}/budgets/")
    assert page.status_code == 200
    text = page.content.decode()
    assert "Assistant monthly" in text
    assert money_display(Decimal(status["spent"]), "USD") in text
    assert money_display(Decimal(status["forecast"]), "USD") in text
    alerts = html.table(page.content, "alerts")["body"]
    assert alerts[0][1:5] == ["Assistant monthly", "threshold", "80 %", "1.90 USD"]



def test_an_event_the_server_named_opens_from_the_list(organization, project, owner_client):
    from tests.queries.helpers import event, send_events

    send_events(organization, [event(project=project.slug, cost="0.5", metadata={"model": "unnamed-model"})])
    page = owner_client.get(f"/o/{organization.slug}/events/")
    link = unescape(next(part.split('"')[0] for part in page.content.decode().split('href="')
                         if "/events/view/" in part))
    detail = owner_client.get(link)
    assert detail.status_code == 200 and "unnamed-model" in unescape(detail.content.decode())
    # Another organization's member cannot open it with the same link.
    from tests.dashboard.conftest import signed_in
    from tests.factories import make_member, make_organization
    stranger = signed_in(make_member(organization=make_organization(), password="correct horse battery"))
    assert stranger.get(link).status_code == 404
