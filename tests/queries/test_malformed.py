"""No body, however malformed, gets a 500 from reports or saved queries."""
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from queries.models import SavedQuery

WINDOW = '"from": "2026-11-01T00:00:00Z", "to": "2026-11-02T00:00:00Z"'


@pytest.mark.parametrize("raw, field", [
    ('{%s, "filters": {"user": ["\\ud800"]}}' % WINDOW, "filters.user"),
    ('{%s, "filters": {"tags": ["\\udfff"]}}' % WINDOW, "filters.tags"),
    ('{%s, "filters": {"metadata": {"a": "\\ud800"}}}' % WINDOW, "filters.metadata.a"),
    ('{%s, "filters": {"metadata": {"\\ud800": 1}}}' % WINDOW, "filters.metadata"),
    ('{%s, "filters": {"metadata": {"a": 1e400}}}' % WINDOW, "filters.metadata"),
    ('{%s, "projects": ["\\ud800"]}' % WINDOW, "projects"),
    ('{"from": "\\ud800", "to": "2026-11-02T00:00:00Z"}', "from"),
    ('{%s, "limit": 1e400}' % WINDOW, "limit"),
    ('{%s, "limit": 100000000000000000000000}' % WINDOW, "limit"),
])
def test_unstorable_text_and_huge_numbers_are_400(api_as, full_key, raw, field):
    response = api_as(full_key).generic("POST", "/api/v1/reports", raw.encode(), content_type="application/json")
    assert response.status_code == 400, response.content
    assert response.json()["error"]["details"]["field"] == field


@pytest.mark.parametrize("raw, field", [
    ('{"name": "\\ud800", "query": {"range": "today"}}', "name"),
    ('{"name": "x\\u0000", "query": {"range": "today"}}', "name"),
    ('{"name": "x", "project": "\\ud800", "query": {"range": "today"}}', "project"),
    ('{"name": "x", "description": "\\u0000", "query": {"range": "today"}}', "description"),
    ('{"name": "x", "query": {"range": "today", "filters": {"user": ["\\ud800"]}}}', "query.filters.user"),
])
def test_saved_query_text_postgresql_cannot_store_is_400(api_as, full_key, raw, field):
    response = api_as(full_key).generic("POST", "/api/v1/saved-queries", raw.encode(),
                                        content_type="application/json")
    assert response.status_code == 400 and response.json()["error"]["details"]["field"] == field


any_text = st.text(st.characters(codec=None, categories=None), max_size=8)  # lone surrogates included
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | any_text,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(any_text, children, max_size=3),
    max_leaves=10,
)
report_like = st.fixed_dictionaries({"from": st.just("2026-11-01T00:00:00Z"), "to": st.just("2026-11-08T00:00:00Z")},
                                    optional={name: json_values for name in
                                              ("filters", "group_by", "metrics", "order_by", "limit", "projects",
                                               "range")})


def _post(client, path: str, body) -> int:
    raw = json.dumps(body, allow_nan=True).encode()  # NaN and Infinity too: not JSON, still no 500
    response = client.generic("POST", path, raw, content_type="application/json")
    assert response.status_code < 500, (path, body, response.content)
    assert "error" in response.json() or response.status_code < 300
    return response.status_code


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=report_like | json_values, saved=st.dictionaries(st.sampled_from(["name", "description", "project",
                                                                               "query"]), json_values),
       window=json_values)
def test_arbitrary_json_never_500s(api_as, full_key, organization, body, saved, window):
    client = api_as(full_key)
    _post(client, "/api/v1/reports", body)
    _post(client, "/api/v1/saved-queries", {**saved, "name": "fuzzed"} if isinstance(saved, dict) else saved)
    SavedQuery.objects.filter(organization=organization, name="fuzzed").delete()
    builtin = SavedQuery.objects.filter(organization=organization).first()
    _post(client, f"/api/v1/saved-queries/{builtin.pk}/run", window)
    response = client.generic("PATCH", f"/api/v1/saved-queries/{builtin.pk}", json.dumps(saved).encode(),
                              content_type="application/json")
    assert response.status_code < 500, (saved, response.content)
