"""Spend from the rollups plus the events past their watermark equals the events'
own sum, for every kind of budget, however much of the data is folded."""
import random
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from time import sleep
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone

from budgets.periods import period_containing
from budgets.selectors import budget_hourly_spend, budget_standings
from organizations.models import Organization
from queries.services import rollup_fold
from queries.rollups import rollup_state
from tests.budgets.helpers import make_budget, spend, utc
from tests.factories import make_organization, make_project

NOW = utc(2026, 12, 15, 12, 30)
DIMENSIONS = {"environment": ["production", "staging"], "provider": ["openai", "anthropic", None],
              "model": ["gpt-4o", "claude", None], "action": ["completion", "summary"]}


def _events(projects, rng: random.Random, count: int) -> list[dict]:
    events = []
    for _ in range(count):
        # Mostly this quarter, some right around the hour the spike check looks at.
        at = NOW - timedelta(minutes=rng.choice([rng.randrange(0, 80 * 24 * 60), rng.randrange(0, 40),
                                                 24 * 60 * rng.randrange(1, 8) - rng.randrange(-40, 40)]))
        events.append({"project": rng.choice(projects), "at": at, "cost": Decimal(rng.randrange(1, 10_000)) / 1000,
                       "tags": tuple(rng.sample(["premium", "batch", "beta"], rng.randrange(0, 3))),
                       **{name: rng.choice(values) for name, values in DIMENSIONS.items()}})
    return events


def _store(events, received_at=None):
    for event in events:
        spend(event["project"], event["at"], event["cost"], environment=event["environment"],
              provider=event["provider"], model=event["model"], action=event["action"], tags=event["tags"],
              received_at=received_at)


def _matches(budget, event) -> bool:
    if budget.project_id is not None and event["project"].pk != budget.project_id:
        return False
    for name, values in budget.filters.items():
        if name == "tags":
            if not set(values) & set(event["tags"]):
                return False
        elif event[name] not in values:
            return False
    return True


def _expected_spend(budget, events) -> Decimal:
    period = period_containing(budget.period, NOW, budget.organization.timezone)
    return sum((event["cost"] for event in events
                if _matches(budget, event) and period.start <= event["at"] < period.end), Decimal(0))


def _expected_hours(budget, events) -> list[Decimal]:
    hour = NOW.replace(minute=0)
    return [sum((event["cost"] for event in events if _matches(budget, event)
                 and hour - timedelta(days=back) <= event["at"] < hour - timedelta(days=back, hours=-1)), Decimal(0))
            for back in range(8)]


def test_rollups_and_tail_equal_the_events(db):
    rng = random.Random(5)
    organization = make_organization(timezone_name="Europe/Paris")
    projects = [make_project(organization=organization), make_project(organization=organization)]
    budgets = [
        make_budget(organization, period="month"),
        make_budget(organization, period="day", project=projects[0]),
        make_budget(organization, period="week", filters={"environment": ["production"]}),
        make_budget(organization, period="quarter", filters={"model": ["gpt-4o"], "provider": ["openai"]}),
        make_budget(organization, period="month", filters={"tags": ["premium", "beta"]}),
        make_budget(organization, period="month", project=projects[1], filters={"action": ["summary"]}),
    ]
    for budget in budgets:
        budget.refresh_from_db()
    folded_events = _events(projects, rng, 300)
    _store(folded_events)
    horizon = timezone.now() + timedelta(seconds=1)
    assert rollup_fold(up_to=horizon) == 300
    assert rollup_state(organization_id=organization.pk)[0] == "Europe/Paris"  # the rollups serve this organization
    tail = _events(projects, rng, 100)
    _store(tail, received_at=horizon + timedelta(seconds=1))  # not folded yet
    everything = folded_events + tail

    def check():
        for budget in budgets:
            budget.organization = Organization.objects.get(pk=organization.pk)
        standings = budget_standings(budgets=budgets, now=NOW)
        assert [standing.spent for standing in standings] == [_expected_spend(budget, everything)
                                                              for budget in budgets]
        hours = budget_hourly_spend(budgets=budgets, hour_start=NOW.replace(minute=0))
        assert [hours[budget.pk] for budget in budgets] == [_expected_hours(budget, everything) for budget in budgets]

    check()
    assert any(standing.spent for standing in budget_standings(budgets=budgets, now=NOW))
    # A time zone change: until the rollups are rebuilt in the new zone, raw events serve.
    Organization.objects.filter(pk=organization.pk).update(timezone="America/New_York")
    check()


def test_the_sweeps_snapshots_plus_newer_events_equal_the_exact_spend(db):
    from budgets.models import BudgetSpendSnapshot
    from budgets.services import budget_standings_for_sweep, budget_update

    rng = random.Random(7)
    organization = make_organization(timezone_name="Asia/Kolkata")
    projects = [make_project(organization=organization), make_project(organization=organization)]
    budgets = [make_budget(organization, period=period, filters=filters)
               for period, filters in [("day", {}), ("week", {"provider": ["openai"]}), ("month", {}),
                                       ("quarter", {"tags": ["beta"]})]]
    first = _events(projects, rng, 200)
    _store(first)
    horizon = timezone.now() + timedelta(seconds=1)
    rollup_fold(up_to=horizon)

    def both(now):
        loaded = [type(budget).objects.select_related("organization").get(pk=budget.pk) for budget in budgets]
        sweep = [standing.spent for standing in budget_standings_for_sweep(budgets=loaded, now=now)]
        exact = [standing.spent for standing in budget_standings(budgets=loaded, now=now)]
        return sweep, exact

    sweep, exact = both(NOW)
    assert sweep == exact == [_expected_spend(budget, first) for budget in budgets]
    computed = dict(BudgetSpendSnapshot.objects.values_list("budget_id", "computed_at"))
    assert len(computed) == 4

    # Newer events: the snapshots stay, the events received since are added.
    later = _events(projects, rng, 50)
    _store(later, received_at=horizon + timedelta(seconds=5))
    sweep, exact = both(NOW + timedelta(seconds=30))
    assert sweep == exact == [_expected_spend(budget, first + later) for budget in budgets]
    assert dict(BudgetSpendSnapshot.objects.values_list("budget_id", "computed_at")) == computed

    # A changed budget gets a new snapshot at once.
    budget_update(budget=budgets[2], api_key=None, changes={"filters": {"environment": ["staging"]}})
    budgets[2].refresh_from_db()
    sweep, exact = both(NOW + timedelta(seconds=60))
    assert sweep == exact and sweep[2] == _expected_spend(budgets[2], first + later)
    assert BudgetSpendSnapshot.objects.get(budget=budgets[2]).computed_at == NOW + timedelta(seconds=60)

    # Old snapshots are recomputed; the next day is a new period for the daily budget.
    sweep, exact = both(NOW + timedelta(hours=1))
    assert sweep == exact
    assert all(at == NOW + timedelta(hours=1) for at in
               BudgetSpendSnapshot.objects.values_list("computed_at", flat=True))
    sweep, exact = both(NOW + timedelta(days=1))
    assert sweep == exact and sweep[0] == 0


@pytest.mark.parametrize("zone, switch", [("America/New_York", date(2026, 3, 8)), ("America/New_York", date(2026, 11, 1)),
                                          ("Europe/Paris", date(2026, 10, 25)), ("Australia/Lord_Howe", date(2026, 4, 5))])
def test_day_and_week_budgets_across_a_dst_switch_add_up_to_every_event(db, zone, switch):
    """The SQL spend (folded rollups by local day plus the raw tail) of each local day
    around a daylight-saving switch holds exactly that day's events, the switch day
    being 23 or 25 hours (Lord Howe: 23.5 or 24.5), and the days add up to the whole."""
    organization = make_organization(timezone_name=zone)
    project = make_project(organization=organization)
    day_budget = make_budget(organization, period="day")
    week_budget = make_budget(organization, period="week")
    local = ZoneInfo(zone)
    first_day = switch - timedelta(days=2)
    start = datetime.combine(first_day, time(0), local).astimezone(UTC)
    end = datetime.combine(switch + timedelta(days=3), time(0), local).astimezone(UTC)
    events, at, cents = [], start, 1
    while at < end:  # every 37 minutes, plus the instants either side of each local midnight
        events.append((at, Decimal(cents) / 100))
        at, cents = at + timedelta(minutes=37), cents + 1
    for offset in range(1, 5):
        midnight = datetime.combine(first_day + timedelta(days=offset), time(0), local).astimezone(UTC)
        events += [(midnight - timedelta(microseconds=1), Decimal("1000")), (midnight, Decimal("2000"))]
    half = len(events) // 2
    for at, cost in events[:half]:
        spend(project, at, cost)
    horizon = timezone.now() + timedelta(seconds=1)
    assert rollup_fold(up_to=horizon) == half
    for at, cost in events[half:]:  # the tail the fold has not reached
        spend(project, at, cost, received_at=horizon + timedelta(seconds=1))

    day_sums, lengths = [], []
    for offset in range(5):
        noon = datetime.combine(first_day + timedelta(days=offset), time(12), local).astimezone(UTC)
        [day, week] = budget_standings(budgets=[day_budget, week_budget], now=noon)
        assert day.spent == sum((cost for at, cost in events if day.period.start <= at < day.period.end), Decimal(0))
        assert week.spent == sum((cost for at, cost in events if week.period.start <= at < week.period.end),
                                 Decimal(0))
        day_sums.append(day.spent)
        lengths.append(day.period.end - day.period.start)
    assert sum(day_sums) == sum(cost for _, cost in events)
    assert lengths[2] != timedelta(hours=24) and all(length == timedelta(hours=24) for length in lengths[:2])


@pytest.mark.django_db(transaction=True)
def test_many_organizations_are_split_over_two_connections_and_add_up_alike(monkeypatch):
    from budgets import spend as spend_module

    rng = random.Random(11)
    budgets, events = [], []
    for number in range(5):
        organization = make_organization(timezone_name=["UTC", "Asia/Kolkata", "America/New_York"][number % 3])
        projects = [make_project(organization=organization)]
        budgets += [make_budget(organization, period="quarter"),
                    make_budget(organization, period="month", filters={"provider": ["openai"]})]
        mine = _events(projects, rng, 60)
        _store(mine)
        events += mine
    sleep(1.2)  # the fold keeps a second behind the newest transaction
    assert rollup_fold() == 300
    loaded = [type(budget).objects.select_related("organization").get(pk=budget.pk) for budget in budgets]
    periods = spend_module.periods_at(loaded, NOW)
    in_one = spend_module.spend_as_of_watermark(loaded, periods)

    threads = []
    real = spend_module._fetch_in_thread
    monkeypatch.setattr(spend_module, "SPLIT_MIN_ORGANIZATIONS", 2)
    monkeypatch.setattr(spend_module, "_fetch_in_thread", lambda *args: threads.append(1) or real(*args))
    split = spend_module.spend_as_of_watermark(loaded, periods)
    assert len(threads) == 2
    assert {pk: spent for pk, (spent, _) in split.items()} == {pk: spent for pk, (spent, _) in in_one.items()} \
        == {budget.pk: _expected_spend(budget, [event for event in events
                                                 if event["project"].organization_id == budget.organization_id])
            for budget in loaded}
