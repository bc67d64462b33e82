"""Another organization's objects are invisible: 404 on detail, absent from lists."""
from organizations.models import ApiKey
from tests.factories import make_api_key, make_project


def test_project_list_shows_only_this_organizations_projects(api_as, read_key, project, other_project):
    make_project(organization=other_project.organization, slug="globex-secret")
    body = api_as(read_key).get("/api/v1/projects").json()
    assert [row["slug"] for row in body["results"]] == ["assistant-api"]
    assert body["next"] is None


def test_another_organizations_project_is_404_even_with_the_same_slug_elsewhere(api_as, other_key, project):
    make_project(organization=ApiKey.objects.get(prefix=other_key[3:13]).organization, slug="globex-only")
    response = api_as(other_key).get("/api/v1/projects/globex-only")
    assert response.status_code == 200
    response = api_as(make_api_key(organization=project.organization, scopes="read")).get("/api/v1/projects/globex-only")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_a_project_key_sees_only_its_project(api_as, organization, project):
    sibling = make_project(organization=organization, slug="billing")
    key = make_api_key(organization=organization, project=project, scopes="read")
    client = api_as(key)
    assert [row["slug"] for row in client.get("/api/v1/projects").json()["results"]] == ["assistant-api"]
    assert client.get(f"/api/v1/projects/{sibling.slug}").status_code == 404
    assert client.get("/api/v1/me").json()["project"] == "assistant-api"


def test_key_info_names_only_the_keys_own_organization(api_as, read_key, organization, other_organization):
    body = api_as(read_key).get("/api/v1/me").json()
    assert body["organization"] == organization.slug
    assert body["scopes"] == ["read"]


def test_projects_paginate_with_a_cursor(api_as, read_key, organization):
    for number in range(5):
        make_project(organization=organization, slug=f"p-{number}")
    client = api_as(read_key)
    first = client.get("/api/v1/projects?limit=2").json()
    assert len(first["results"]) == 2 and first["next"]
    second = client.get(first["next"]).json()
    assert len(second["results"]) == 2
    assert not {row["slug"] for row in first["results"]} & {row["slug"] for row in second["results"]}
    assert client.get("/api/v1/projects?limit=0").json()["error"]["code"] == "invalid_request"
    assert client.get("/api/v1/projects?limit=abc").status_code == 400
