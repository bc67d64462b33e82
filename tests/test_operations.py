"""/healthz, the OpenAPI document and its browsable page."""
import re

import pytest
from django.test import override_settings


@pytest.mark.django_db
def test_healthz_reports_database_and_broker(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "broker": "ok"}


@pytest.mark.django_db
def test_healthz_names_the_broker_when_redis_is_unreachable(client):
    with override_settings(REDIS_URL="redis://127.0.0.1:1/0"):
        response = client.get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert body["database"] == "ok" and body["broker"] != "ok"
    assert body["error"]["code"] == "unavailable" and "broker" in body["error"]["message"]
    assert response["Retry-After"]


@pytest.mark.django_db
def test_openapi_document_lists_every_api_route(client):
    from tests.organizations.test_api_auth import ROUTES

    response = client.get("/api/schema/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    document = response.json()
    assert document["openapi"].startswith("3.")
    documented = {re.sub(r"\{\w+\}", lambda m: "assistant-api" if m.group(0) == "{slug}" else "1", path)
                  for path in document["paths"]}
    assert set(ROUTES) <= documented


@pytest.mark.django_db
def test_api_docs_page_loads_its_assets_from_our_own_server(client):
    response = client.get("/api/docs/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "swagger" in html.lower()
    assert "cdn" not in html.lower() and "https://" not in html
