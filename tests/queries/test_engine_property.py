"""Property: for random events and random report specs, the SQL engine answers
exactly what the plain-Python oracle computes."""
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from django.db import transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from events.partitions import ensure_partitions
from organizations.services import api_key_create
from queries.selectors import report_execute
from queries.spec import GROUPS, METRICS, report_spec_parse
from tests.factories import make_organization, make_project
from tests.queries.helpers import insert_events
from tests.queries.oracle import assert_same_report, oracle_report

pytestmark = pytest.mark.django_db

# Two weeks across Europe's (25 Oct) and America's (1 Nov) DST fall-back.
START = datetime(2026, 10, 23, tzinfo=UTC)
SPAN_SECONDS = 14 * 24 * 3600
ZONES = ["UTC", "America/New_York", "Europe/London", "Asia/Kolkata", "Asia/Kathmandu", "Australia/Sydney"]
PROJECTS = ["p1", "p2"]
USERS = [None, "u1", "u2", "U1", "ü"]  # upper case and non-ASCII: byte-wise order
TAGS = ["a", "b", "B", "c"]

amounts = st.decimals(min_value=0, max_value=100, places=4, allow_nan=False, allow_infinity=False)
events = st.lists(st.fixed_dictionaries({
    "project": st.sampled_from(PROJECTS),
    "timestamp": st.integers(0, SPAN_SECONDS).map(lambda seconds: START + timedelta(seconds=seconds)),
    "cost": amounts,
    "charge": st.none() | st.just(Decimal(0)) | amounts,
    "environment": st.sampled_from([None, "production", "staging"]),
    "provider": st.sampled_from([None, "openai", "anthropic"]),
    "application": st.sampled_from([None, "chat", "search"]),
    "action": st.sampled_from(["completion", "embedding"]),
    "user": st.sampled_from(USERS),
    "tags": st.lists(st.sampled_from(TAGS), max_size=3),
    "model": st.sampled_from([None, "m1", "m2"]),
    "latency_ms": st.none() | st.integers(0, 5000),
    "status": st.sampled_from([None, "success", "error"]),
    "metadata": st.dictionaries(st.sampled_from(["region", "tier"]), st.sampled_from(["eu", "us", 1, True]),
                                max_size=2),
}), min_size=5, max_size=40)


def _timestamp(seconds: int, offset_minutes: int) -> str:
    offset = timezone(timedelta(minutes=offset_minutes))
    return (START + timedelta(seconds=seconds)).astimezone(offset).isoformat()


FILTERS = {
    "environment": st.lists(st.sampled_from([None, "production", "staging"]), min_size=1, max_size=2),
    "provider": st.lists(st.sampled_from(["openai", "anthropic"]), min_size=1, max_size=2),
    "user": st.lists(st.sampled_from(USERS), min_size=1, max_size=3),
    "status": st.lists(st.sampled_from([None, "success", "error"]), min_size=1, max_size=2),
    "model": st.lists(st.sampled_from([None, "m1"]), min_size=1, max_size=2),
    "tags": st.lists(st.sampled_from(TAGS), min_size=1, max_size=2),
    "metadata": st.dictionaries(st.sampled_from(["region", "tier"]), st.sampled_from(["eu", 1, True]),
                                min_size=1, max_size=1),
}


@st.composite
def specs(draw):
    # Mostly the whole fortnight, so most specs see most events; sometimes a random slice.
    if draw(st.integers(0, 3)):
        start, end = -86400, SPAN_SECONDS + 86400
    else:
        start = draw(st.integers(-86400, SPAN_SECONDS))
        end = draw(st.integers(start + 1, SPAN_SECONDS + 86400))
    offset = draw(st.sampled_from([0, -300, 330, 345]))
    group_by = draw(st.lists(st.sampled_from(GROUPS), unique=True, max_size=3))
    metrics = draw(st.lists(st.sampled_from(METRICS), unique=True, min_size=1, max_size=6))
    body = {"from": _timestamp(start, offset), "to": _timestamp(end, offset), "group_by": group_by,
            "metrics": metrics, "limit": draw(st.sampled_from([10_000, 1, 3, 7]))}
    if draw(st.booleans()):
        column = draw(st.sampled_from(group_by + metrics))
        body["order_by"] = draw(st.sampled_from(["", "-"])) + column
    if draw(st.integers(0, 3)) == 0:
        body["projects"] = draw(st.lists(st.sampled_from(PROJECTS), unique=True, min_size=1))
    if draw(st.integers(0, 2)) == 0:
        name = draw(st.sampled_from(sorted(FILTERS)))
        body["filters"] = {name: draw(FILTERS[name])}
    return body


@pytest.fixture
def world():
    organization = make_organization(name="Property")
    projects = {slug: make_project(organization=organization, slug=slug) for slug in PROJECTS}
    ensure_partitions({(2026, 10), (2026, 11)})
    p2_key, _ = api_key_create(organization=organization, project=projects["p2"], scopes="read")
    return organization, projects, p2_key


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(rows=events, bodies=st.lists(specs(), min_size=1, max_size=3), zone=st.sampled_from(ZONES),
       project_key=st.booleans())
def test_the_engine_agrees_with_the_oracle(world, rows, bodies, zone, project_key):
    organization, projects, p2_key = world
    organization.timezone = zone  # the engine reads the zone from the organization
    api_key, visible = (p2_key, {"p2"}) if project_key else (None, set(PROJECTS))
    with transaction.atomic():
        insert_events(organization, [{**row, "project": projects[row["project"]]} for row in rows])
        for body in bodies:
            if api_key is not None and body.get("projects") and "p1" in body["projects"]:
                body["projects"] = ["p2"]
            spec = report_spec_parse(body, timezone_name=zone, now=START)
            answer = report_execute(organization=organization, api_key=api_key, spec=spec)
            assert_same_report(answer, oracle_report(rows, spec, timezone_name=zone, visible=visible))
        transaction.set_rollback(True)
