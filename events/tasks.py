from celery import shared_task
from django.utils import timezone

from events.partitions import ensure_partitions, months_ahead


@shared_task(ignore_result=True, expires=3600)
def events_ensure_partitions() -> None:
    """Keeps the event table's monthly partitions created ahead of time."""
    ensure_partitions(months_ahead(timezone.now().date()))
