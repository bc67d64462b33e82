"""The weekly digest: on Monday from 08:00 in the organization's time zone, each active
subscription gets one email with its saved queries' results over the past week (local
Monday to Monday), each row compared with the same row the week before.

Exactly once per subscription and week, like alerts: a `DigestDelivery` row is claimed
under a unique constraint before sending; a failed send is retried by the next run
while it is still that Monday (at most MAX_ATTEMPTS), never marked sent.
"""
import logging
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db import connection, transaction
from django.template.loader import render_to_string
from django.utils import timezone

from budgets.models import DigestDelivery, DigestSubscription
from budgets.periods import local_midnight
from koala.exceptions import KoalaError
from queries.selectors import saved_query_run
from queries.views.present import display

logger = logging.getLogger(__name__)

DIGEST_HOUR = 8
MAX_ATTEMPTS = 5
MAX_ROWS = 10


@dataclass(frozen=True)
class DigestTable:
    name: str
    columns: list[str]
    rows: list[list[str]]
    error: str | None = None


def digest_week(now: datetime, timezone_name: str) -> date | None:
    """The local Monday when `now` is a Monday from 08:00 in the zone; otherwise None."""
    local = now.astimezone(ZoneInfo(timezone_name))
    if local.weekday() != 0 or local.hour < DIGEST_HOUR:
        return None
    return local.date()


def _cell(name: str, value, currency: str) -> str:
    """As the dashboard shows it: amounts rounded to the currency's minor units."""
    return display(name, value, currency).text


def _change(now_value, before_value) -> str:
    try:
        current, previous = float(now_value), float(before_value)
    except (TypeError, ValueError):
        return "new" if before_value is None and now_value is not None else "—"
    if previous == 0:
        return "—" if current == 0 else "new"
    return f"{(current - previous) / abs(previous) * 100:+.0f}%"


def digest_table(*, subscription: DigestSubscription, saved_query, week_start: date) -> DigestTable:
    """The saved query over [previous Monday, this Monday), with a column comparing its
    first metric with the same groups over the week before."""
    tz = ZoneInfo(subscription.organization.timezone)
    end = local_midnight(week_start, tz)
    start = local_midnight(week_start - timedelta(days=7), tz)
    before = local_midnight(week_start - timedelta(days=14), tz)
    organization = subscription.organization
    try:
        this_week = saved_query_run(organization=organization, api_key=None, saved_query=saved_query,
                                    body={"from": start.isoformat(), "to": end.isoformat()})
        last_week = saved_query_run(organization=organization, api_key=None, saved_query=saved_query,
                                    body={"from": before.isoformat(), "to": start.isoformat()})
    except KoalaError as error:  # a saved query that no longer runs is named, not fatal
        return DigestTable(saved_query.name, [], [], error=error.message)
    groups = len((saved_query.query or {}).get("group_by") or [])
    columns, currency = this_week["columns"], this_week["currency"]
    metric = groups if groups < len(columns) else None
    previous = {tuple(row[:groups]): row for row in last_week["rows"]}
    rows = []
    for row in this_week["rows"][:MAX_ROWS]:
        cells = [_cell(name, value, currency) for name, value in zip(columns, row)]
        if metric is not None:
            earlier = previous.get(tuple(row[:groups]))
            cells.append(_change(row[metric], earlier[metric] if earlier else None))
        rows.append(cells)
    if metric is not None:
        columns = [*columns, f"{columns[metric]} vs previous week"]
    if metric is not None and groups:
        totals_now, totals_before = this_week.get("totals") or {}, last_week.get("totals") or {}
        metric_names = this_week["columns"][groups:]
        rows.append(["total", *[""] * (groups - 1), *[_cell(name, totals_now.get(name), currency) for name in metric_names],
                     _change(totals_now.get(metric_names[0]), totals_before.get(metric_names[0]))])
    return DigestTable(saved_query.name, columns, rows)


_CLAIM = """
INSERT INTO budgets_digestdelivery (organization_id, subscription_id, week_start, claimed_at, attempts, last_error)
VALUES (%s, %s, %s, %s, 0, '')
ON CONFLICT DO NOTHING
RETURNING id
"""


def digests_claim_due(*, now: datetime | None = None) -> list[int]:
    """Claims this week's digest for every active subscription whose organization's
    Monday 08:00 has come; returns the deliveries to send (new, and unsent ones of today
    under MAX_ATTEMPTS)."""
    now = now or timezone.now()
    due = []
    subscriptions = DigestSubscription.objects.filter(active=True).select_related("organization")
    with connection.cursor() as cursor:
        for subscription in subscriptions:
            week_start = digest_week(now, subscription.organization.timezone)
            if week_start is None:
                continue
            cursor.execute(_CLAIM, [subscription.organization_id, subscription.pk, week_start, now])
            row = cursor.fetchone()
            if row is not None:
                due.append(row[0])
            else:
                due.extend(DigestDelivery.objects.filter(
                    subscription=subscription, week_start=week_start, sent_at__isnull=True,
                    attempts__lt=MAX_ATTEMPTS).values_list("pk", flat=True))
    return due


def digest_message(*, delivery: DigestDelivery) -> EmailMultiAlternatives:
    subscription = delivery.subscription
    organization = subscription.organization
    tables = [digest_table(subscription=subscription, saved_query=saved_query, week_start=delivery.week_start)
              for saved_query in subscription.saved_queries.filter(organization=organization).order_by("name")]
    first = delivery.week_start - timedelta(days=7)
    last = delivery.week_start - timedelta(days=1)
    context = {"organization": organization, "tables": tables, "first": first, "last": last,
               "currency": organization.reporting_currency,
               "dashboard_url": f"{settings.SITE_URL}/o/{organization.slug}/"}
    subject = f"{organization.name}: your week of {first:%-d %B} to {last:%-d %B %Y}"
    message = EmailMultiAlternatives(subject=subject, body=render_to_string("budgets/emails/digest.txt", context),
                                     to=[subscription.email], headers={"Message-ID": delivery.message_id})
    message.attach_alternative(render_to_string("budgets/emails/digest.html", context), "text/html")
    return message


def digest_send(*, delivery_id: int) -> str:
    """"sent", "failed" (retried by the next run that Monday) or "skipped"."""
    with transaction.atomic():
        delivery = (DigestDelivery.objects.select_for_update(skip_locked=True, of=("self",))
                    .select_related("subscription__organization")
                    .filter(pk=delivery_id, sent_at__isnull=True, attempts__lt=MAX_ATTEMPTS).first())
        if delivery is None:
            return "skipped"
        delivery.attempts += 1
        try:
            digest_message(delivery=delivery).send(fail_silently=False)
        except Exception as error:
            delivery.last_error = f"{type(error).__name__}: {error}"[:2000]
            delivery.save(update_fields=["attempts", "last_error"])
            logger.warning("budget.digest_send_failed", extra={"delivery_id": delivery.pk,
                                                               "error": delivery.last_error})
            return "failed"
        delivery.sent_at = timezone.now()
        delivery.last_error = ""
        delivery.save(update_fields=["attempts", "sent_at", "last_error"])
    logger.info("budget.digest_sent", extra={"delivery_id": delivery.pk})
    return "sent"
