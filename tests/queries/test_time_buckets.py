"""Time buckets in the organization's zone: DST days of 23 and 25 hours, +05:30 and
+05:45 offsets, weeks from Monday; each bucket is its start in RFC 3339 with the
zone's offset at that moment."""
from datetime import timedelta
from decimal import Decimal

import pytest

pytestmark = pytest.mark.django_db

from queries.spec import METRICS, report_spec_parse
from tests.factories import make_api_key, make_organization, make_project
from tests.queries.helpers import send_events, utc
from tests.queries.oracle import assert_same_report, oracle_report


def hourly(start, hours: int) -> list:
    return [start + timedelta(hours=hour, minutes=30) for hour in range(hours)]


def setup_zone(zone: str, moments: list):
    organization = make_organization(timezone_name=zone)
    make_project(organization=organization, slug="app")
    events = [{"project": "app", "timestamp": moment, "cost": Decimal(number + 1) / 100, "charge": None,
               "environment": "production", "provider": None, "application": None, "action": "completion",
               "user": None, "model": None, "status": None, "latency_ms": number, "tags": [], "metadata": {}}
              for number, moment in enumerate(moments)]
    send_events(organization, [{"project": "app", "timestamp": event["timestamp"].isoformat(),
                                "cost": str(event["cost"]), "environment": "production", "action": "completion",
                                "metadata": {"latencyMs": event["latency_ms"]}} for event in events])
    return make_api_key(organization=organization, scopes="read"), events


def run(client, zone, events, body):
    response = client.post("/api/v1/reports", body, format="json")
    assert response.status_code == 200, response.json()
    answer = response.json()
    spec = report_spec_parse(body, timezone_name=zone, now=utc(2026, 12, 1))
    assert_same_report(answer, oracle_report(events, spec, timezone_name=zone, visible={"app"}))
    return answer


def counts(answer) -> dict:
    return {row[0]: row[1] for row in answer["rows"]}


def test_new_york_spring_forward_day_has_23_hours(api_as):
    zone = "America/New_York"
    # Every half past the hour from 7 March 00:30 EST to 9 March 23:30 EDT.
    key, events = setup_zone(zone, hourly(utc(2026, 3, 7, 5), 24 + 23 + 24))
    body = {"from": "2026-03-07T00:00:00-05:00", "to": "2026-03-10T00:00:00-04:00", "group_by": ["day"],
            "metrics": ["count", "cost", "latency_p50"]}
    answer = run(api_as(key), zone, events, body)
    assert counts(answer) == {"2026-03-07T00:00:00-05:00": 24, "2026-03-08T00:00:00-05:00": 23,
                              "2026-03-09T00:00:00-04:00": 24}
    hours = run(api_as(key), zone, events, {"from": "2026-03-08T00:00:00-05:00", "to": "2026-03-09T00:00:00-04:00",
                                            "group_by": ["hour"], "metrics": ["count"]})
    starts = [row[0] for row in hours["rows"]]
    assert len(starts) == 23 and set(counts(hours).values()) == {1}
    assert starts[:4] == ["2026-03-08T00:00:00-05:00", "2026-03-08T01:00:00-05:00", "2026-03-08T03:00:00-04:00",
                          "2026-03-08T04:00:00-04:00"]


def test_new_york_fall_back_day_has_25_hours(api_as):
    zone = "America/New_York"
    key, events = setup_zone(zone, hourly(utc(2026, 10, 31, 4), 24 + 25 + 24))
    body = {"from": "2026-10-31T00:00:00-04:00", "to": "2026-11-03T00:00:00-05:00", "group_by": ["day"],
            "metrics": list(METRICS)}
    answer = run(api_as(key), zone, events, body)
    assert counts(answer) == {"2026-10-31T00:00:00-04:00": 24, "2026-11-01T00:00:00-04:00": 25,
                              "2026-11-02T00:00:00-05:00": 24}
    hours = run(api_as(key), zone, events, {"from": "2026-11-01T00:00:00-04:00", "to": "2026-11-02T00:00:00-05:00",
                                            "group_by": ["hour"], "metrics": ["count"]})
    starts = [row[0] for row in hours["rows"]]
    # The repeated 01:00 is two buckets, one per offset.
    assert len(starts) == 25 and starts[1:3] == ["2026-11-01T01:00:00-04:00", "2026-11-01T01:00:00-05:00"]


def test_weeks_start_on_monday_and_months_on_the_first_at_local_midnight(api_as):
    zone = "America/New_York"
    moments = [utc(2026, 11, 1, 3, 30),  # Sat 31 Oct 23:30 EDT
               utc(2026, 11, 1, 4, 30),  # Sun 1 Nov 00:30 EDT
               utc(2026, 11, 2, 4, 59),  # Sun 1 Nov 23:59 EST
               utc(2026, 11, 2, 5, 0),  # Mon 2 Nov 00:00 EST
               utc(2026, 11, 8, 12)]  # Sun 8 Nov
    key, events = setup_zone(zone, moments)
    body = {"from": "2026-10-01T00:00:00Z", "to": "2026-12-01T00:00:00Z", "group_by": ["week"],
            "metrics": ["count"]}
    assert counts(run(api_as(key), zone, events, body)) == {"2026-10-26T00:00:00-04:00": 3,
                                                            "2026-11-02T00:00:00-05:00": 2}
    body["group_by"] = ["month"]
    assert counts(run(api_as(key), zone, events, body)) == {"2026-10-01T00:00:00-04:00": 1,
                                                            "2026-11-01T00:00:00-04:00": 4}


@pytest.mark.parametrize("zone, before_midnight, at_midnight, day, next_day, hour_of_ten_utc", [
    ("Asia/Kolkata", utc(2026, 11, 2, 18, 29), utc(2026, 11, 2, 18, 30), "2026-11-02T00:00:00+05:30",
     "2026-11-03T00:00:00+05:30", "2026-11-02T15:00:00+05:30"),
    ("Asia/Kathmandu", utc(2026, 11, 2, 18, 14), utc(2026, 11, 2, 18, 15), "2026-11-02T00:00:00+05:45",
     "2026-11-03T00:00:00+05:45", "2026-11-02T15:00:00+05:45"),
])
def test_zones_with_half_and_three_quarter_hour_offsets(api_as, zone, before_midnight, at_midnight, day, next_day,
                                                        hour_of_ten_utc):
    key, events = setup_zone(zone, [before_midnight, at_midnight, utc(2026, 11, 2, 10)])
    body = {"from": "2026-11-01T00:00:00Z", "to": "2026-11-04T00:00:00Z", "group_by": ["day"], "metrics": ["count"]}
    assert counts(run(api_as(key), zone, events, body)) == {day: 2, next_day: 1}
    body["group_by"] = ["hour"]
    assert hour_of_ten_utc in counts(run(api_as(key), zone, events, body))
    hours = run(api_as(key), zone, events, {**body, "group_by": ["hour"]})
    assert all(row[0].endswith(day[-6:]) for row in hours["rows"])


def test_the_window_is_in_instants_whatever_the_zone(api_as):
    zone = "Asia/Kathmandu"
    key, events = setup_zone(zone, [utc(2026, 11, 2, 18, 14), utc(2026, 11, 2, 18, 15)])
    body = {"from": "2026-11-03T00:00:00+05:45", "to": "2026-11-04T00:00:00+05:45", "metrics": ["count"]}
    answer = run(api_as(key), zone, events, body)
    assert answer["totals"]["count"] == 1
    assert (answer["from"], answer["to"]) == ("2026-11-03T00:00:00+05:45", "2026-11-04T00:00:00+05:45")
