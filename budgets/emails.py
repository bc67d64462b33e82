"""Alert emails: built from templates/budgets/emails/, sent at most once per claim.

Sending holds the alert row locked (`SELECT ... FOR UPDATE SKIP LOCKED`) from the
check that it is unsent until `sent_at` is committed, so two workers never send
the same alert. A failed send records the error and the next attempt time and
never marks the alert sent. A crash after the SMTP server accepted the message but
before `sent_at` was committed sends it once more, with the same Message-ID.
"""
import logging
from datetime import datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db import connection, transaction
from django.template.loader import render_to_string
from django.utils import timezone

from budgets.models import Budget, BudgetAlert
from budgets.periods import Period, period_containing, period_label
from budgets.spend import dimension_filters, tag_filter
from koala.money import money_display
from organizations.models import Membership

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = getattr(settings, "BUDGET_ALERT_MAX_ATTEMPTS", 8)
RETRY_BASE_SECONDS = getattr(settings, "BUDGET_ALERT_RETRY_BASE_SECONDS", 30)
RETRY_MAX_SECONDS = 3600
TOP = 5

_CONTRIBUTORS = """
SELECT {column}, sum(e.cost_reporting) AS cost
FROM budgets_budget b
JOIN events_event e
  ON e.organization_id = b.organization_id
 AND (b.project_id IS NULL OR e.project_id = b.project_id)
 AND e."timestamp" >= %s AND e."timestamp" < %s
 {filters}
WHERE b.id = %s AND b.organization_id = %s AND e.cost_reporting IS NOT NULL
GROUP BY 1 ORDER BY cost DESC, 1 NULLS LAST LIMIT {top}
"""
_DIMENSIONS = {
    "Projects": "(SELECT p.name FROM organizations_project p WHERE p.id = e.project_id)",
    "Providers": "e.provider",
    "Models": "e.model",
    "Customers": "e.user_id",
}


def retry_delay(attempts: int) -> timedelta:
    """Exponential backoff after `attempts` failures: 30 s, 60 s, 120 s ... at most an hour."""
    return timedelta(seconds=min(RETRY_BASE_SECONDS * 2 ** max(attempts - 1, 0), RETRY_MAX_SECONDS))


def top_contributors(*, budget: Budget, start: datetime, end: datetime) -> dict[str, list[tuple[str, Decimal]]]:
    filters = dimension_filters("e") + " " + tag_filter("e")
    tops = {}
    with connection.cursor() as cursor:
        for title, column in _DIMENSIONS.items():
            cursor.execute(_CONTRIBUTORS.format(column=column, filters=filters, top=TOP),
                           [start, end, budget.pk, budget.organization_id])
            tops[title] = [(name if name is not None else "(none)", cost) for name, cost in cursor.fetchall()]
    return tops


def alert_recipients(*, alert: BudgetAlert) -> list[str]:
    budget = alert.budget
    addresses = list(budget.recipients)
    if budget.recipient_roles:
        members = Membership.objects.filter(organization_id=budget.organization_id, role__in=budget.recipient_roles,
                                            user__is_active=True).exclude(user__email="")
        addresses.extend(members.values_list("user__email", flat=True).order_by("user__email"))
    return list(dict.fromkeys(address.lower() for address in addresses))


def _percent(spent: Decimal, amount: Decimal) -> str:
    return f"{(spent * 100 / amount).quantize(Decimal(1))}%"


def alert_message(*, alert: BudgetAlert, recipients: list[str]) -> EmailMultiAlternatives:
    budget, organization = alert.budget, alert.organization
    currency = organization.reporting_currency
    budget_period: Period = period_containing(budget.period, alert.period_start, organization.timezone)
    if alert.kind != BudgetAlert.Kind.SPIKE:
        budget_period = Period(alert.period_start, alert.period_end, budget_period.first_day, budget_period.end_day)
    label = period_label(budget.period, budget_period)
    percent = _percent(alert.spent, alert.amount)
    tz = ZoneInfo(organization.timezone)
    reached_at = alert.detail.get("reached_at")
    context = {
        "alert": alert, "budget": budget, "organization": organization, "period_label": label,
        "percent": percent, "threshold": alert.threshold,
        "spent": money_display(alert.spent, currency), "amount": money_display(alert.amount, currency),
        "forecast": money_display(alert.forecast, currency) if alert.forecast is not None else None,
        "reached_at": (datetime.fromisoformat(reached_at).astimezone(tz).strftime("%A %-d %B %Y, %H:%M")
                       if reached_at else None),
        "hour_spend": money_display(Decimal(alert.detail["hour_spend"]), currency)
        if "hour_spend" in alert.detail else None,
        "baseline": money_display(Decimal(alert.detail["baseline"]), currency) if "baseline" in alert.detail else None,
        "hour": alert.period_start.astimezone(tz).strftime("%-d %B %Y, %H:%M"),
        "contributors": [(title, [(name, money_display(cost, currency)) for name, cost in rows])
                         for title, rows in top_contributors(budget=budget, start=budget_period.start,
                                                             end=budget_period.end).items()],
        "site_url": settings.SITE_URL,
        "dashboard_url": f"{settings.SITE_URL}/o/{organization.slug}/budgets/",
        "budget_url": f"{settings.SITE_URL}/admin/budgets/budget/{budget.pk}/change/",
    }
    if alert.kind == BudgetAlert.Kind.THRESHOLD:
        subject = f"Budget '{budget.name}' reached {alert.threshold}% ({percent} spent) for {label}"
    elif alert.kind == BudgetAlert.Kind.FORECAST:
        subject = f"Budget '{budget.name}' is forecast to overrun ({percent} spent so far) for {label}"
    else:
        subject = f"Budget '{budget.name}': spending spike ({percent} spent) for {label}"
    text = render_to_string("budgets/emails/alert.txt", context)
    html = render_to_string("budgets/emails/alert.html", context)
    message = EmailMultiAlternatives(subject=subject, body=text, to=recipients,
                                     headers={"Message-ID": alert.message_id})
    message.attach_alternative(html, "text/html")
    return message


def budget_alert_send(*, alert_id: int, now: datetime | None = None) -> str:
    """Sends one claimed alert unless it is sent, being sent, or not due yet.

    Returns "sent", "failed" (recorded, retried later), "skipped" (sent, given up,
    not due, or locked by another sender) or "no_recipients".
    """
    with transaction.atomic():
        alert = (BudgetAlert.objects.select_for_update(skip_locked=True, of=("self",))
                 .select_related("budget", "organization").filter(pk=alert_id, sent_at__isnull=True).first())
        now = now or timezone.now()
        if alert is None or alert.next_attempt_at is None or alert.next_attempt_at > now:
            return "skipped"
        recipients = alert_recipients(alert=alert)
        if not recipients:
            alert.next_attempt_at = None
            alert.last_error = "The budget has no recipients."
            alert.save(update_fields=["next_attempt_at", "last_error"])
            logger.warning("budget.alert_no_recipients", extra={"alert_id": alert.pk, "budget_id": alert.budget_id})
            return "no_recipients"
        alert.attempts += 1
        try:
            alert_message(alert=alert, recipients=recipients).send(fail_silently=False)
        except Exception as error:  # SMTP refusals, timeouts, connection errors: all retried
            alert.last_error = f"{type(error).__name__}: {error}"[:2000]
            alert.next_attempt_at = now + retry_delay(alert.attempts) if alert.attempts < MAX_ATTEMPTS else None
            alert.save(update_fields=["attempts", "last_error", "next_attempt_at"])
            logger.warning("budget.alert_send_failed", extra={
                "alert_id": alert.pk, "attempts": alert.attempts, "error": alert.last_error,
                "next_attempt_at": alert.next_attempt_at.isoformat() if alert.next_attempt_at else None})
            return "failed"
        alert.sent_at = timezone.now()
        alert.next_attempt_at = None
        alert.last_error = ""
        alert.save(update_fields=["attempts", "sent_at", "next_attempt_at", "last_error"])
    logger.info("budget.alert_sent", extra={"alert_id": alert.pk, "budget_id": alert.budget_id,
                                            "kind": alert.kind, "threshold": alert.threshold,
                                            "recipients": len(recipients)})
    return "sent"


def budget_alerts_due(*, now: datetime | None = None, organization_ids: list[int] | None = None,
                      limit: int = 1000) -> list[int]:
    """Claimed alerts waiting to be sent (new, or a retry whose time has come)."""
    now = now or timezone.now()
    alerts = BudgetAlert.objects.filter(sent_at__isnull=True, next_attempt_at__lte=now)
    if organization_ids is not None:
        alerts = alerts.filter(organization_id__in=organization_ids)
    return list(alerts.order_by("next_attempt_at").values_list("pk", flat=True)[:limit])
