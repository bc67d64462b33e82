"""The taxonomy as organizations govern it: defaults, the API, admin changes applied at once."""
import json

import pytest

from events.models import AllowedValue, FieldRule, MetadataKey, Taxonomy
from events.taxonomy import DEFAULT_TAXONOMY
from organizations.models import Membership
from tests.factories import make_member


def send(client, event: dict):
    return client.post("/api/v1/events", json.dumps(event), content_type="application/json")


BASE_EVENT = {"cost": "0.01", "charge": "0.02", "environment": "production", "provider": "openai",
              "application": "assistant-api", "action": "completion", "userId": "usr_1", "traces": ["t1"]}


def test_a_new_organization_starts_with_the_contract_default(organization):
    assert Taxonomy.objects.filter(organization=organization).exists()
    environment = FieldRule.objects.get(organization=organization, field="environment")
    assert (environment.presence, environment.enforcement) == ("required", "reject")
    production = AllowedValue.objects.get(organization=organization, rule=environment, value="production")
    assert set(production.aliases) == {"prod", "prd", "live"}
    latency = MetadataKey.objects.get(organization=organization, key="latencyMs")
    assert latency.type == "integer" and set(latency.aliases) == {"latency_ms", "latency"}


def test_taxonomy_api_serves_the_rules_for_linting(api_as, read_key, organization):
    body = api_as(read_key).get("/api/v1/taxonomy").json()
    assert body["organization"] == organization.slug
    assert body["fields"]["environment"]["enforcement"] == "reject"
    assert {value["value"] for value in body["fields"]["environment"]["values"]} == {
        "production", "staging", "development"}
    assert body["fields"]["action"]["convention"] == "snake_case"
    assert {key["key"] for key in body["metadata"]["keys"]} == {
        key["key"] for key in DEFAULT_TAXONOMY["metadata"]["keys"]}


def test_taxonomy_api_is_per_organization(api_as, read_key, other_key, other_organization):
    rule = FieldRule.objects.get(organization=other_organization, field="environment")
    AllowedValue.objects.create(organization=other_organization, rule=rule, value="globex-canary")
    from events.services import taxonomy_touch
    taxonomy_touch(organization=other_organization)
    mine = api_as(read_key).get("/api/v1/taxonomy").content.decode()
    theirs = api_as(other_key).get("/api/v1/taxonomy").content.decode()
    assert "globex-canary" in theirs and "globex-canary" not in mine


def test_an_admin_change_applies_on_the_next_request(client, api_as, organization, project, ingest_key):
    admin_user = make_member(organization=organization, role=Membership.Role.ADMIN).user
    client.force_login(admin_user)
    api = api_as(ingest_key)
    assert send(api, {**BASE_EVENT, "environment": "qa"}).status_code == 422

    rule = FieldRule.objects.get(organization=organization, field="environment")
    values = list(AllowedValue.objects.filter(rule=rule).order_by("pk"))
    form = {
        "presence": "required", "enforcement": "reject", "convention": "", "description": "",
        "allowed_values-TOTAL_FORMS": str(len(values) + 1), "allowed_values-INITIAL_FORMS": str(len(values)),
        "allowed_values-MIN_NUM_FORMS": "0", "allowed_values-MAX_NUM_FORMS": "1000",
    }
    for number, value in enumerate(values):
        form.update({f"allowed_values-{number}-id": str(value.pk), f"allowed_values-{number}-rule": str(rule.pk),
                     f"allowed_values-{number}-value": value.value,
                     f"allowed_values-{number}-description": value.description,
                     f"allowed_values-{number}-aliases": ",".join(value.aliases)})
    new = len(values)
    form.update({f"allowed_values-{new}-rule": str(rule.pk), f"allowed_values-{new}-value": "qa",
                 f"allowed_values-{new}-description": "QA cluster", f"allowed_values-{new}-aliases": "test,testing"})
    response = client.post(f"/admin/events/fieldrule/{rule.pk}/change/", form)
    assert response.status_code == 302, response.content.decode()[:3000]

    accepted = send(api, {**BASE_EVENT, "environment": "Testing"})
    assert accepted.status_code == 200
    assert accepted.json()["warnings"][0]["fields"]["environment"] == ["'Testing' normalized to 'qa'"]


def test_the_admin_refuses_a_change_that_would_break_the_taxonomy(client, organization):
    admin_user = make_member(organization=organization, role=Membership.Role.OWNER).user
    client.force_login(admin_user)
    rule = FieldRule.objects.get(organization=organization, field="environment")
    form = {
        "presence": "required", "enforcement": "reject", "convention": "", "description": "",
        "allowed_values-TOTAL_FORMS": "2", "allowed_values-INITIAL_FORMS": "0",
        "allowed_values-MIN_NUM_FORMS": "0", "allowed_values-MAX_NUM_FORMS": "1000",
        "allowed_values-0-value": "production", "allowed_values-0-aliases": "prod",
        "allowed_values-1-value": "prod-eu", "allowed_values-1-aliases": "prod",
    }
    AllowedValue.objects.filter(rule=rule).delete()
    response = client.post(f"/admin/events/fieldrule/{rule.pk}/change/", form)
    assert response.status_code == 200
    assert "would make the taxonomy invalid" in response.content.decode()
    assert not AllowedValue.objects.filter(rule=rule).exists()


@pytest.mark.parametrize("page", ["/admin/events/taxonomy/", "/admin/events/fieldrule/"])
def test_taxonomy_admin_pages_show_only_this_organization(client, organization, other_organization, page):
    FieldRule.objects.filter(organization=other_organization, field="application").update(
        description="CANARY-globex-rule")
    admin_user = make_member(organization=organization, role=Membership.Role.ADMIN).user
    client.force_login(admin_user)
    response = client.get(page)
    assert response.status_code == 200
    assert "CANARY-globex-rule" not in response.content.decode()
    assert other_organization.name not in response.content.decode()
    other_rule = FieldRule.objects.get(organization=other_organization, field="application")
    assert client.get(f"/admin/events/fieldrule/{other_rule.pk}/change/").status_code in (302, 404)
