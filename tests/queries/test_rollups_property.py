"""Property: for random events and random report specs a rollup can serve, the
rollup answer, the raw SQL answer and the plain-Python oracle agree (percentiles
within the histogram's documented bound)."""
from datetime import date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.db import connection, transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from queries import selectors
from queries.engine import choose_source
from queries.engine.compiler import compile_report
from queries.rollups import rollup_fold
from queries.rollups.histogram import ALPHA
from queries.selectors import report_execute
from queries.spec import report_spec_parse
from tests.queries.helpers import insert_events
from tests.queries.oracle import assert_same_report, oracle_report
from tests.queries.test_engine_property import FILTERS, PROJECTS, START, ZONES, events, world  # noqa: F401

pytestmark = pytest.mark.django_db

TIME = ["day", "week", "month"]
ADDITIVE = ["count", "cost", "charge", "margin", "margin_pct", "uncharged_count", "uncharged_cost", "error_count",
            "error_rate"]
# What each rollup answers: (groups, filters, metrics).
SERVED = {
    "daily": (TIME + ["project", "environment", "provider", "model", "application", "action", "status"],
              ["environment", "provider", "model", "status"], ADDITIVE + ["latency_avg"]),
    "daily_user": (TIME + ["project", "environment", "user"], ["environment", "user"], ADDITIVE + ["users"]),
    # Windows holding a whole week: weeks from the weekly rows, edge days from the daily ones.
    "weekly_user": (["week", "project", "environment", "user"], ["environment", "user"], ADDITIVE + ["users"]),
    "daily_latency": (TIME + ["project", "environment", "provider", "model", "application", "action"],
                      ["environment", "provider", "model"],
                      ["count", "latency_avg", "latency_p50", "latency_p95", "latency_p99"]),
}
PERCENTILES = {"latency_p50", "latency_p95", "latency_p99"}


@st.composite
def day_specs(draw, zone: str):
    """Whole local days of `zone`, within the events' fortnight and a day either side."""
    kind = draw(st.sampled_from(sorted(SERVED)))
    groups, filters, metrics = SERVED[kind]
    tz = ZoneInfo(zone)
    if kind == "weekly_user":
        first = draw(st.integers(-1, 6))
        last = draw(st.integers(first + 7, 16))
    else:
        first = draw(st.integers(-1, 14))
        last = draw(st.integers(first + 1, 16))
    local = START.astimezone(tz).replace(hour=0, minute=0, second=0, microsecond=0, tzinfo=None)
    start = (local + timedelta(days=first)).replace(tzinfo=tz)
    end = (local + timedelta(days=last)).replace(tzinfo=tz)
    body = {
        "from": start.isoformat(), "to": end.isoformat(),
        "group_by": draw(st.lists(st.sampled_from(groups), unique=True, max_size=3)),
        "metrics": draw(st.lists(st.sampled_from(metrics), unique=True, min_size=1, max_size=5)),
        "limit": 10_000,
    }
    orderable = body["group_by"] + [name for name in body["metrics"] if name not in PERCENTILES]
    if orderable and draw(st.booleans()):
        body["order_by"] = draw(st.sampled_from(["", "-"])) + draw(st.sampled_from(orderable))
    if draw(st.integers(0, 3)) == 0:
        body["projects"] = draw(st.lists(st.sampled_from(PROJECTS), unique=True, min_size=1))
    if draw(st.integers(0, 2)) == 0:
        name = draw(st.sampled_from(filters))
        body["filters"] = {name: draw(FILTERS[name])}
    return body


def _within_bound(answer: dict, expected: dict) -> None:
    """Percentile cells within ALPHA of the exact value; then the rest must be equal."""
    columns = answer["columns"]
    for name in PERCENTILES & set(columns):
        index = columns.index(name)
        pairs = [(got[index], want[index]) for got, want in zip(answer["rows"], expected["rows"])]
        pairs.append((answer["totals"][name], expected["totals"][name]))
        for got, want in pairs:
            assert (got is None) == (want is None), (name, got, want)
            if want is not None:
                assert abs(got - want) <= ALPHA * abs(want) + 1e-9, (name, got, want)
                # Equal from here on, so the exact comparison covers everything else.
        for row, want in zip(answer["rows"], expected["rows"]):
            row[index] = want[index]
        answer["totals"][name] = expected["totals"][name]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(rows=events, zone=st.sampled_from(ZONES), data=st.data())
def test_rollups_raw_sql_and_the_oracle_agree(world, rows, zone, data, monkeypatch):  # noqa: F811
    organization, projects, _ = world
    bodies = data.draw(st.lists(day_specs(zone), min_size=1, max_size=3))
    with transaction.atomic():
        organization.timezone = zone
        organization.save(update_fields=["timezone"])
        # Some events folded, the rest received after the fold: reports add the two.
        folded = data.draw(st.integers(0, len(rows)))
        insert_events(organization, [{**row, "project": projects[row["project"]]} for row in rows[:folded]])
        with connection.cursor() as cursor:
            cursor.execute("SELECT now()")
            [received] = cursor.fetchone()
        rollup_fold(up_to=received + timedelta(seconds=1))  # this transaction's events are final to it
        insert_events(organization, [{**row, "project": projects[row["project"]],
                                      "received_at": received + timedelta(seconds=2)} for row in rows[folded:]])
        for body in bodies:
            spec = report_spec_parse(body, timezone_name=zone, now=START)
            assert choose_source(spec, timezone=zone, rollups=True).name.startswith("rollup_"), body
            expected = oracle_report(rows, spec, timezone_name=zone, visible=set(PROJECTS))
            from_rollup = report_execute(organization=organization, api_key=None, spec=spec)
            with monkeypatch.context() as patch:
                patch.setattr(selectors, "rollup_state", lambda organization_id: (None, None))
                from_raw = report_execute(organization=organization, api_key=None, spec=spec)
            assert_same_report(from_raw, expected)
            _within_bound(from_rollup, expected)
            assert_same_report(from_rollup, expected)
        transaction.set_rollback(True)


def test_the_rollups_are_used_only_in_the_organizations_current_zone(world):  # noqa: F811
    organization, projects, _ = world
    insert_events(organization, [{"project": projects["p1"], "timestamp": START + timedelta(hours=2), "cost": "1"}])
    rollup_fold(up_to=datetime.now(START.tzinfo) + timedelta(hours=1))
    body = {"from": "2026-10-23T00:00:00Z", "to": "2026-10-24T00:00:00Z", "group_by": ["day"], "metrics": ["cost"]}
    spec = report_spec_parse(body, timezone_name="UTC", now=START)
    assert selectors.report_scope(organization=organization, api_key=None, spec=spec).rollups
    organization.timezone = "Asia/Kathmandu"
    organization.save(update_fields=["timezone"])
    # Until the fold rebuilds it, the organization's days are UTC days: read the events.
    assert not selectors.report_scope(organization=organization, api_key=None, spec=spec).rollups
    rollup_fold(up_to=datetime.now(START.tzinfo) + timedelta(hours=1))
    assert selectors.report_scope(organization=organization, api_key=None, spec=spec).rollups
    with connection.cursor() as cursor:
        cursor.execute("SELECT day, cost FROM queries_rollup_daily WHERE organization_id = %s", [organization.pk])
        # 02:00 UTC is 07:45 in Kathmandu, the same date; the row was recomputed, not doubled.
        assert [(str(day), str(cost.normalize())) for day, cost in cursor.fetchall()] == [("2026-10-23", "1")]


def test_customer_questions_over_whole_weeks_read_the_weekly_rows_and_only_the_edge_days():
    # 2026-10-21 is a Wednesday: Wed-Sun from days, two whole weeks from weeks, Mon-Tue from days.
    body = {"from": "2026-10-21T00:00:00Z", "to": "2026-11-10T00:00:00Z", "group_by": ["user"],
            "metrics": ["count", "cost", "margin", "users"]}
    spec = report_spec_parse(body, timezone_name="UTC", now=START)
    assert choose_source(spec, timezone="UTC", rollups=True).name == "rollup_weekly_user"
    by_day = report_spec_parse({**body, "group_by": ["day", "user"]}, timezone_name="UTC", now=START)
    assert choose_source(by_day, timezone="UTC", rollups=True).name == "rollup_daily_user"
    short = report_spec_parse({**body, "to": "2026-10-26T00:00:00Z"}, timezone_name="UTC", now=START)
    assert choose_source(short, timezone="UTC", rollups=True).name == "rollup_daily_user"  # no whole week


def test_the_weekly_customer_rows_and_the_edge_days_add_up_to_the_raw_answer(world):  # noqa: F811
    organization, projects, _ = world
    # Mon 26 Oct (first whole week), Sun 1 Nov (its end), Mon 2 Nov, Sat 24 Oct and Tue 3 Nov (edge days).
    stamps = ["2026-10-24T10:00:00+00:00", "2026-10-26T00:00:00+00:00", "2026-10-26T12:00:00+00:00",
              "2026-11-01T23:59:59+00:00", "2026-11-02T00:00:00+00:00", "2026-11-03T05:00:00+00:00"]
    rows = [{"project": "p1", "timestamp": datetime.fromisoformat(stamp), "cost": Decimal(index + 1),
             "charge": None, "user": "u1" if index % 2 else "u2"} for index, stamp in enumerate(stamps)]
    insert_events(organization, [{**row, "project": projects["p1"]} for row in rows])
    with connection.cursor() as cursor:
        cursor.execute("SELECT now()")
        [received] = cursor.fetchone()
    rollup_fold(up_to=received + timedelta(seconds=1))
    body = {"from": "2026-10-24T00:00:00Z", "to": "2026-11-04T00:00:00Z", "group_by": ["user"],
            "metrics": ["count", "cost", "users"]}
    spec = report_spec_parse(body, timezone_name="UTC", now=START)
    assert choose_source(spec, timezone="UTC", rollups=True).name == "rollup_weekly_user"
    answer = report_execute(organization=organization, api_key=None, spec=spec)
    assert answer["rows"] == [["u1", 3, "12", 1], ["u2", 3, "9", 1]]
    assert answer["totals"]["count"] == 6


def test_a_partial_week_is_its_whole_week_less_the_days_outside_the_window(world):  # noqa: F811
    organization, projects, _ = world
    # [Tue 20 Oct, Sun 8 Nov): six days of the week of 19 Oct, the whole week of 26 Oct,
    # six days of the week of 2 Nov. Each edge is read as its week less one day.
    spent = [("u1", "2026-10-19T10:00:00", 1), ("u1", "2026-10-20T00:00:00", 2), ("u2", "2026-10-19T23:59:59", 4),
             ("u1", "2026-10-28T08:00:00", 8), ("u3", "2026-11-08T12:00:00", 16), ("u3", "2026-11-07T23:00:00", 32),
             ("u2", "2026-11-08T00:00:00", 64)]
    insert_events(organization, [{"project": projects["p1"], "timestamp": datetime.fromisoformat(stamp + "+00:00"),
                                  "cost": Decimal(cost), "charge": None, "user": user} for user, stamp, cost in spent])
    with connection.cursor() as cursor:
        cursor.execute("SELECT now()")
        [received] = cursor.fetchone()
    rollup_fold(up_to=received + timedelta(seconds=1))
    body = {"from": "2026-10-20T00:00:00Z", "to": "2026-11-08T00:00:00Z", "group_by": ["week", "user"],
            "metrics": ["count", "cost"], "order_by": "week"}
    spec = report_spec_parse(body, timezone_name="UTC", now=START)
    scope = selectors.report_scope(organization=organization, api_key=None, spec=spec)
    params = compile_report(spec, scope).params
    assert (params["weeks_from"], params["weeks_to"]) == (date(2026, 10, 19), date(2026, 11, 9))  # both edges subtract
    answer = report_execute(organization=organization, api_key=None, spec=spec)
    # u2 spent only on the days left out: no row, not a row of zeros.
    assert answer["rows"] == [["2026-10-19T00:00:00+00:00", "u1", 1, "2"], ["2026-10-26T00:00:00+00:00", "u1", 1, "8"],
                              ["2026-11-02T00:00:00+00:00", "u3", 1, "32"]]
    assert answer["totals"]["count"] == 3 and answer["totals"]["cost"] == "42"
    # Distinct users cannot be subtracted: the edge days are read as days.
    with_users = report_spec_parse({**body, "group_by": ["user"], "metrics": ["users", "cost"], "order_by": "user"},
                                   timezone_name="UTC", now=START)
    assert compile_report(with_users, scope).params["weeks_from"] == date(2026, 10, 26)
    answer = report_execute(organization=organization, api_key=None, spec=with_users)
    assert answer["rows"] == [["u1", 1, "10"], ["u3", 1, "32"]] and answer["totals"]["users"] == 2
