"""Budgets in the admin: live status in the list, alert history, and tenancy (the
foundation's crawl, run with budgets and alerts in both organizations)."""
from datetime import timedelta

from django.test import Client
from django.urls import reverse
from django.utils import timezone

from budgets.models import Budget, BudgetAlert, DigestDelivery, DigestSubscription
from queries.models import SavedQuery
from budgets.services import budgets_evaluate_all
from tests.budgets.helpers import make_budget, spend
from tests.organizations.test_admin_tenancy import CANARY, PASSWORD, _login_with_form, owner_client, world  # noqa: F401
from tests.organizations.test_admin_tenancy import \
    test_admin_crawl_never_shows_another_organization as crawl_the_admin
from tests.organizations.test_admin_tenancy import \
    test_every_tenant_admins_hooks_refuse_another_organizations_objects as check_every_tenant_admins_hooks


def _budgets_in_both(world):
    now = timezone.now()
    mine = make_budget(world.a, name="Acme prod", amount="10", project=world.a_project, thresholds=[50, 100])
    theirs = make_budget(world.b, name=f"{CANARY} spend", amount="10", project=world.b_project,
                         recipients=[f"{CANARY.lower()}@globex.test"], filters={"environment": [CANARY.lower()]})
    make_budget(world.b, name=f"{CANARY} org wide", amount="1")
    spend(world.a_project, now - timedelta(seconds=5), "6")
    spend(world.b_project, now - timedelta(seconds=5), "7", environment=CANARY.lower())
    spend(world.b_other_project, now - timedelta(seconds=5), "3")
    budgets_evaluate_all()
    for organization, email in ((world.a, "cfo@acme.test"), (world.b, f"{CANARY.lower()}@globex.test")):
        subscription = DigestSubscription.objects.create(organization=organization, email=email)
        subscription.saved_queries.set(SavedQuery.objects.filter(organization=organization))
        DigestDelivery.objects.create(organization=organization, subscription=subscription,
                                      week_start=now.date(), claimed_at=now, last_error=f"{email} refused")
    assert BudgetAlert.objects.filter(organization=world.b).exists()
    assert BudgetAlert.objects.filter(organization=world.a).count() == 1
    return mine, theirs


def test_the_admin_crawl_covers_budgets_and_alerts(world, owner_client, rf):  # noqa: F811
    _budgets_in_both(world)
    crawl_the_admin(world, owner_client)
    check_every_tenant_admins_hooks(world, rf)


def test_the_list_shows_live_status_and_the_change_page_the_alert_history(world, owner_client):  # noqa: F811
    mine, _ = _budgets_in_both(world)
    page = owner_client.get(reverse("admin:budgets_budget_changelist")).content.decode()
    assert "Acme prod" in page and CANARY.lower() not in page.lower()
    assert "6.00 USD" in page  # spent
    assert "10.00 USD" in page  # amount
    assert "60%" in page and 'style="width:60%' in page  # the bar
    assert timezone.now().strftime("%Y-%m-%d") in page  # last alert
    change = owner_client.get(reverse("admin:budgets_budget_change", args=[mine.pk])).content.decode()
    assert "alert history" in change.lower() and "threshold" in change and "6.00 USD" in change


def test_forms_refuse_another_organizations_project_and_bad_fields(world, owner_client):  # noqa: F811
    url = reverse("admin:budgets_budget_add")
    base = {"organization": world.a.pk, "name": "New", "amount": "5", "period": "month", "thresholds": "50,100",
            "filters": "{}", "recipients": "ops@acme.test", "notify_forecast": "on", "active": "on",
            "alerts-TOTAL_FORMS": 0, "alerts-INITIAL_FORMS": 0}
    for changes in ({"project": world.b_project.pk}, {"organization": world.b.pk},
                    {"filters": '{"colour": ["red"]}'}, {"amount": "-1"}, {"thresholds": "0"}):
        response = owner_client.post(url, {**base, **changes})
        assert response.status_code == 200 and response.context["errors"], changes
        assert CANARY.lower() not in response.content.decode().lower()
    assert not Budget.objects.filter(name="New").exists()
    response = owner_client.post(url, {**base, "project": world.a_project.pk, "recipient_roles": ["owner"],
                                       "thresholds": "100,50"})
    assert response.status_code == 302, response.context and response.context["errors"]
    created = Budget.objects.get(name="New")
    assert (created.organization, created.project, created.thresholds, created.recipient_roles) == (
        world.a, world.a_project, [50, 100], ["owner"])
