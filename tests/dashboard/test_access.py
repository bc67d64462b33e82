"""Tenancy and roles on every page: a member of organization A gets 404 on every page,
form and object of organization B (exactly like a slug that does not exist); signed-out
people go to the sign-in page; members and viewers cannot reach admin-only actions."""
import pytest

from organizations.models import ApiKey, Membership
from queries.selectors import saved_query_list
from tests.dashboard.conftest import signed_in
from tests.factories import make_api_key, make_member

PAGES = ["", "explore/", "saved-queries/", "customers/", "budgets/", "taxonomy-health/", "events/", "api-keys/",
         "explore/?format=csv"]
READ_PAGES = [page for page in PAGES if not page.startswith("api-keys")]


def b_objects(other_organization, other_project):
    """Paths (GET) and forms (POST) that name organization B's objects."""
    make_api_key(organization=other_organization, scopes="read")
    key = ApiKey.objects.filter(organization=other_organization).first()
    saved = saved_query_list(organization=other_organization).first()
    return key, saved


@pytest.mark.django_db
@pytest.mark.parametrize("page", PAGES)
def test_a_member_of_another_organization_gets_404_on_every_page(page, organization, other_organization, person_as):
    outsider = person_as(Membership.Role.OWNER, org=other_organization)
    assert outsider.get(f"/o/{organization.slug}/{page}").status_code == 404
    assert outsider.get(f"/o/no-such-org/{page}").status_code == 404
    # Their own organization's page works: the 404 is about the tenant, not the page.
    assert outsider.get(f"/o/{other_organization.slug}/{page}").status_code == 200


@pytest.mark.django_db
def test_objects_of_another_organization_are_404_through_my_organization(organization, other_organization,
                                                                         other_project, owner_client):
    key, saved = b_objects(other_organization, other_project)
    slug = organization.slug
    assert owner_client.get(f"/o/{slug}/saved-queries/{saved.pk}/").status_code == 404
    assert owner_client.post(f"/o/{slug}/saved-queries/{saved.pk}/delete/").status_code == 404
    assert owner_client.post(f"/o/{slug}/api-keys/{key.pk}/revoke/").status_code == 404
    assert owner_client.get(f"/o/{slug}/events/view/?project={other_project.slug}&id=anything").status_code == 404
    key.refresh_from_db()
    assert key.revoked_at is None
    assert saved_query_list(organization=other_organization).filter(pk=saved.pk).exists()
    # Naming B's project in a report of A is "no such project", not B's data.
    response = owner_client.get(f"/o/{slug}/explore/?range=last_7_days&project={other_project.slug}")
    assert response.status_code == 404 and b"No project" in response.content


@pytest.mark.django_db
def test_forms_of_another_organization_are_404_and_write_nothing(organization, other_organization, person_as):
    outsider = person_as(Membership.Role.OWNER, org=other_organization)
    slug = organization.slug
    before = ApiKey.objects.filter(organization=organization).count()
    assert outsider.post(f"/o/{slug}/api-keys/", {"name": "sneaky", "scope": ["read"]}).status_code == 404
    assert outsider.post(f"/o/{slug}/explore/save/", {"name": "sneaky", "query": '{"range": "today"}'}).status_code == 404
    assert outsider.post(f"/o/{slug}/budgets/", {"name": "sneaky", "amount": "5", "period": "day"}).status_code == 404
    from budgets.models import Budget
    assert not Budget.objects.filter(organization=organization).exists()
    assert ApiKey.objects.filter(organization=organization).count() == before
    assert not saved_query_list(organization=organization).filter(name="sneaky").exists()


@pytest.mark.django_db
@pytest.mark.parametrize("page", PAGES)
def test_signed_out_people_are_sent_to_sign_in(page, client, organization):
    response = client.get(f"/o/{organization.slug}/{page}")
    assert response.status_code == 302
    assert response["Location"].startswith("/login/?next=")


@pytest.mark.django_db
@pytest.mark.parametrize("role", [Membership.Role.VIEWER, Membership.Role.MEMBER])
def test_viewers_and_members_read_but_cannot_reach_admin_actions(role, organization, person_as):
    person = person_as(role)
    slug = organization.slug
    for page in READ_PAGES:
        assert person.get(f"/o/{slug}/{page}").status_code == 200, page
    saved = saved_query_list(organization=organization).first()
    make_api_key(organization=organization, scopes="read")
    key = ApiKey.objects.filter(organization=organization).first()
    assert person.get(f"/o/{slug}/api-keys/").status_code == 403
    assert person.post(f"/o/{slug}/api-keys/", {"name": "mine", "scope": ["read"]}).status_code == 403
    assert person.post(f"/o/{slug}/api-keys/{key.pk}/revoke/").status_code == 403
    assert person.post(f"/o/{slug}/saved-queries/{saved.pk}/delete/").status_code == 403
    assert person.post(f"/o/{slug}/explore/save/", {"name": "x", "query": '{"range": "today"}'}).status_code == 403
    key.refresh_from_db()
    assert key.revoked_at is None and ApiKey.objects.filter(organization=organization).count() == 1
    assert saved_query_list(organization=organization).filter(pk=saved.pk).exists()
    # The admin-only controls are not offered either.
    assert b"/api-keys/" not in person.get(f"/o/{slug}/").content
    assert b"Save as a saved query" not in person.get(f"/o/{slug}/explore/").content


@pytest.mark.django_db
def test_sign_in_takes_the_email_and_lands_on_the_organization(client, organization):
    make_member(organization=organization, role=Membership.Role.ADMIN, email="Ada@Acme.test",
                password="correct horse battery")
    response = client.post("/login/", {"username": "ada@acme.test", "password": "correct horse battery"})
    assert response.status_code == 302 and response["Location"] == "/"
    assert client.get("/")["Location"] == f"/o/{organization.slug}/"


@pytest.mark.django_db
def test_wrong_password_is_refused_with_a_sentence(client, organization):
    make_member(organization=organization, email="ada@acme.test", password="correct horse battery")
    response = client.post("/login/", {"username": "ada@acme.test", "password": "wrong"})
    assert response.status_code == 200 and b"do not match" in response.content
    assert client.get(f"/o/{organization.slug}/").status_code == 302


@pytest.mark.django_db
def test_a_person_in_two_organizations_chooses_and_switches(organization, other_organization):
    membership = make_member(organization=organization, role=Membership.Role.VIEWER, password="correct horse battery")
    Membership.objects.create(organization=other_organization, user=membership.user, role=Membership.Role.ADMIN)
    person = signed_in(membership)
    choice = person.get("/")
    assert choice.status_code == 200
    assert f"/o/{organization.slug}/".encode() in choice.content
    assert f"/o/{other_organization.slug}/".encode() in choice.content
    assert person.get(f"/switch/?org={other_organization.slug}")["Location"] == f"/o/{other_organization.slug}/"
    # Roles are per organization: admin in one, viewer in the other.
    assert person.get(f"/o/{other_organization.slug}/api-keys/").status_code == 200
    assert person.get(f"/o/{organization.slug}/api-keys/").status_code == 403
    # Switching to an organization one is not in is the same 404 as any other page.
    assert person.get("/switch/?org=nobodys-org", follow=True).status_code == 404
    assert person.get("/switch/?org=../admin/").status_code == 404


@pytest.mark.django_db
def test_the_admin_login_still_works(client, organization):
    make_member(organization=organization, role=Membership.Role.OWNER, email="owner@acme.test",
                password="correct horse battery")
    response = client.post("/admin/login/?next=/admin/", {"username": "owner@acme.test",
                                                         "password": "correct horse battery"})
    assert response.status_code == 302
    assert client.get("/admin/").status_code == 200


@pytest.mark.django_db
def test_no_page_shows_another_organizations_data(organization, other_organization, other_project, owner_client,
                                                  events_sent):
    from budgets.services import budget_create
    from queries.services import saved_query_create
    from tests.queries.helpers import event, send_events

    send_events(other_organization, [event(project=other_project.slug, cost="999", charge="1", provider="cohere",
                                           userId="usr_globex", traces=["trace_globex"])])
    budget_create(organization=other_organization, api_key=None, name="Globex budget", amount="10")
    saved_query_create(organization=other_organization, api_key=None, name="Globex query",
                       query={"range": "today"})
    make_api_key(organization=other_organization, scopes="read")
    ApiKey.objects.filter(organization=other_organization).update(name="globex-key")
    for page in PAGES:
        text = owner_client.get(f"/o/{organization.slug}/{page}").content.decode()
        for secret in ("usr_globex", "cohere", "999", "Globex budget", "Globex query", "globex-key", "Globex"):
            assert secret not in text, (page, secret)
    # Looking B's trace or customer up from A finds nothing (the filter echoes only what was typed).
    for lookup in ("trace=trace_globex", "user=usr_globex"):
        text = owner_client.get(f"/o/{organization.slug}/events/?{lookup}").content.decode()
        assert "No events match." in text and "999" not in text and "cohere" not in text


@pytest.mark.django_db
def test_nul_characters_in_any_field_are_refused_not_a_server_error(organization, owner_client, events_sent):
    slug = organization.slug
    for page in PAGES + ["events/view/", "saved-queries/1/"]:
        response = owner_client.get(f"/o/{slug}/{page.split('?')[0]}", {"provider": "open\x00ai", "id": "\x00"})
        assert response.status_code == 400, page
    keys_before = ApiKey.objects.filter(organization=organization).count()
    for form in ("api-keys/", "explore/save/", "budgets/"):
        response = owner_client.post(f"/o/{slug}/{form}", {"name": "bad\x00name", "amount": "5", "scope": ["read"],
                                                            "query": '{"range": "today"}'})
        assert response.status_code == 400, form
    assert ApiKey.objects.filter(organization=organization).count() == keys_before
