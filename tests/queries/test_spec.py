"""The report body: every mistake is a 400 sentence naming the field; ranges in the organization's zone."""
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from koala.exceptions import InvalidRequest
from queries.spec import DEFAULT_METRICS, GROUPS, METRICS, report_spec_parse, resolve_range, run_window_parse

NOW = datetime(2026, 11, 18, 15, 30, tzinfo=UTC)
WINDOW = {"from": "2026-11-01T00:00:00Z", "to": "2026-12-01T00:00:00Z"}


def parse(body, **kwargs):
    kwargs.setdefault("timezone_name", "UTC")
    kwargs.setdefault("now", NOW)
    return report_spec_parse(body, **kwargs)


def refused(body, **kwargs) -> str:
    with pytest.raises(InvalidRequest) as raised:
        parse(body, **kwargs)
    return raised.value.message


def test_defaults():
    spec = parse(WINDOW)
    assert (spec.start, spec.end) == (datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC))
    assert spec.metrics == DEFAULT_METRICS == ("count", "cost", "charge", "margin", "margin_pct")
    assert spec.group_by == () and spec.filters == {} and spec.projects is None
    assert (spec.order_by, spec.limit) == (None, 100)


def test_the_contract_example_parses():
    spec = parse({
        **WINDOW, "projects": ["assistant-api"],
        "filters": {"environment": ["production"], "provider": ["openai"], "application": [], "action": [],
                    "model": [], "user": [], "status": ["error"], "tags": ["premium"], "metadata": {"region": "eu"}},
        "group_by": ["day", "provider"], "metrics": ["count", "cost", "charge", "margin", "margin_pct"],
        "order_by": "-cost", "limit": 100,
    })
    assert spec.filters == {"environment": ("production",), "provider": ("openai",), "status": ("error",),
                            "tags": ("premium",), "metadata": {"region": "eu"}}
    assert (spec.order_by, spec.descending) == ("cost", True)
    assert spec.columns == ("day", "provider", "count", "cost", "charge", "margin", "margin_pct")


@pytest.mark.parametrize("value, expected", [
    ("2026-11-01T00:00:00Z", datetime(2026, 11, 1, tzinfo=UTC)),
    ("2026-11-01T00:00:00", datetime(2026, 11, 1, tzinfo=UTC)),  # no offset means UTC
    ("2026-11-01T05:30:00+05:30", datetime(2026, 11, 1, tzinfo=UTC)),
    ("2026-10-31T20:00:00.5-04:00", datetime(2026, 11, 1, 0, 0, 0, 500000, tzinfo=UTC)),
    ("2026-11-01t00:00:00z", datetime(2026, 11, 1, tzinfo=UTC)),
])
def test_timestamps_are_rfc3339(value, expected):
    assert parse({"from": value, "to": "2026-12-01T00:00:00Z"}).start == expected


@pytest.mark.parametrize("body, field, fragment", [
    ({}, "from", "is required"),
    ({"from": "2026-11-01T00:00:00Z"}, "to", "is required"),
    ({**WINDOW, "from": "2026-11-01"}, "from", "not an RFC 3339 timestamp"),
    ({**WINDOW, "from": "yesterday"}, "from", "not an RFC 3339 timestamp"),
    ({**WINDOW, "from": 1730419200}, "from", "not a number"),
    ({**WINDOW, "to": "2026-13-01T00:00:00Z"}, "to", "not a valid date"),
    ({**WINDOW, "to": "2026-11-01T00:00:00Z"}, "to", "must be after from"),
    ({**WINDOW, "to": "2026-10-01T00:00:00Z"}, "to", "half-open"),
    ({"from": "2025-01-01T00:00:00Z", "to": "2026-12-01T00:00:00Z"}, "to", "at most 400"),
    ({**WINDOW, "from": "1969-12-31T00:00:00Z"}, "from", "1970 to 2999"),
    ({**WINDOW, "range": "today"}, "range", "only for saved queries"),
    ({**WINDOW, "group-by": ["day"]}, "group-by", "did you mean 'group_by'"),
    ({**WINDOW, "projects": "assistant-api"}, "projects", "must be a list of project slugs"),
    ({**WINDOW, "projects": [7]}, "projects", "only strings"),
    ({**WINDOW, "filters": ["production"]}, "filters", "must be an object of filters"),
    ({**WINDOW, "filters": {"enviroment": ["production"]}}, "filters.enviroment", "did you mean 'environment'"),
    ({**WINDOW, "filters": {"project": ["a"]}}, "filters.project", "top-level 'projects'"),
    ({**WINDOW, "filters": {"environment": "production"}}, "filters.environment", "must be a list of strings"),
    ({**WINDOW, "filters": {"provider": [1]}}, "filters.provider", "only strings, not a number"),
    ({**WINDOW, "filters": {"user": [""]}}, "filters.user", "1-200 characters"),
    ({**WINDOW, "filters": {"model": ["gpt\x00"]}}, "filters.model", "NUL"),
    ({**WINDOW, "filters": {"tags": [None]}}, "filters.tags", "only strings, not null"),
    ({**WINDOW, "filters": {"metadata": ["eu"]}}, "filters.metadata", "must be an object"),
    ({**WINDOW, "filters": {"metadata": {"a": {"b": {"c": {"d": {"e": 1}}}}}}}, "filters.metadata", "nested"),
    ({**WINDOW, "group_by": ["day", "provider", "model", "user"]}, "group_by", "at most 3"),
    ({**WINDOW, "group_by": ["weekday"]}, "group_by", "'weekday' is not a group"),
    ({**WINDOW, "group_by": ["providers"]}, "group_by", "did you mean 'provider'"),
    ({**WINDOW, "group_by": ["day", "day"]}, "group_by", "twice"),
    ({**WINDOW, "group_by": {"day": 1}}, "group_by", "must be a list of group names"),
    ({**WINDOW, "metrics": ["cost_usd"]}, "metrics", "'cost_usd' is not a metric"),
    ({**WINDOW, "metrics": []}, "metrics", "at least one metric"),
    ({**WINDOW, "metrics": ["count", "count"]}, "metrics", "twice"),
    ({**WINDOW, "order_by": "-latency_p95"}, "order_by", "not among the selected columns"),
    ({**WINDOW, "order_by": "day"}, "order_by", "not among the selected columns"),
    ({**WINDOW, "order_by": ["-cost"]}, "order_by", "must be a column name"),
    ({**WINDOW, "limit": 0}, "limit", "from 1 to 10000"),
    ({**WINDOW, "limit": 10001}, "limit", "from 1 to 10000"),
    ({**WINDOW, "limit": "10"}, "limit", "from 1 to 10000"),
    ({**WINDOW, "limit": 2.5}, "limit", "from 1 to 10000"),
    ({**WINDOW, "limit": True}, "limit", "from 1 to 10000"),
])
def test_mistakes_are_named(body, field, fragment):
    message = refused(body)
    assert message.startswith(f"{field}: ") and fragment in message, message


def test_messages_list_what_is_allowed():
    assert all(name in refused({**WINDOW, "metrics": ["nope"]}) for name in METRICS)
    assert all(name in refused({**WINDOW, "group_by": ["nope"]}) for name in GROUPS)


def test_lists_and_nulls_in_filters():
    spec = parse({**WINDOW, "filters": {"user": ["u1", None, "u1"], "model": [], "tags": ["a", "a"]}})
    assert spec.filters == {"user": ("u1", None), "tags": ("a",)}  # [] is no filter, repeats collapse


def test_order_by_a_group_or_metric_ascending_or_descending():
    spec = parse({**WINDOW, "group_by": ["provider"], "order_by": "provider"})
    assert (spec.order_by, spec.descending) == ("provider", False)
    spec = parse({**WINDOW, "metrics": ["latency_p95"], "order_by": "-latency_p95"})
    assert (spec.order_by, spec.descending) == ("latency_p95", True)


def test_a_saved_query_may_give_a_range_and_its_messages_say_query():
    spec = parse({"range": "last_7_days"}, allow_range=True, prefix="query.")
    assert (spec.start, spec.end) == (datetime(2026, 11, 12, tzinfo=UTC), datetime(2026, 11, 19, tzinfo=UTC))
    message = refused({"range": "last_week"}, allow_range=True, prefix="query.")
    assert message.startswith("query.range: 'last_week' is not a range") and "last_7_days" in message
    assert refused({**WINDOW, "range": "today"}, allow_range=True).startswith("range: give either range or")
    assert "or a range" in refused({}, allow_range=True)


def test_a_run_window_overrides_the_saved_range():
    spec = parse({"range": "last_7_days"}, allow_range=True, window={"from": "2026-01-01T00:00:00Z",
                                                                     "to": "2026-01-02T00:00:00Z"})
    assert (spec.start, spec.end) == (datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC))
    spec = parse(WINDOW, allow_range=True, window={"range": "today"})
    assert (spec.start, spec.end) == (datetime(2026, 11, 18, tzinfo=UTC), datetime(2026, 11, 19, tzinfo=UTC))
    assert refused({"range": "last_7_days"}, allow_range=True,
                   window={"from": "2026-12-01T00:00:00Z"}).startswith("to: must be after from")
    with pytest.raises(InvalidRequest, match="limit: is not accepted"):
        run_window_parse({"limit": 5})
    with pytest.raises(InvalidRequest, match="either range or from"):
        run_window_parse({"range": "today", "from": "2026-01-01T00:00:00Z"})


def local(text: str) -> datetime:
    return datetime.fromisoformat(text)


@pytest.mark.parametrize("zone, now, name, start, end", [
    ("UTC", "2026-11-18T15:30:00+00:00", "today", "2026-11-18T00:00:00+00:00", "2026-11-19T00:00:00+00:00"),
    # 15:30 UTC is already the 19th in Kolkata.
    ("Asia/Kolkata", "2026-11-18T20:00:00+00:00", "today", "2026-11-19T00:00:00+05:30", "2026-11-20T00:00:00+05:30"),
    ("America/New_York", "2026-11-18T15:30:00+00:00", "last_24_hours",
     "2026-11-17T15:30:00+00:00", "2026-11-18T15:30:00+00:00"),
    # Whole local days, today included: across the fall-back the 7 days are 7 x 24 h + 1 h.
    ("America/New_York", "2026-11-05T12:00:00-05:00", "last_7_days",
     "2026-10-30T00:00:00-04:00", "2026-11-06T00:00:00-05:00"),
    ("America/New_York", "2026-11-18T15:30:00+00:00", "last_30_days",
     "2026-10-20T00:00:00-04:00", "2026-11-19T00:00:00-05:00"),
    ("Asia/Kathmandu", "2026-11-18T20:00:00+00:00", "last_7_days",  # already the 19th there
     "2026-11-13T00:00:00+05:45", "2026-11-20T00:00:00+05:45"),
    # The month starts at local midnight, and December's end is January's start.
    ("America/New_York", "2026-12-31T23:30:00-05:00", "this_month",
     "2026-12-01T00:00:00-05:00", "2027-01-01T00:00:00-05:00"),
    ("America/New_York", "2026-11-01T03:30:00+00:00", "this_month",  # still 31 October in New York
     "2026-10-01T00:00:00-04:00", "2026-11-01T00:00:00-04:00"),
    ("Asia/Kathmandu", "2026-01-15T00:00:00+05:45", "previous_month",
     "2025-12-01T00:00:00+05:45", "2026-01-01T00:00:00+05:45"),
    ("America/New_York", "2026-03-20T12:00:00-04:00", "previous_month",
     "2026-02-01T00:00:00-05:00", "2026-03-01T00:00:00-05:00"),
])
def test_relative_ranges_in_the_organization_zone(zone, now, name, start, end):
    from zoneinfo import ZoneInfo

    got = resolve_range(name, tz=ZoneInfo(zone), now=local(now))
    assert got == (local(start), local(end))
    assert all(moment.tzinfo is UTC for moment in got)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=12,
)
bodies = st.dictionaries(
    st.sampled_from(["from", "to", "range", "projects", "filters", "group_by", "metrics", "order_by", "limit",
                     "other"]),
    json_values | st.sampled_from(["2026-11-01T00:00:00Z", "day", "-cost", "tag", ["cost"], ["tag", "day"]]),
    max_size=8,
)


@settings(max_examples=300, deadline=None)
@given(body=bodies | json_values, allow_range=st.booleans())
def test_any_body_is_a_spec_or_a_sentence(body, allow_range):
    try:
        spec = parse(body, allow_range=allow_range)
    except InvalidRequest as error:
        assert error.message.endswith(".") and ": " in error.message
    else:
        assert spec.start < spec.end and 1 <= spec.limit <= 10_000
