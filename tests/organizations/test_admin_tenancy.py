"""The admin's tenancy: an organization's owners and admins see and change only their organizations.

Organization B's every visible string carries a canary; the crawl signs in as an owner
of A and walks every page, filter, popup and lookup the admin offers, for every
model registered (so models added later are crawled without touching this file),
and the canary must never come back.
"""
import html
import re
from dataclasses import dataclass
from urllib.parse import urlencode

import pytest
from django.apps import apps
from django.contrib import admin
from django.contrib.admin.models import LogEntry
from django.contrib.auth import get_user_model
from django.contrib.contenttypes.models import ContentType
from django.db import models
from django.test import Client
from django.urls import reverse

from koala.admin import TenantAdmin
from organizations.models import ApiKey, Membership, Organization, Project
from organizations.services import api_key_create, membership_add, organization_create, project_create
from tests.factories import make_member, make_project

CANARY = "CANARY-B-7f3a"
# Searched for instead of the canary itself, which a search box would echo back.
CANARY_FRAGMENT = "7f3a"
PASSWORD = "correct horse battery"


@dataclass
class World:
    a: Organization
    b: Organization
    a_project: Project
    a_other_project: Project
    b_project: Project
    b_other_project: Project
    a_key: ApiKey
    b_key: ApiKey
    b_project_key: ApiKey
    owner: object  # owner of A, once admin of B, now only a member of B
    admin_user: object  # admin of A
    member_user: object
    viewer_user: object
    b_owner: object


def _user(email):
    return get_user_model().objects.get(email=email)


@pytest.fixture
def world(db) -> World:
    a = organization_create(name="Acme", slug="acme")
    b = organization_create(name=f"Globex {CANARY}", slug=f"{CANARY.lower()}-globex")
    a_project = make_project(organization=a, slug="assistant-api")
    a_other_project = make_project(organization=a, slug="search-api")
    b_project = project_create(organization=b, name=f"{CANARY} Chat", slug=f"{CANARY.lower()}-chat")
    b_other_project = project_create(organization=b, name=f"{CANARY} Batch", slug=f"{CANARY.lower()}-batch")
    a_key, _ = api_key_create(organization=a, project=a_project, scopes="ingest", name="acme ingest")
    b_key, _ = api_key_create(organization=b, scopes="read", name=f"{CANARY} reporting")
    b_project_key, _ = api_key_create(organization=b, project=b_project, scopes="ingest", name=f"{CANARY} ingest")

    make_member(organization=a, role=Membership.Role.OWNER, email="owner@acme.test", password=PASSWORD)
    make_member(organization=a, role=Membership.Role.ADMIN, email="admin@acme.test", password=PASSWORD)
    make_member(organization=a, role=Membership.Role.MEMBER, email="member@acme.test", password=PASSWORD)
    make_member(organization=a, role=Membership.Role.VIEWER, email="viewer@acme.test", password=PASSWORD)
    make_member(organization=b, role=Membership.Role.OWNER, email=f"{CANARY.lower()}-owner@globex.test",
                password=PASSWORD)
    make_member(organization=b, role=Membership.Role.VIEWER, email=f"{CANARY.lower()}-viewer@globex.test")
    # A's owner once administered B and changed B's project there, then became a plain
    # member of B: their old admin log on B's objects must not surface either.
    make_member(organization=b, role=Membership.Role.ADMIN, email="owner@acme.test")
    owner = _user("owner@acme.test")
    client = Client()
    client.force_login(owner)
    response = client.post(reverse("admin:organizations_project_change", args=[b_project.pk]),
                           {"organization": b.pk, "name": f"{CANARY} Chat v2", "slug": b_project.slug})
    assert response.status_code == 302, response.content
    assert LogEntry.objects.filter(user=owner, object_id=str(b_project.pk)).exists()
    membership_add(organization=b, email="owner@acme.test", role=Membership.Role.MEMBER)

    return World(
        a=a, b=b, a_project=a_project, a_other_project=a_other_project, b_project=b_project,
        b_other_project=b_other_project, a_key=a_key, b_key=b_key, b_project_key=b_project_key,
        owner=owner, admin_user=_user("admin@acme.test"), member_user=_user("member@acme.test"),
        viewer_user=_user("viewer@acme.test"), b_owner=_user(f"{CANARY.lower()}-owner@globex.test"),
    )


def _login_with_form(client: Client, email: str, password: str = PASSWORD):
    return client.post(reverse("admin:login"), {"username": email, "password": password,
                                                "next": reverse("admin:index")})


@pytest.fixture
def owner_client(world) -> Client:
    client = Client()
    response = _login_with_form(client, "owner@acme.test")
    assert response.status_code == 302 and response["Location"] == reverse("admin:index")
    return client


def _organization_of(obj) -> set[int]:
    """Which organizations an object belongs to, worked out without the admin's own helpers."""
    if isinstance(obj, Organization):
        return {obj.pk}
    if isinstance(obj, get_user_model()):
        return set(obj.memberships.values_list("organization_id", flat=True))
    organization_id = getattr(obj, "organization_id", None)
    return {organization_id} if organization_id is not None else set()


class Crawler:
    def __init__(self, client: Client):
        self.client = client
        self.visited: dict[str, int] = {}

    def get(self, url: str, *, follow: bool = False):
        response = self.client.get(url, follow=follow)
        self.visited[url] = response.status_code
        body = response.content.decode(errors="replace")
        assert response.status_code != 500, f"{url} answered 500"
        assert CANARY.lower() not in body.lower(), f"{url} ({response.status_code}) shows another organization"
        return response


def _admin_url(model, view: str, *args) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


def _forward_relations(model):
    return [field for field in model._meta.get_fields()
            if field.is_relation and field.concrete and not field.auto_created and field.related_model is not None]


def _refused(response) -> bool:
    """Answered as if the object did not exist: 404, 403, or a redirect to the admin index."""
    if response.status_code in (403, 404):
        return True
    return response.status_code == 302 and response["Location"] == reverse("admin:index")


def test_admin_crawl_never_shows_another_organization(world, owner_client):
    crawler = Crawler(owner_client)
    registry = admin.site._registry

    index = crawler.get(reverse("admin:index"))
    assert index.status_code == 200
    assert _admin_url(Project, "changelist") in index.content.decode()
    for app_label in {model._meta.app_label for model in registry}:
        crawler.get(reverse("admin:app_list", args=[app_label]))

    for model, model_admin in registry.items():
        changelist = _admin_url(model, "changelist")
        # Every list, with every filter and sorting link it offers, with and without facets.
        for base in (changelist, changelist + "?_facets=True"):
            page = crawler.get(base)
            if page.status_code != 200:
                continue
            links = {html.unescape(href) for href in re.findall(r'href="(\?[^"]*)"', page.content.decode())}
            for link in sorted(links):
                crawler.get(changelist + link)
        crawler.get(changelist + "?" + urlencode({"q": CANARY_FRAGMENT}))
        crawler.get(changelist + f"?organization__id__exact={world.b.pk}")
        # The raw-id lookup popup, plain and searched.
        crawler.get(changelist + "?_popup=1&_to_field=id")
        crawler.get(changelist + "?" + urlencode({"_popup": 1, "_to_field": "id", "q": CANARY_FRAGMENT}))

        # Add pages, also pre-filled (?field=id) with another organization's objects.
        add = _admin_url(model, "add")
        crawler.get(add)
        crawler.get(add + "?_popup=1&_to_field=id")
        for field in _forward_relations(model):
            for foreign in field.related_model._default_manager.all():
                if world.b.pk in _organization_of(foreign) and world.a.pk not in _organization_of(foreign):
                    crawler.get(add + "?" + urlencode({field.name: foreign.pk}))

        # Every object in the database: A's open, B's answer as if they did not exist.
        for obj in model._default_manager.all():
            organizations = _organization_of(obj)
            content_type = ContentType.objects.get_for_model(model)
            urls = [_admin_url(model, "change", obj.pk), _admin_url(model, "history", obj.pk),
                    _admin_url(model, "delete", obj.pk),
                    reverse("admin:view_on_site", args=[content_type.pk, obj.pk])]
            for url in urls:
                response = crawler.get(url)
                if organizations and world.a.pk not in organizations:
                    assert _refused(response), f"{url} answered {response.status_code} for B's object"
                    crawler.get(url, follow=True)
            if world.a.pk in organizations and isinstance(model_admin, TenantAdmin):
                assert crawler.visited[_admin_url(model, "change", obj.pk)] == 200
                assert crawler.visited[_admin_url(model, "history", obj.pk)] == 200

    # Autocomplete, for every foreign key of every installed model (the view does not
    # require the field to be declared in autocomplete_fields).
    answered = 0
    for model in apps.get_models():
        for field in _forward_relations(model):
            for term in ("", CANARY_FRAGMENT, "globex", "a"):
                query = urlencode({"app_label": model._meta.app_label, "model_name": model._meta.model_name,
                                   "field_name": field.name, "term": term})
                response = crawler.get(reverse("admin:autocomplete") + "?" + query)
                answered += response.status_code == 200
    assert answered, "no autocomplete endpoint answered; the crawl did not exercise autocomplete"

    # The crawl really reached A's pages and lookups (it is not vacuously clean).
    projects = owner_client.get(_admin_url(Project, "changelist")).content.decode()
    assert "assistant-api" in projects and "search-api" in projects
    lookup = owner_client.get(reverse("admin:autocomplete") + "?" + urlencode(
        {"app_label": "organizations", "model_name": "apikey", "field_name": "project", "term": ""})).json()
    assert {row["text"] for row in lookup["results"]} == {str(world.a_project), str(world.a_other_project)}
    assert len(crawler.visited) > 100


def test_the_crawl_would_catch_a_leak(world, monkeypatch):
    """Guard for the crawl itself: with scoping switched off, the canary shows."""
    from koala import admin as koala_admin

    monkeypatch.setattr(koala_admin, "scope_to_organizations", lambda queryset, organization_ids: queryset)
    client = Client()
    client.force_login(world.owner)
    with pytest.raises(AssertionError, match="another organization"):
        Crawler(client).get(_admin_url(Project, "changelist"))


# Posting another organization's ids ------------------------------------------------------------

def _form_refused(response) -> bool:
    if response.status_code == 403:
        return True
    return response.status_code == 200 and bool(response.context and response.context.get("errors"))


def _snapshot():
    return {
        "projects": sorted(Project.objects.values_list("pk", "organization_id", "name", "slug")),
        "keys": sorted(ApiKey.objects.values_list("pk", "organization_id", "project_id", "name", "revoked_at")),
        "memberships": sorted(Membership.objects.values_list("pk", "organization_id", "user_id", "role")),
        "organizations": sorted(Organization.objects.values_list("pk", "name", "slug")),
        "users": sorted(get_user_model().objects.values_list("pk", "email", "password")),
    }


@pytest.fixture
def admin_client(world) -> Client:
    client = Client()
    client.force_login(world.admin_user)
    return client


def test_forms_refuse_another_organizations_ids(world, admin_client):
    before = _snapshot()
    attempts = [
        (_admin_url(Project, "add"), {"organization": world.b.pk, "name": "Sneaky", "slug": "sneaky"}),
        (_admin_url(Project, "change", world.a_project.pk),
         {"organization": world.b.pk, "name": world.a_project.name, "slug": world.a_project.slug}),
        (_admin_url(ApiKey, "add"), {"organization": world.b.pk, "name": "sneaky", "scopes": ["read"]}),
        (_admin_url(ApiKey, "add"),
         {"organization": world.a.pk, "project": world.b_project.pk, "name": "sneaky", "scopes": ["read"]}),
        (_admin_url(Membership, "add"),
         {"organization": world.b.pk, "email": "sneaky@acme.test", "password": "", "role": "owner"}),
    ]
    for url, data in attempts:
        response = admin_client.post(url, data)
        assert _form_refused(response), (url, data, response.status_code)
        # The re-rendered form names nothing of B, not even for the id just posted.
        assert CANARY.lower() not in response.content.decode().lower(), (url, data)
    assert _snapshot() == before


def test_inline_rows_cannot_adopt_another_organizations_project(world, admin_client):
    before = _snapshot()
    url = _admin_url(Organization, "change", world.a.pk)
    admin_client.post(url, {
        "name": "Acme", "reporting_currency": "USD", "timezone": "UTC",
        "projects-TOTAL_FORMS": 1, "projects-INITIAL_FORMS": 1, "projects-MIN_NUM_FORMS": 0,
        "projects-MAX_NUM_FORMS": 1000,
        "projects-0-id": world.b_project.pk, "projects-0-organization": world.a.pk,
        "projects-0-name": "Stolen", "projects-0-slug": "stolen",
    })
    after = _snapshot()
    assert after["projects"] == before["projects"]


def test_delete_and_actions_with_another_organizations_ids_do_nothing(world, admin_client):
    before = _snapshot()
    for model, ids in [(Project, [world.b_project.pk, world.b_other_project.pk]),
                       (ApiKey, [world.b_key.pk, world.b_project_key.pk]),
                       (Membership, list(world.b.memberships.values_list("pk", flat=True))),
                       (Organization, [world.b.pk])]:
        changelist = _admin_url(model, "changelist")
        for action in ("delete_selected", "revoke_selected"):
            response = admin_client.post(changelist, {"action": action, "_selected_action": ids, "post": "yes",
                                                      "index": 0})
            assert response.status_code in (200, 302, 403)
            assert CANARY.lower() not in response.content.decode().lower()
        for pk in ids:
            response = admin_client.post(_admin_url(model, "delete", pk), {"post": "yes"})
            assert _refused(response)
    assert _snapshot() == before


def test_every_tenant_admins_hooks_refuse_another_organizations_objects(world, rf):
    """The second line behind `get_queryset`: permissions, saving and deleting check the object too."""
    from django.contrib.messages.storage.fallback import FallbackStorage
    from django.core.exceptions import PermissionDenied

    request = rf.post("/admin/")
    request.user = world.admin_user
    request.session = {}
    request._messages = FallbackStorage(request)
    checked = 0
    for model, model_admin in admin.site._registry.items():
        if not isinstance(model_admin, TenantAdmin):
            continue
        for obj in model._default_manager.all():
            theirs = world.b.pk in _organization_of(obj) and world.a.pk not in _organization_of(obj)
            if not theirs:
                continue
            checked += 1
            assert not model_admin.has_view_permission(request, obj)
            assert not model_admin.has_change_permission(request, obj)
            assert not model_admin.has_delete_permission(request, obj)
            with pytest.raises(PermissionDenied):
                model_admin.save_model(request, obj, form=None, change=True)
            with pytest.raises(PermissionDenied):
                model_admin.delete_model(request, obj)
            model_admin.delete_queryset(request, model._default_manager.filter(pk=obj.pk))
            assert model._default_manager.filter(pk=obj.pk).exists()
    assert checked >= 6


def test_adding_an_existing_person_cannot_set_their_password(world, admin_client):
    """Otherwise an admin of A could take over B's owner (or a superuser) by 'adding' them."""
    response = admin_client.post(_admin_url(Membership, "add"), {
        "organization": world.a.pk, "email": world.b_owner.email, "password": "taken over!", "role": "viewer"})
    assert _form_refused(response)
    world.b_owner.refresh_from_db()
    assert world.b_owner.check_password(PASSWORD)
    assert not Membership.objects.filter(organization=world.a, user=world.b_owner).exists()
    assert Client().login(username=world.b_owner.email, password=PASSWORD)

    # Without a password an existing person is added, keeping their own.
    response = admin_client.post(_admin_url(Membership, "add"), {
        "organization": world.a.pk, "email": world.b_owner.email, "password": "", "role": "viewer"})
    assert response.status_code == 302
    assert Membership.objects.filter(organization=world.a, user=world.b_owner, role="viewer").exists()
    world.b_owner.refresh_from_db()
    assert world.b_owner.check_password(PASSWORD)


def test_the_admin_can_still_do_its_job(world, admin_client):
    """The scoping leaves A's admin able to add and change A's things."""
    response = admin_client.post(_admin_url(Project, "add"),
                                 {"organization": world.a.pk, "name": "Billing", "slug": "billing"})
    assert response.status_code == 302, response.context and response.context.get("errors")
    assert Project.objects.filter(organization=world.a, slug="billing").exists()
    response = admin_client.post(_admin_url(Project, "change", world.a_project.pk),
                                 {"organization": world.a.pk, "name": "Assistant", "slug": "assistant-api"})
    assert response.status_code == 302
    world.a_project.refresh_from_db()
    assert world.a_project.name == "Assistant"
    response = admin_client.post(_admin_url(Membership, "add"), {
        "organization": world.a.pk, "email": "new@acme.test", "password": "a fine password", "role": "member"})
    assert response.status_code == 302, response.context and response.context.get("errors")
    assert Membership.objects.filter(organization=world.a, user__email="new@acme.test").exists()
    response = admin_client.post(_admin_url(Project, "changelist"), {
        "action": "delete_selected", "_selected_action": [world.a_other_project.pk], "post": "yes"})
    assert response.status_code == 302
    assert not Project.objects.filter(pk=world.a_other_project.pk).exists()


# Who may enter --------------------------------------------------------------------------------

@pytest.mark.parametrize("email", ["member@acme.test", "viewer@acme.test"])
def test_members_and_viewers_cannot_sign_in(world, email):
    client = Client()
    response = _login_with_form(client, email)
    assert response.status_code == 200
    assert "not an owner or admin" in response.content.decode()
    assert "_auth_user_id" not in client.session
    assert client.get(reverse("admin:index")).status_code == 302


@pytest.mark.parametrize("email", ["member@acme.test", "viewer@acme.test"])
def test_members_and_viewers_logged_in_elsewhere_are_sent_to_the_login_page(world, email):
    client = Client()
    client.force_login(_user(email))
    for url in (reverse("admin:index"), _admin_url(Project, "changelist"), _admin_url(Project, "change",
                                                                                       world.a_project.pk),
                reverse("admin:autocomplete") + "?app_label=organizations&model_name=apikey&field_name=project"):
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("admin:login"))


def test_wrong_password_is_refused_and_the_field_asks_for_the_email(world):
    client = Client()
    page = client.get(reverse("admin:login")).content.decode()
    assert re.search(r'<label[^>]*for="id_username"[^>]*>Email', page)
    response = _login_with_form(client, "owner@acme.test", "wrong")
    assert response.status_code == 200 and "_auth_user_id" not in client.session
    response = _login_with_form(client, "OWNER@acme.test")
    assert response.status_code == 302


def test_an_owner_who_is_only_a_member_elsewhere_sees_nothing_of_it(world, owner_client):
    assert Membership.objects.get(organization=world.b, user=world.owner).role == Membership.Role.MEMBER
    for url in (reverse("admin:index"), _admin_url(Organization, "changelist"), _admin_url(Project, "changelist"),
                _admin_url(Membership, "changelist"), _admin_url(ApiKey, "changelist")):
        response = owner_client.get(url)
        assert response.status_code == 200
        assert CANARY.lower() not in response.content.decode().lower()
    assert _refused(owner_client.get(_admin_url(Organization, "change", world.b.pk)))
    assert _refused(owner_client.get(_admin_url(Project, "history", world.b_project.pk)))


def test_a_superuser_sees_both_organizations(world):
    superuser = get_user_model().objects.create_superuser("root", "root@koala.test", PASSWORD)
    client = Client()
    assert _login_with_form(client, "root@koala.test").status_code == 302
    organizations = client.get(_admin_url(Organization, "changelist")).content.decode()
    assert "Acme" in organizations and CANARY in organizations
    projects = client.get(_admin_url(Project, "changelist")).content.decode()
    assert "assistant-api" in projects and f"{CANARY.lower()}-chat" in projects
    keys = client.get(_admin_url(ApiKey, "changelist")).content.decode()
    assert "acme ingest" in keys and f"{CANARY} reporting" in keys
    assert client.get(_admin_url(Project, "change", world.b_project.pk)).status_code == 200
    lookup = client.get(reverse("admin:autocomplete") + "?" + urlencode(
        {"app_label": "organizations", "model_name": "apikey", "field_name": "project", "term": CANARY[:6]})).json()
    assert {row["id"] for row in lookup["results"]} == {str(world.b_project.pk), str(world.b_other_project.pk)}
    assert superuser.is_superuser


def test_tenant_admin_is_used_for_every_tenant_model():
    """A tenant-owned model registered with a plain ModelAdmin would bypass all of the above."""
    for model, model_admin in admin.site._registry.items():
        tenant_owned = model is Organization or any(
            isinstance(field, models.ForeignKey) and field.related_model is Organization
            for field in model._meta.get_fields())
        if tenant_owned:
            assert isinstance(model_admin, TenantAdmin), f"{model.__name__} is not registered with a TenantAdmin"
