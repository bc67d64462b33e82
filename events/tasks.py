from datetime import datetime

from celery import shared_task
from django.db import OperationalError
from django.utils import timezone

from events.money import services as money_services
from events.partitions import ensure_partitions, months_ahead
from organizations.models import Organization


@shared_task(ignore_result=True, expires=3600)
def events_ensure_partitions() -> None:
    """Keeps the event table's monthly partitions created ahead of time."""
    ensure_partitions(months_ahead(timezone.now().date()))


@shared_task(ignore_result=True, acks_late=True, autoretry_for=(OperationalError,), retry_backoff=True,
             max_retries=3, expires=24 * 3600)
def events_convert(organization_id: int, currency: str | None = None, since: str | None = None) -> None:
    """Converts an organization's pending (and re-converts corrected) events after a rate
    changed. Safe to run twice or concurrently: it sets amounts, it never adds to them."""
    organization = Organization.objects.filter(pk=organization_id).first()
    if organization is None:
        return
    money_services.events_convert(organization=organization, currency=currency,
                                  since=datetime.fromisoformat(since) if since is not None else None)


@shared_task(ignore_result=True, expires=3600)
def events_convert_sweep() -> None:
    """Catches up conversions whose task was lost (broker down) or that raced an ingest
    still holding the old rates: every organization with convertible pending events."""
    for organization in Organization.objects.filter(pk__in=money_services.organizations_with_pending_events()):
        money_services.events_convert(organization=organization, pending_only=True)
