"""The weekly digest: Monday 08:00 in the organization's zone, once per subscription and
week, the saved queries' results with the change against the week before."""
from datetime import timedelta

import pytest
from django.core import mail
from django.test import Client
from django.urls import reverse

from budgets.digests import digest_send, digests_claim_due
from budgets.models import DigestDelivery, DigestSubscription
from organizations.models import Membership
from queries.models import SavedQuery
from tests.budgets.helpers import spend, utc
from tests.factories import make_member, make_organization, make_project

MONDAY_8_PARIS = utc(2026, 12, 7, 7)  # Monday 7 December 2026, 08:00 in Paris


def run(now) -> list[str]:
    before = len(mail.outbox)
    for delivery_id in digests_claim_due(now=now):
        digest_send(delivery_id=delivery_id)
    return [message.subject for message in mail.outbox[before:]]


def _subscribe(organization, email="cfo@acme.test", names=("Provider spend by project",)):
    subscription = DigestSubscription.objects.create(organization=organization, email=email)
    subscription.saved_queries.set(SavedQuery.objects.filter(organization=organization, name__in=names))
    return subscription


def test_sent_once_on_monday_from_eight_local_with_the_weeks_change(db):
    organization = make_organization(name="Acme", timezone_name="Europe/Paris")
    project = make_project(organization=organization, slug="assistant-api")
    _subscribe(organization)
    spend(project, utc(2026, 12, 2, 12), "30", provider="openai")  # last week
    spend(project, utc(2026, 12, 3, 12), "10", provider="anthropic")
    spend(project, utc(2026, 11, 25, 12), "20", provider="openai")  # the week before
    spend(project, utc(2026, 12, 7, 6, 30), "99", provider="openai")  # this week: not in the digest

    assert run(MONDAY_8_PARIS - timedelta(minutes=1)) == []  # 07:59 in Paris
    assert run(MONDAY_8_PARIS - timedelta(days=1)) == []  # Sunday
    assert run(MONDAY_8_PARIS) == ["Acme: your week of 30 November to 6 December 2026"]
    assert run(MONDAY_8_PARIS + timedelta(minutes=15)) == []  # once a week
    text = mail.outbox[-1].body
    assert "== Provider spend by project ==" in text
    assert "project | provider | cost | charge | margin | margin_pct | cost vs previous week" in text
    assert "assistant-api | openai | 30.00 USD |" in text and text.split("assistant-api | openai | 30.00 USD |")[1] \
        .splitlines()[0].endswith("+50%")
    assert "assistant-api | anthropic | 10.00 USD |" in text and "| new" in text
    assert "total |  | 40.00 USD |" in text and "+100%" in text
    assert "99" not in text
    assert mail.outbox[-1].to == ["cfo@acme.test"]
    assert DigestDelivery.objects.get().sent_at is not None
    # The next Monday is another week.
    assert run(MONDAY_8_PARIS + timedelta(days=7)) == ["Acme: your week of 7 December to 13 December 2026"]


def test_each_organization_in_its_own_zone_and_only_its_own_data(db):
    paris = make_organization(name="Acme", timezone_name="Europe/Paris")
    tokyo = make_organization(name="Globex", timezone_name="Asia/Tokyo")
    spend(make_project(organization=paris, slug="assistant-api"), utc(2026, 12, 2), "5", provider="openai")
    spend(make_project(organization=tokyo, slug="assistant-api"), utc(2026, 12, 2), "777", provider="openai")
    _subscribe(paris)
    _subscribe(tokyo, email="ops@globex.test")
    # Monday 08:00 in Tokyo is Sunday 23:00 UTC; Paris's comes 8 hours later.
    assert run(utc(2026, 12, 6, 23)) == ["Globex: your week of 30 November to 6 December 2026"]
    assert "777" in mail.outbox[-1].body
    assert run(MONDAY_8_PARIS) == ["Acme: your week of 30 November to 6 December 2026"]
    assert "777" not in mail.outbox[-1].body and "| 5.00 USD |" in mail.outbox[-1].body


@pytest.mark.parametrize("currency, cost, shown", [("USD", "0.123456", "0.12 USD"), ("JPY", "1234.5", "1,234 JPY"),
                                                   ("KWD", "0.0125", "0.012 KWD")])
def test_amounts_are_rounded_to_the_currencys_minor_units(db, currency, cost, shown):
    organization = make_organization(name="Acme", currency=currency, timezone_name="Europe/Paris")
    spend(make_project(organization=organization, slug="assistant-api"), utc(2026, 12, 2, 12), cost)
    _subscribe(organization)
    run(MONDAY_8_PARIS)
    body, html = mail.outbox[-1].body, mail.outbox[-1].alternatives[0][0]
    assert f"assistant-api | openai | {shown} |" in body and shown in html
    assert cost not in body and cost not in html


def test_a_failed_send_is_retried_and_not_marked_sent(db, settings):
    organization = make_organization(name="Acme", timezone_name="Europe/Paris")
    _subscribe(organization)
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", 1  # nothing listens there
    assert run(MONDAY_8_PARIS) == []
    delivery = DigestDelivery.objects.get()
    assert delivery.sent_at is None and delivery.attempts == 1 and delivery.last_error
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    assert run(MONDAY_8_PARIS + timedelta(minutes=15)) == ["Acme: your week of 30 November to 6 December 2026"]
    assert DigestDelivery.objects.get().attempts == 2


def test_the_admin_refuses_another_organizations_saved_queries(db):
    acme = make_organization(name="Acme")
    globex = make_organization(name="Globex")
    owner = make_member(organization=acme, role=Membership.Role.OWNER).user
    client = Client()
    client.force_login(owner)
    theirs = SavedQuery.objects.filter(organization=globex).first()
    mine = SavedQuery.objects.filter(organization=acme).first()
    url = reverse("admin:budgets_digestsubscription_add")
    base = {"organization": acme.pk, "email": "cfo@acme.test", "active": "on",
            "deliveries-TOTAL_FORMS": 0, "deliveries-INITIAL_FORMS": 0}
    response = client.post(url, {**base, "saved_queries": [theirs.pk]})
    assert response.status_code == 200 and response.context["errors"]
    assert "Globex" not in response.content.decode()
    assert not DigestSubscription.objects.exists()
    response = client.post(url, {**base, "saved_queries": [mine.pk]})
    assert response.status_code == 302, response.context and response.context["errors"]
    assert list(DigestSubscription.objects.get().saved_queries.all()) == [mine]
