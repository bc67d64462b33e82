"""Authentication, scopes and the contract's error body on every API route."""
import re

import pytest
from django.urls import URLPattern, URLResolver, get_resolver

from organizations.models import ApiKey
from organizations.services import api_key_revoke
from tests.factories import make_api_key


def assert_error_body(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert set(body["error"]) <= {"code", "message", "details"}
    return body["error"]


def sample_path(route: str) -> str:
    """`saved-queries/<int:saved_query_id>` -> `saved-queries/1`."""
    route = re.sub(r"<int:\w+>", "1", route)
    return re.sub(r"<(?:slug|str):\w+>", "assistant-api", route)


def api_routes(*, readable_only: bool = False) -> list[str]:
    """Every /api/v1/ route, with sample path arguments, so new routes join these tests by themselves."""
    routes = []

    def walk(patterns, prefix):
        for entry in patterns:
            if isinstance(entry, URLResolver):
                walk(entry.url_patterns, prefix + str(entry.pattern))
            elif isinstance(entry, URLPattern):
                route = prefix + str(entry.pattern)
                view_class = getattr(entry.callback, "view_class", None)
                if route.startswith("api/v1/") and (not readable_only or hasattr(view_class, "get")):
                    routes.append("/" + sample_path(route))

    walk(get_resolver().url_patterns, "")
    return sorted(set(routes))


ROUTES = api_routes()
READABLE_ROUTES = api_routes(readable_only=True)


def test_the_route_list_is_not_empty():
    assert "/api/v1/projects" in ROUTES and "/api/v1/me" in ROUTES


@pytest.mark.django_db
@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("header", [
    None,
    "Bearer",
    "Bearer ",
    "Token tk_abc",
    "Bearer not-a-key",
    "Bearer tk_aaaaaaaaaa_" + "x" * 32,
    "Bearer tk_\x00bad",
    "bearer tk_" + "é" * 40,
])
def test_missing_malformed_or_unknown_keys_get_401(client, route, header):
    extra = {} if header is None else {"HTTP_AUTHORIZATION": header}
    assert_error_body(client.get(route, **extra), 401, "authentication_failed")


@pytest.mark.parametrize("route", ROUTES)
def test_a_revoked_key_fails_on_its_next_request(api_as, organization, project, route):
    key = make_api_key(organization=organization, scopes="read")
    client = api_as(key)
    assert client.get("/api/v1/me").status_code == 200
    api_key_revoke(api_key=ApiKey.objects.get(prefix=key[3:13]))
    assert_error_body(client.get(route), 401, "authentication_failed")


@pytest.mark.parametrize("route", READABLE_ROUTES)
def test_a_key_without_the_read_scope_gets_403(api_as, organization, project, route):
    key = make_api_key(organization=organization, scopes="ingest")
    assert_error_body(api_as(key).get(route), 403, "permission_denied")


def test_a_key_from_a_deleted_organization_is_unknown(api_as, other_organization):
    key = make_api_key(organization=other_organization, scopes="read")
    other_organization.delete()
    assert_error_body(api_as(key).get("/api/v1/me"), 401, "authentication_failed")


def test_the_database_holds_no_secret_in_clear(organization):
    key = make_api_key(organization=organization, scopes="read")
    row = ApiKey.objects.filter(prefix=key[3:13]).values().get()
    secret = key.split("_", 2)[2]
    for column, value in row.items():
        assert key not in str(value), column
        assert secret not in str(value), column


def test_last_use_is_recorded_at_most_once_a_minute(api_as, organization, django_assert_max_num_queries):
    key = make_api_key(organization=organization, scopes="read")
    client = api_as(key)
    client.get("/api/v1/me")
    first_use = ApiKey.objects.get(prefix=key[3:13]).last_used_at
    assert first_use is not None
    # A second request within the minute authenticates with one query and writes nothing.
    with django_assert_max_num_queries(1):
        client.get("/api/v1/me")
    assert ApiKey.objects.get(prefix=key[3:13]).last_used_at == first_use


def test_keys_are_opaque_tk_strings_with_a_visible_prefix(organization):
    key = make_api_key(organization=organization, scopes="read")
    assert key.startswith("tk_")
    assert ApiKey.objects.filter(prefix=key[3:13]).exists()


def test_unknown_api_path_answers_the_contract_404(client):
    assert_error_body(client.get("/api/v1/no-such-thing"), 404, "not_found")


def test_wrong_method_gets_405_in_the_contract_shape(api_as, read_key):
    assert_error_body(api_as(read_key).delete("/api/v1/me"), 405, "invalid_request")


def test_unexpected_exception_is_a_500_with_request_id_and_no_traceback(api_as, read_key, monkeypatch):
    from organizations import apis

    def explode(self, request):
        raise RuntimeError("secret internals")

    monkeypatch.setattr(apis.KeyInfoApi, "get", explode)
    response = api_as(read_key).get("/api/v1/me", HTTP_X_REQUEST_ID="req-12345678")
    error = assert_error_body(response, 500, "internal")
    assert error["details"]["request_id"] == "req-12345678"
    assert "secret internals" not in response.content.decode()
    assert "Traceback" not in response.content.decode()
    assert response["X-Request-ID"] == "req-12345678"


def test_a_database_outage_is_a_503_with_retry_after(api_as, read_key, monkeypatch):
    from django.db import OperationalError

    from organizations import apis

    def database_gone(self, request):
        raise OperationalError("connection refused")

    monkeypatch.setattr(apis.KeyInfoApi, "get", database_gone)
    response = api_as(read_key).get("/api/v1/me")
    assert_error_body(response, 503, "unavailable")
    assert response["Retry-After"] == "5"


def test_a_body_that_is_not_json_on_a_parsed_endpoint_is_415_in_the_contract_shape(api_as, full_key):
    response = api_as(full_key).post("/api/v1/reports", data="from=yesterday", content_type="text/plain")
    assert_error_body(response, 415, "invalid_request")


def test_malformed_json_on_a_parsed_endpoint_is_invalid_json(api_as, full_key):
    response = api_as(full_key).post("/api/v1/reports", data="{not json", content_type="application/json")
    assert_error_body(response, 400, "invalid_json")


def test_throttling_answers_429_rate_limited_with_retry_after():
    from rest_framework.exceptions import Throttled

    from koala.exceptions import api_exception_handler

    response = api_exception_handler(Throttled(wait=2.2), {})
    assert response.status_code == 429
    assert response.data["error"]["code"] == "rate_limited"
    assert response["Retry-After"] == "3"
