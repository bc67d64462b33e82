"""Threshold, forecast and spike alerts: claimed once per budget, period and threshold."""
from datetime import timedelta
from decimal import Decimal

from django.core import mail

from budgets.emails import budget_alert_send
from budgets.models import BudgetAlert
from budgets.services import budgets_evaluate_all, spike_verdict
from tests.budgets.helpers import make_budget, spend, utc
from tests.factories import make_project

NOW = utc(2026, 12, 15, 12)


def evaluate_and_send(now=NOW, organization_ids=None) -> list[str]:
    """Runs an evaluation and sends what it claimed; returns the subjects sent."""
    before = len(mail.outbox)
    for alert_id in budgets_evaluate_all(now=now, organization_ids=organization_ids):
        budget_alert_send(alert_id=alert_id, now=now)
    return [message.subject for message in mail.outbox[before:]]


def test_one_email_per_threshold_and_nothing_more_after_a_crossing(project):
    budget = make_budget(project.organization, name="Prod spend", amount="10", period="month")
    spend(project, NOW - timedelta(days=3), "4.99")
    assert evaluate_and_send() == []
    spend(project, NOW - timedelta(hours=1), "0.01")  # exactly 50%: reaches (>=)
    assert evaluate_and_send() == ["Budget 'Prod spend' reached 50% (50% spent) for December 2026"]
    spend(project, NOW - timedelta(hours=1), "3.5")
    assert evaluate_and_send() == ["Budget 'Prod spend' reached 80% (85% spent) for December 2026"]
    spend(project, NOW - timedelta(minutes=5), "0.01", count=1000)
    assert evaluate_and_send() == ["Budget 'Prod spend' reached 100% (185% spent) for December 2026"]
    for _ in range(3):
        spend(project, NOW - timedelta(minutes=1), "1", count=10)
        assert evaluate_and_send() == []
    alerts = BudgetAlert.objects.filter(budget=budget).order_by("threshold")
    assert [(alert.threshold, alert.sent_at is not None) for alert in alerts] == [(50, True), (80, True),
                                                                                  (100, True)]


def test_one_event_crossing_several_thresholds_sends_one_email_each(project):
    make_budget(project.organization, name="Prod spend", amount="10")
    spend(project, NOW - timedelta(hours=2), "12")
    subjects = evaluate_and_send()
    assert sorted(subjects) == sorted(f"Budget 'Prod spend' reached {threshold}% (120% spent) for December 2026"
                                      for threshold in (50, 80, 100))


def test_thresholds_rearm_in_the_next_period(project):
    make_budget(project.organization, name="Daily", amount="1", period="day", thresholds=[100])
    spend(project, NOW - timedelta(hours=1), "1")
    assert len(evaluate_and_send()) == 1
    assert evaluate_and_send(NOW + timedelta(hours=6)) == []
    tomorrow = NOW + timedelta(days=1)
    assert evaluate_and_send(tomorrow) == []  # a new period starts from nothing
    spend(project, tomorrow - timedelta(hours=1), "2")
    assert evaluate_and_send(tomorrow) == ["Budget 'Daily' reached 100% (200% spent) for Wednesday 16 December 2026"]


def test_periods_follow_the_organizations_time_zone(db):
    from tests.factories import make_organization

    organization = make_organization(timezone_name="Pacific/Auckland")  # UTC+13 in December
    project = make_project(organization=organization)
    make_budget(organization, name="Kiwi", amount="1", period="month", thresholds=[100])
    # 30 November 11:30 UTC is 1 December 00:30 in Auckland: December's money there.
    spend(project, utc(2026, 11, 30, 11, 30), "1")
    spend(project, utc(2026, 11, 30, 10, 30), "5")  # still November in Auckland
    assert evaluate_and_send(utc(2026, 12, 2)) == ["Budget 'Kiwi' reached 100% (100% spent) for December 2026"]


def test_another_organizations_events_never_count(project, other_project):
    mine = make_budget(project.organization, name="Mine", amount="10")
    theirs = make_budget(other_project.organization, name="Theirs", amount="10")
    spend(other_project, NOW - timedelta(hours=1), "100")  # same project slug, other organization
    assert evaluate_and_send() == ["Budget 'Theirs' reached 50% (1000% spent) for December 2026",
                                   "Budget 'Theirs' reached 80% (1000% spent) for December 2026",
                                   "Budget 'Theirs' reached 100% (1000% spent) for December 2026"]
    assert not BudgetAlert.objects.filter(budget=mine).exists()
    assert BudgetAlert.objects.filter(budget=theirs, organization=other_project.organization).count() == 3
    # Evaluating only this organization touches nothing of the other.
    spend(project, NOW - timedelta(hours=1), "6")
    assert evaluate_and_send(organization_ids=[project.organization_id]) == [
        "Budget 'Mine' reached 50% (60% spent) for December 2026"]


def test_project_and_filters_narrow_the_spend(project):
    organization = project.organization
    search = make_project(organization=organization, slug="search-api")
    make_budget(organization, name="Assistant prod openai", amount="10", project=project, thresholds=[100],
                filters={"environment": ["production"], "provider": ["openai", "anthropic"]})
    make_budget(organization, name="Premium", amount="10", thresholds=[100], filters={"tags": ["premium"]})
    make_budget(organization, name="Mini", amount="10", thresholds=[100], filters={"model": ["gpt-4o-mini"]})
    at = NOW - timedelta(hours=1)
    spend(search, at, "20", tags=("premium",), model="gpt-4o")  # other project
    spend(project, at, "20", environment="staging", model="gpt-4o")
    spend(project, at, "20", provider="google", model="gpt-4o")
    spend(project, at, "20", provider=None, model="gpt-4o")  # a missing value never matches a filter
    assert evaluate_and_send() == ["Budget 'Premium' reached 100% (200% spent) for December 2026"]
    spend(project, at, "9.99", provider="anthropic", model="gpt-4o")
    assert evaluate_and_send() == []
    spend(project, at, "0.01", model="gpt-4o-mini")
    assert evaluate_and_send() == ["Budget 'Assistant prod openai' reached 100% (100% spent) for December 2026"]
    spend(project, at, "9.99", model="gpt-4o-mini", environment="staging")
    assert evaluate_and_send() == ["Budget 'Mini' reached 100% (100% spent) for December 2026"]


def test_inactive_budgets_are_not_evaluated(project):
    make_budget(project.organization, amount="1", active=False)
    spend(project, NOW - timedelta(hours=1), "5")
    assert evaluate_and_send() == []


def test_forecast_warns_once_before_the_amount_is_reached(project):
    make_budget(project.organization, name="Monthly", amount="100", period="month", thresholds=[100],
                notify_forecast=True)
    # 15 December 12:00 is 14.5 days of 31 in: 60 spent forecasts 128.28.
    spend(project, utc(2026, 12, 2), "60")
    subjects = evaluate_and_send()
    assert subjects == ["Budget 'Monthly' is forecast to overrun (60% spent so far) for December 2026"]
    text = mail.outbox[-1].body
    assert "Forecast: 128.28 USD by the end of the period" in text
    # 100 / (60 / 14.5 days) = 24.17 days after 1 December 00:00: 25 December about 04:00.
    assert "the amount is reached Friday 25 December 2026, 04:00" in text
    spend(project, utc(2026, 12, 3), "10")
    assert evaluate_and_send(NOW + timedelta(hours=1)) == []  # once per period
    spend(project, utc(2026, 12, 4), "40")
    assert evaluate_and_send(NOW + timedelta(hours=2)) == [
        "Budget 'Monthly' reached 100% (110% spent) for December 2026"]


def test_no_forecast_in_the_first_tenth_of_a_period_nor_after_the_amount(project):
    make_budget(project.organization, name="Monthly", amount="100", thresholds=[100], notify_forecast=True)
    spend(project, utc(2026, 12, 1, 1), "5")
    assert evaluate_and_send(utc(2026, 12, 2)) == []  # 5 in one day would be 155: too early to say


def test_spike_rule():
    usual = [Decimal(2)] * 7
    assert spike_verdict(this_hour=Decimal("6.01"), previous=usual, amount=Decimal(100)) == Decimal(2)
    assert spike_verdict(this_hour=Decimal("6"), previous=usual, amount=Decimal(100)) is None  # not above 3x
    assert spike_verdict(this_hour=Decimal("0.9"), previous=[Decimal(0)] * 7, amount=Decimal(100)) is None
    assert spike_verdict(this_hour=Decimal("1.1"), previous=[Decimal(0)] * 7, amount=Decimal(100)) == 0


def test_spike_alert_once_per_budget_and_hour(project):
    make_budget(project.organization, name="Spiky", amount="1000", thresholds=[100], notify_spike=True)
    hour = NOW.replace(minute=0)
    for days_back in range(1, 8):
        spend(project, hour - timedelta(days=days_back) + timedelta(minutes=10), "5")
    spend(project, hour + timedelta(minutes=1), "14")
    assert evaluate_and_send(NOW + timedelta(minutes=5)) == []  # 14 is not above 3 x 5
    spend(project, hour + timedelta(minutes=2), "2")
    subjects = evaluate_and_send(NOW + timedelta(minutes=6))
    assert subjects == ["Budget 'Spiky': spending spike (5% spent) for December 2026"]
    assert "This hour: 16.00 USD (usually 5.00 USD in this hour)" in mail.outbox[-1].body
    spend(project, hour + timedelta(minutes=3), "50")
    assert evaluate_and_send(NOW + timedelta(minutes=7)) == []  # once per hour
    spend(project, hour + timedelta(hours=1, minutes=1), "50")
    assert len(evaluate_and_send(NOW + timedelta(hours=1, minutes=5))) == 1  # the next hour is another


def test_the_email_shows_spend_contributors_and_links(project, settings):
    settings.SITE_URL = "https://koala.example"
    budget = make_budget(project.organization, name="Prod spend", amount="10", thresholds=[100],
                         recipients=["ops@acme.test", "cfo@acme.test"])
    at = NOW - timedelta(hours=1)
    spend(project, at, "7", provider="anthropic", model="claude-sonnet", user="cust_big")
    spend(project, at, "4", provider="openai", model="gpt-4o", user="cust_small")
    assert len(evaluate_and_send()) == 1
    message = mail.outbox[-1]
    assert message.to == ["ops@acme.test", "cfo@acme.test"]
    alert = BudgetAlert.objects.get(budget=budget)
    assert message.extra_headers["Message-ID"] == alert.message_id
    text = message.body
    assert "Spent:    11.00 USD of 10.00 USD (110%)" in text
    assert "anthropic: 7.00 USD" in text and "openai: 4.00 USD" in text
    assert "claude-sonnet: 7.00 USD" in text and "cust_big: 7.00 USD" in text
    assert "Assistant Api: 11.00 USD" in text
    assert f"https://koala.example/admin/budgets/budget/{budget.pk}/change/" in text
    assert f"Dashboard: https://koala.example/o/{project.organization.slug}/budgets/" in text
    html, mimetype = message.alternatives[0]
    assert mimetype == "text/html" and "<strong>11.00 USD</strong>" in html and f'href="https://koala.example/o/{project.organization.slug}/budgets/"' in html
