"""The contract's management commands: `--json` output and one-line errors."""
import json
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from organizations.models import ApiKey, Membership, Organization, Project


def run_json(*args) -> dict:
    out = StringIO()
    call_command(*args, "--json", stdout=out)
    return json.loads(out.getvalue())


@pytest.mark.django_db
def test_create_org_project_and_key_chain(client):
    org = run_json("create_org", "--name", "Acme Corp", "--currency", "EUR", "--timezone", "Europe/Paris",
                   "--owner-email", "Owner@Acme.test", "--owner-password", "s3cret-pass")
    assert org["slug"] == "acme-corp"
    organization = Organization.objects.get(pk=org["id"])
    assert (organization.reporting_currency, organization.timezone) == ("EUR", "Europe/Paris")
    assert Membership.objects.get(organization=organization).role == "owner"

    project = run_json("create_project", "--org", "acme-corp", "--name", "Assistant API")
    assert project["slug"] == "assistant-api"
    assert Project.objects.filter(organization=organization, slug="assistant-api").exists()

    key = run_json("create_api_key", "--org", "acme-corp", "--project", "assistant-api", "--scopes", "read,ingest",
                   "--name", "ci")
    assert key["key"].startswith("tk_") and key["scopes"] == ["ingest", "read"]
    assert ApiKey.objects.get(prefix=key["prefix"]).project.slug == "assistant-api"

    # The owner signs in with the email (any case) and the password.
    assert client.login(username="owner@acme.test", password="s3cret-pass")


@pytest.mark.django_db
def test_organization_key_has_no_project():
    run_json("create_org", "--name", "Solo")
    key = run_json("create_api_key", "--org", "solo", "--scopes", "manage")
    assert ApiKey.objects.get(prefix=key["prefix"]).project is None


@pytest.mark.django_db
@pytest.mark.parametrize("args, message", [
    (["create_org", "--name", "Acme", "--slug", "taken"], "already exists"),
    (["create_org", "--name", "Bad money", "--currency", "XYZ"], "ISO 4217"),
    (["create_org", "--name", "Bad zone", "--timezone", "Mars/Olympus"], "IANA time zone"),
    (["create_project", "--org", "nope", "--name", "P"], "No organization"),
    (["create_project", "--org", "taken", "--name", "Dup", "--slug", "dup"], "already exists"),
    (["create_api_key", "--org", "nope", "--scopes", "read"], "No organization"),
    (["create_api_key", "--org", "taken", "--scopes", "read,admin"], "Unknown scope 'admin'"),
    (["create_api_key", "--org", "taken", "--scopes", ""], "at least one scope"),
    (["create_api_key", "--org", "taken", "--project", "ghost", "--scopes", "read"], "No project 'ghost'"),
])
def test_clear_one_line_errors(args, message):
    run_json("create_org", "--name", "Taken", "--slug", "taken")
    run_json("create_project", "--org", "taken", "--name", "Dup", "--slug", "dup")
    with pytest.raises(CommandError) as raised:
        call_command(*args, "--json", stdout=StringIO())
    assert message in str(raised.value)
    assert "\n" not in str(raised.value)


@pytest.mark.django_db
def test_seed_demo_creates_a_usable_org_once(client, api_client):
    first = run_json("seed_demo")
    assert first["created"] is True
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {first['key']}")
    assert api_client.get("/api/v1/me").json()["organization"] == "demo"
    assert client.login(username=first["email"], password=first["password"])
    assert run_json("seed_demo")["created"] is False
    assert Organization.objects.filter(slug="demo").count() == 1


@pytest.mark.django_db
def test_seed_demo_writes_realistic_events_over_the_last_90_days(api_client):
    from datetime import UTC, datetime, timedelta

    first = run_json("seed_demo", "--events", "3000")
    assert first["events"] == 3000
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {first['key']}")
    now = datetime.now(UTC)
    window = {"from": (now - timedelta(days=91)).isoformat(), "to": (now + timedelta(hours=1)).isoformat()}
    totals = api_client.post("/api/v1/reports", {**window, "metrics": ["count", "cost", "margin", "error_rate"]},
                             format="json").json()["totals"]
    assert totals["count"] == 3000 and float(totals["cost"]) > 0 and float(totals["margin"]) > 0
    assert 0 < totals["error_rate"] < 0.1
    by_provider = api_client.post("/api/v1/reports", {**window, "group_by": ["provider"], "metrics": ["count"]},
                                  format="json").json()["rows"]
    assert len(by_provider) >= 5  # several providers, as real traffic has
    by_month = api_client.post("/api/v1/reports", {**window, "group_by": ["month"], "metrics": ["count"]},
                               format="json").json()["rows"]
    assert len(by_month) >= 3  # spread over 90 days, not bunched at one moment
    listed = api_client.get("/api/v1/events?limit=5").json()["results"]
    assert listed and all(event["project"] for event in listed)
