"""Exchange rates in the admin: organization admins keep the history of their own
rates only; saving or deleting one converts the stored events it applies to, through
a real Celery worker on the real broker."""
import time
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse

from events.money.conversion import UNCONVERTED_FLAG
from events.money.services import events_convert
from koala.celery import app as celery_app
from organizations.models import ExchangeRate, Membership
from tests.events.helpers import an_event
from tests.factories import make_member
from tests.money.helpers import add_rate, send, stored
from tests.celery_worker import Worker

ADD = reverse("admin:organizations_exchangerate_add")
CHANGELIST = reverse("admin:organizations_exchangerate_changelist")


def rate_form(organization, base="EUR", rate="1.1", day="2026-11-01", time_="00:00:00") -> dict:
    return {"organization": organization.pk, "base": base, "rate": rate, "valid_from_0": day, "valid_from_1": time_}


@pytest.fixture
def admin_client(organization) -> Client:
    make_member(organization=organization, role=Membership.Role.ADMIN, email="rates@acme.test")
    client = Client()
    client.force_login(get_user_model().objects.get(email="rates@acme.test"))
    return client


def test_the_form_refuses_what_cannot_be_a_rate(admin_client, organization):
    add_rate(organization, "EUR", "1.1", "2026-11-01T00:00:00Z")
    for form, message in [
        (rate_form(organization, base="USD"), "USD is the reporting currency itself"),
        (rate_form(organization, base="EUX"), "&#x27;EUX&#x27; is not an ISO 4217 currency code"),
        (rate_form(organization, rate="-1"), "exchangerate_rate_positive"),
        (rate_form(organization), "A EUR rate from this moment already exists; correct that one instead."),
    ]:
        response = admin_client.post(ADD, form)
        assert response.status_code == 200 and message in response.content.decode(), message
    assert ExchangeRate.objects.filter(organization=organization).count() == 1


def test_rates_of_another_organization_are_out_of_reach(admin_client, organization, other_organization):
    theirs = add_rate(other_organization, "GBP", "1.3", "2026-11-01T00:00:00Z")
    mine = add_rate(organization, "EUR", "1.1", "2026-11-01T00:00:00Z")
    listed = admin_client.get(CHANGELIST).content.decode()
    assert f"/{mine.pk}/change/" in listed and f"/{theirs.pk}/change/" not in listed and "GBP" not in listed
    assert admin_client.get(reverse("admin:organizations_exchangerate_change", args=[theirs.pk])).status_code == 302
    # Posting a rate for the other organization is a form error; deleting theirs does nothing.
    response = admin_client.post(ADD, rate_form(other_organization, base="CHF"))
    assert response.status_code == 200 and "Select a valid choice" in response.content.decode()
    admin_client.post(CHANGELIST, {"action": "delete_selected", "_selected_action": [theirs.pk], "post": "yes"})
    assert ExchangeRate.objects.filter(pk=theirs.pk).exists()
    assert not ExchangeRate.objects.filter(organization=other_organization, base="CHF").exists()


@pytest.fixture(scope="module")
def worker(tmp_path_factory, django_db_blocker):
    with django_db_blocker.unblock():
        started = Worker(name="money", pool="solo", log=tmp_path_factory.mktemp("worker") / "worker.log")
    yield started
    started.stop()


@pytest.fixture
def routed_to(worker):
    """The conversion task goes to the test worker's own queue, as in production to the default one."""
    previous = celery_app.conf.task_routes
    # update(), not assignment: only update() rebuilds the router a task sent earlier cached.
    celery_app.conf.update(task_routes={"events.tasks.events_convert": {"queue": worker.queue}})
    yield worker
    celery_app.conf.update(task_routes=previous)


def wait_until(check, worker: Worker, timeout: float = 60):
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError("the worker did not convert the events in time:\n" + "\n".join(worker.lines[-30:]))


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_saving_and_deleting_a_rate_in_the_admin_converts_stored_events(routed_to, admin_client, organization,
                                                                        api_as, ingest_key):
    send(api_as(ingest_key), an_event(id="pending", currency="EUR", cost="10", charge="20",
                                      timestamp="2026-11-05T10:00:00Z"))
    assert stored(organization, "pending").cost_reporting is None

    response = admin_client.post(ADD, rate_form(organization, rate="1.1"))
    assert response.status_code == 302, response.content.decode()[:2000]
    wait_until(lambda: stored(organization, "pending").cost_reporting is not None, routed_to)
    row = stored(organization, "pending")
    assert (row.cost_reporting, row.charge_reporting, row.exchange_rate) == (Decimal("11"), Decimal("22"),
                                                                              Decimal("1.1"))
    assert UNCONVERTED_FLAG not in row.flags

    # Corrected in the admin: re-converted with the corrected rate.
    rate = ExchangeRate.objects.get(organization=organization)
    assert rate.quote == "USD"
    response = admin_client.post(reverse("admin:organizations_exchangerate_change", args=[rate.pk]),
                                 rate_form(organization, rate="1.25"))
    assert response.status_code == 302
    wait_until(lambda: stored(organization, "pending").cost_reporting == Decimal("12.5"), routed_to)

    # Deleted: no rate is in force any more, the event is unconverted again.
    response = admin_client.post(reverse("admin:organizations_exchangerate_delete", args=[rate.pk]), {"post": "yes"})
    assert response.status_code == 302
    wait_until(lambda: stored(organization, "pending").cost_reporting is None, routed_to)
    wait_until(lambda: sum("events.tasks.events_convert" in line and "succeeded" in line
                           for line in list(routed_to.lines)) == 3, routed_to)


@pytest.fixture
def eager():
    """The conversions run in this process, on commit, instead of on a worker."""
    previous = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = previous


def test_changing_a_rates_currency_reconverts_both_currencies(admin_client, organization, api_as, ingest_key,
                                                               django_capture_on_commit_callbacks, eager):
    send(api_as(ingest_key), an_event(id="eur", currency="EUR", cost="10", timestamp="2026-11-05T10:00:00Z"),
         an_event(id="gbp", currency="GBP", cost="10", timestamp="2026-11-05T10:00:00Z"))
    rate = add_rate(organization, "EUR", "1.1", "2026-11-01T00:00:00Z")
    events_convert(organization=organization)
    assert stored(organization, "eur").cost_reporting == Decimal("11")
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(reverse("admin:organizations_exchangerate_change", args=[rate.pk]),
                                     rate_form(organization, base="GBP", rate="1.3"))
    assert response.status_code == 302
    assert (stored(organization, "eur").cost_reporting, stored(organization, "gbp").cost_reporting) == (
        None, Decimal("13"))


def _organization_form(admin_client, organization, currency: str) -> dict:
    page = admin_client.get(reverse("admin:organizations_organization_change", args=[organization.pk]))
    [inline] = page.context["inline_admin_formsets"]
    prefix, projects = inline.formset.prefix, list(inline.formset.queryset)
    form = {"name": organization.name, "reporting_currency": currency, "timezone": organization.timezone,
            f"{prefix}-TOTAL_FORMS": len(projects), f"{prefix}-INITIAL_FORMS": len(projects),
            f"{prefix}-MIN_NUM_FORMS": 0, f"{prefix}-MAX_NUM_FORMS": 1000}
    for index, project in enumerate(projects):
        form.update({f"{prefix}-{index}-id": project.pk, f"{prefix}-{index}-name": project.name,
                     f"{prefix}-{index}-slug": project.slug, f"{prefix}-{index}-organization": organization.pk})
    return form


def test_the_reporting_currency_changes_only_while_there_are_no_events(admin_client, organization, ingest_key, api_as):
    change = reverse("admin:organizations_organization_change", args=[organization.pk])
    response = admin_client.post(change, _organization_form(admin_client, organization, "EUR"))
    assert response.status_code == 302
    organization.refresh_from_db()
    assert organization.reporting_currency == "EUR"
    send(api_as(ingest_key), an_event(cost="1.5", currency="EUR"))
    refused = admin_client.post(change, _organization_form(admin_client, organization, "USD"))
    assert refused.status_code == 200
    assert "cannot change from EUR to USD: this organization already has events" in refused.content.decode()
    organization.refresh_from_db()
    assert organization.reporting_currency == "EUR"
