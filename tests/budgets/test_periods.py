"""Budget periods: calendar periods in the organization's zone, half-open, across DST."""
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from budgets.periods import PERIODS, period_after, period_containing, period_label

ZONES = ["UTC", "Europe/Paris", "America/New_York", "America/Santiago", "Australia/Lord_Howe", "Asia/Kolkata",
         "Pacific/Chatham", "America/Havana"]
instants = st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2030, 12, 31),
                        timezones=st.just(UTC))


@settings(max_examples=300, deadline=None)
@given(kind=st.sampled_from(PERIODS), zone=st.sampled_from(ZONES), moment=instants)
def test_every_instant_falls_in_exactly_one_period(kind, zone, moment):
    period = period_containing(kind, moment, zone)
    assert period.start <= moment < period.end
    # Neighbours touch without overlap: the next one starts where this one ends.
    following = period_after(kind, period, zone)
    assert following.start == period.end and following.end > following.start
    before = period_containing(kind, period.start - timedelta(microseconds=1), zone)
    assert before.end == period.start
    # The period is the same whichever of its instants asks.
    assert period_containing(kind, period.start, zone) == period
    assert period_containing(kind, period.end - timedelta(microseconds=1), zone) == period


@settings(max_examples=100, deadline=None)
@given(kind=st.sampled_from(PERIODS), zone=st.sampled_from(ZONES),
       events=st.lists(st.tuples(instants, st.decimals(min_value=0, max_value=1000, places=6)), min_size=1,
                       max_size=60))
def test_period_sums_equal_the_total(kind, zone, events):
    sums: dict = {}
    for moment, cost in events:
        period = period_containing(kind, moment, zone)
        sums[period.start] = sums.get(period.start, Decimal(0)) + cost
    assert sum(sums.values(), Decimal(0)) == sum((cost for _, cost in events), Decimal(0))


def test_days_around_daylight_saving_changes_are_23_and_25_hours():
    spring = period_containing("day", datetime(2026, 3, 29, 12, tzinfo=UTC), "Europe/Paris")
    autumn = period_containing("day", datetime(2026, 10, 25, 12, tzinfo=UTC), "Europe/Paris")
    assert spring.length == timedelta(hours=23) and autumn.length == timedelta(hours=25)
    assert spring.start == datetime(2026, 3, 28, 23, tzinfo=UTC)
    march = period_containing("month", datetime(2026, 3, 15, tzinfo=UTC), "Europe/Paris")
    assert march.length == timedelta(days=31) - timedelta(hours=1)


def test_a_midnight_that_does_not_exist_starts_the_day_after_the_gap():
    # Chile springs forward at 24:00 -> 01:00: 6 September 2026 starts at 01:00 local.
    period = period_containing("day", datetime(2026, 9, 6, 12, tzinfo=UTC), "America/Santiago")
    assert period.start == datetime(2026, 9, 6, 4, tzinfo=UTC)  # 01:00 at -03:00
    assert period.length == timedelta(hours=23)


def test_weeks_start_monday_and_quarters_are_calendar_quarters():
    week = period_containing("week", datetime(2026, 12, 3, 12, tzinfo=UTC), "UTC")
    assert week.first_day == date(2026, 11, 30) and week.end_day == date(2026, 12, 7)
    quarter = period_containing("quarter", datetime(2026, 12, 31, 23, 30, tzinfo=UTC), "UTC")
    assert (quarter.first_day, quarter.end_day) == (date(2026, 10, 1), date(2027, 1, 1))
    # 23:30 UTC on 31 December is already 2027 in Paris.
    assert period_containing("quarter", datetime(2026, 12, 31, 23, 30, tzinfo=UTC), "Europe/Paris").first_day == \
        date(2027, 1, 1)
    assert period_label("quarter", quarter) == "Q4 2026"
    assert period_label("week", week) == "week of 30 November 2026"
