"""API keys in the admin: the secret is shown once, stored only as a hash, and revocation is immediate."""
import re

import pytest
from django.contrib.admin.models import LogEntry
from django.test import Client
from django.urls import reverse

from organizations.models import ApiKey, Membership
from tests.factories import make_member

KEY_PATTERN = re.compile(r"tk_[a-z0-9]{10}_[A-Za-z0-9_-]{20,64}")


@pytest.fixture
def admin_client(organization):
    make_member(organization=organization, role=Membership.Role.ADMIN, email="admin@acme.test",
                password="correct horse battery")
    client = Client()
    response = client.post(reverse("admin:login"), {"username": "admin@acme.test",
                                                    "password": "correct horse battery"})
    assert response.status_code == 302
    return client


def _create_key_in_admin(client, organization, project=None, *, name="ci pipeline",
                         scopes=("ingest", "read")) -> tuple[ApiKey, str]:
    response = client.post(reverse("admin:organizations_apikey_add"), {
        "organization": organization.pk, "project": project.pk if project else "", "name": name,
        "scopes": list(scopes)})
    assert response.status_code == 200, response.context and response.context.get("errors")
    body = response.content.decode()
    keys = set(KEY_PATTERN.findall(body))
    assert len(keys) == 1, "the response page shows the new key"
    assert "no-store" in response["Cache-Control"]
    (plaintext,) = keys
    api_key = ApiKey.objects.get(prefix=plaintext.split("_")[1])
    return api_key, plaintext


def test_a_key_created_in_the_admin_is_shown_once_and_works(admin_client, organization, project, api_as):
    api_key, plaintext = _create_key_in_admin(admin_client, organization, project)
    assert plaintext.startswith("tk_")
    assert api_key.organization_id == organization.pk and api_key.project_id == project.pk
    assert api_key.scopes == ["ingest", "read"]

    response = api_as(plaintext).get("/api/v1/me")
    assert response.status_code == 200
    assert response.json()["organization"] == organization.slug
    assert response.json()["project"] == project.slug
    assert response.json()["scopes"] == ["ingest", "read"]

    # Never again: not on the list, the key's page, its history, nor the index.
    for url in (reverse("admin:organizations_apikey_changelist"),
                reverse("admin:organizations_apikey_change", args=[api_key.pk]),
                reverse("admin:organizations_apikey_history", args=[api_key.pk]),
                reverse("admin:index")):
        page = admin_client.get(url)
        assert page.status_code == 200
        assert plaintext not in page.content.decode()
        assert plaintext.split("_", 2)[2] not in page.content.decode()


def test_the_database_holds_no_secret_in_clear(admin_client, organization):
    api_key, plaintext = _create_key_in_admin(admin_client, organization)
    secret = plaintext.split("_", 2)[2]
    row = ApiKey.objects.filter(pk=api_key.pk).values().get()
    assert set(row) >= {"prefix", "key_hash", "scopes", "name"}
    for column, value in row.items():
        assert plaintext not in str(value), column
        assert secret not in str(value), column
    # Nor does the admin's own log of the addition.
    for entry in LogEntry.objects.values():
        for column, value in entry.items():
            assert secret not in str(value), f"admin log {column}"


def test_the_key_list_shows_prefix_scopes_last_use_and_revocation(admin_client, organization, project, api_as):
    used, used_plaintext = _create_key_in_admin(admin_client, organization, project, name="used key",
                                                scopes=("read",))
    unused, _ = _create_key_in_admin(admin_client, organization, name="unused key", scopes=("ingest", "manage"))
    assert api_as(used_plaintext).get("/api/v1/me").status_code == 200

    response = admin_client.get(reverse("admin:organizations_apikey_changelist"))
    page = response.content.decode()
    for column in ("shown_prefix", "scopes", "last_used_at", "revoked"):
        assert f"column-{column}" in page, column
    rows = {row.name: row for row in response.context["cl"].result_list}
    assert set(rows) == {"used key", "unused key"}
    assert f"tk_{used.prefix}_" in page and f"tk_{unused.prefix}_" in page
    assert "ingest, manage" in page
    used.refresh_from_db()
    assert used.last_used_at is not None and unused.last_used_at is None
    # One row shows a last use, the other "-"; both show "not revoked".
    assert page.count('alt="False"') >= 2
    assert 'alt="True"' not in page


def test_revoking_in_the_admin_stops_the_very_next_request(admin_client, organization, api_as):
    api_key, plaintext = _create_key_in_admin(admin_client, organization, scopes=("read",))
    assert api_as(plaintext).get("/api/v1/me").status_code == 200

    response = admin_client.post(reverse("admin:organizations_apikey_changelist"),
                                 {"action": "revoke_selected", "_selected_action": [api_key.pk]})
    assert response.status_code == 302

    response = api_as(plaintext).get("/api/v1/me")
    assert response.status_code == 401
    body = response.json()
    assert body["error"]["code"] == "authentication_failed"
    assert body["error"]["message"]
    api_key.refresh_from_db()
    assert api_key.revoked_at is not None
    page = admin_client.get(reverse("admin:organizations_apikey_changelist")).content.decode()
    assert 'alt="True"' in page
