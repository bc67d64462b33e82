"""Sending through a real SMTP server (aiosmtpd): retries with backoff, never marked sent
on failure, a deterministic Message-ID, recipients by role, and `evaluate_budgets`."""
import json
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command

from budgets.emails import MAX_ATTEMPTS, alert_message, alert_recipients, budget_alert_send, retry_delay
from budgets.models import BudgetAlert
from budgets.services import budgets_evaluate_all
from organizations.models import Membership
from tests.budgets.helpers import make_budget, spend, utc
from tests.budgets.realparts import SmtpServer
from tests.factories import make_member

NOW = utc(2026, 12, 15, 12)


@pytest.fixture
def smtp(settings):
    with SmtpServer() as server:
        settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
        settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", server.port
        yield server


@pytest.fixture
def alert(project) -> BudgetAlert:
    make_budget(project.organization, name="Prod spend", amount="10", thresholds=[100])
    spend(project, NOW - timedelta(hours=1), "10")
    [alert_id] = budgets_evaluate_all(now=NOW)
    return BudgetAlert.objects.get(pk=alert_id)


def test_a_failed_send_is_retried_with_backoff_and_never_marked_sent(alert, smtp):
    smtp.mailbox.refuse = 3
    moment = NOW
    for attempt in range(1, 4):
        assert budget_alert_send(alert_id=alert.pk, now=moment) == "failed"
        alert.refresh_from_db()
        assert alert.sent_at is None and alert.attempts == attempt and "451" in alert.last_error
        assert alert.next_attempt_at == moment + retry_delay(attempt)
        # Not due before its time.
        assert budget_alert_send(alert_id=alert.pk, now=alert.next_attempt_at - timedelta(seconds=1)) == "skipped"
        moment = alert.next_attempt_at
    assert [retry_delay(n).total_seconds() for n in (1, 2, 3, 4)] == [30, 60, 120, 240]
    assert budget_alert_send(alert_id=alert.pk, now=moment) == "sent"
    assert budget_alert_send(alert_id=alert.pk, now=moment + timedelta(days=1)) == "skipped"
    assert smtp.mailbox.refused == 3 and len(smtp.mailbox.messages) == 1
    alert.refresh_from_db()
    assert alert.sent_at is not None and alert.attempts == 4


def test_gives_up_after_the_last_attempt(alert, smtp):
    smtp.mailbox.refuse = MAX_ATTEMPTS + 5
    moment = NOW
    for _ in range(MAX_ATTEMPTS):
        assert budget_alert_send(alert_id=alert.pk, now=moment) == "failed"
        alert.refresh_from_db()
        moment = alert.next_attempt_at or moment
    assert alert.next_attempt_at is None and alert.sent_at is None
    assert budget_alert_send(alert_id=alert.pk, now=moment + timedelta(days=1)) == "skipped"
    assert smtp.mailbox.refused == MAX_ATTEMPTS


def test_a_crash_after_the_server_accepted_repeats_the_email_once_with_the_same_message_id(alert, smtp):
    # The worker sent, then died before committing sent_at: the row is still unsent.
    alert_message(alert=alert, recipients=alert_recipients(alert=alert)).send()
    assert budget_alert_send(alert_id=alert.pk, now=NOW) == "sent"
    assert budget_alert_send(alert_id=alert.pk, now=NOW) == "skipped"
    first, second = smtp.mailbox.messages
    assert first["Message-ID"] == second["Message-ID"] == alert.message_id


def test_recipients_are_addresses_and_members_by_role(project, smtp):
    organization = project.organization
    make_member(organization=organization, role=Membership.Role.OWNER, email="Owner@Acme.test")
    make_member(organization=organization, role=Membership.Role.ADMIN, email="admin@acme.test")
    make_member(organization=organization, role=Membership.Role.VIEWER, email="viewer@acme.test")
    make_budget(organization, amount="1", thresholds=[100], recipients=["ops@acme.test", "owner@acme.test"],
                recipient_roles=["owner", "admin"])
    spend(project, NOW - timedelta(hours=1), "1")
    [alert_id] = budgets_evaluate_all(now=NOW)
    assert budget_alert_send(alert_id=alert_id, now=NOW) == "sent"
    [message] = smtp.mailbox.messages
    assert sorted(address.strip() for address in message["To"].split(",")) == [
        "admin@acme.test", "ops@acme.test", "owner@acme.test"]
    assert message.is_multipart()
    assert {part.get_content_type() for part in message.walk()} >= {"text/plain", "text/html"}


def test_a_budget_without_recipients_sends_nothing_and_says_so(project, smtp):
    make_budget(project.organization, amount="1", thresholds=[100], recipients=[])
    spend(project, NOW - timedelta(hours=1), "1")
    [alert_id] = budgets_evaluate_all(now=NOW)
    assert budget_alert_send(alert_id=alert_id, now=NOW) == "no_recipients"
    assert smtp.mailbox.messages == []
    assert BudgetAlert.objects.get(pk=alert_id).last_error == "The budget has no recipients."


def test_evaluate_budgets_sends_before_it_exits(project, other_project, smtp):
    from django.utils import timezone

    make_budget(project.organization, name="Prod spend", amount="10", thresholds=[50, 100])
    make_budget(other_project.organization, name="Theirs", amount="10", thresholds=[50])
    spend(project, timezone.now() - timedelta(seconds=30), "6")
    out = StringIO()
    call_command("evaluate_budgets", "--json", stdout=out)
    assert json.loads(out.getvalue()) == {"claimed": 1, "sent": 1, "failed": 0, "skipped": 0, "no_recipients": 0}
    assert [subject.startswith("Budget 'Prod spend' reached 50%") for subject in smtp.mailbox.subjects()] == [True]
    out = StringIO()
    call_command("evaluate_budgets", "--json", stdout=out)  # nothing new
    assert json.loads(out.getvalue())["claimed"] == 0 and len(smtp.mailbox.messages) == 1
