import logging

from celery import shared_task
from django.utils import timezone

logger = logging.getLogger(__name__)


@shared_task(ignore_result=True, expires=55)
def heartbeat() -> str:
    """Proves in the worker log that beat and the worker are both alive."""
    now = timezone.now().isoformat()
    logger.info("platform.heartbeat", extra={"at": now})
    return now
