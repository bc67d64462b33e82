"""Budgets on the dashboard: admins create, pause, resume and delete; everyone else
reads; another organization's budgets answer 404."""
import pytest

from budgets.models import Budget
from budgets.services import budget_create
from organizations.models import Membership

pytestmark = pytest.mark.django_db


def test_an_admin_creates_pauses_resumes_and_deletes_a_budget(organization, project, person_as, api_as, read_key):
    admin = person_as(Membership.Role.ADMIN)
    slug = organization.slug
    created = admin.post(f"/o/{slug}/budgets/", {"name": "Assistant monthly", "amount": "250.5", "period": "month",
                                                 "project": project.slug, "thresholds": "80, 50,100",
                                                 "recipients": "ops@acme.test, cfo@acme.test",
                                                 "notify_forecast": "on"})
    assert created.status_code == 302
    budget = Budget.objects.get(organization=organization, name="Assistant monthly")
    # The API sees exactly what the form said.
    api = api_as(read_key).get(f"/api/v1/budgets/{budget.pk}").json()
    assert (api["amount"], api["period"], api["project"], api["thresholds"], api["recipients"]) == (
        "250.5", "month", project.slug, [50, 80, 100], ["ops@acme.test", "cfo@acme.test"])
    page = admin.get(f"/o/{slug}/budgets/").content.decode()
    assert "Assistant monthly" in page and "250.50 USD" in page
    admin.post(f"/o/{slug}/budgets/{budget.pk}/", {"action": "pause"})
    budget.refresh_from_db()
    assert budget.active is False
    assert "Paused budgets" in admin.get(f"/o/{slug}/budgets/").content.decode()
    admin.post(f"/o/{slug}/budgets/{budget.pk}/", {"action": "resume"})
    budget.refresh_from_db()
    assert budget.active is True
    admin.post(f"/o/{slug}/budgets/{budget.pk}/", {"action": "delete"})
    assert not Budget.objects.filter(pk=budget.pk).exists()


def test_a_bad_budget_is_refused_with_the_services_sentence(organization, owner_client):
    response = owner_client.post(f"/o/{organization.slug}/budgets/", {"name": "x", "amount": "-3", "period": "month"})
    assert response.status_code == 400 and b"amount" in response.content
    response = owner_client.post(f"/o/{organization.slug}/budgets/", {"name": "x", "amount": "3", "period": "month",
                                                                      "thresholds": "fifty"})
    assert response.status_code == 400 and b"whole percents" in response.content
    assert not Budget.objects.filter(organization=organization).exists()


@pytest.mark.parametrize("role", [Membership.Role.VIEWER, Membership.Role.MEMBER])
def test_viewers_and_members_cannot_change_budgets(role, organization, person_as):
    budget = budget_create(organization=organization, api_key=None, name="Kept", amount="10")
    person = person_as(role)
    slug = organization.slug
    assert person.post(f"/o/{slug}/budgets/", {"name": "Mine", "amount": "5", "period": "day"}).status_code == 403
    for action in ("pause", "delete"):
        assert person.post(f"/o/{slug}/budgets/{budget.pk}/", {"action": action}).status_code == 403
    budget.refresh_from_db()
    assert budget.active and Budget.objects.filter(organization=organization).count() == 1
    assert b"Create a budget" not in person.get(f"/o/{slug}/budgets/").content


def test_another_organizations_budget_is_404(organization, other_organization, owner_client):
    theirs = budget_create(organization=other_organization, api_key=None, name="Theirs", amount="10")
    for action in ("pause", "delete"):
        assert owner_client.post(f"/o/{organization.slug}/budgets/{theirs.pk}/", {"action": action}).status_code == 404
    theirs.refresh_from_db()
    assert theirs.active
