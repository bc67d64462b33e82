"""Budget evaluation on Celery: thin tasks over budgets.services and budgets.emails.

Two paths lead to an evaluation:

- Beat runs `budgets_sweep` every minute: every active budget, set-based, then
  every alert still waiting to be sent. It is the safety net: whatever was missed
  while Redis or a worker was down is caught within a minute of their return.
- Ingestion calls `budgets_request_evaluation` after commit. It is debounced per
  organization with a Redis key (SET NX): the first batch enqueues one evaluation
  DEBOUNCE_SECONDS later, and batches that commit before that evaluation starts enqueue
  nothing; the evaluation deletes the key before it reads, so a batch committed
  after the read enqueues the next one. A burst of 1000 batches is a handful of
  evaluations, and no batch is left unevaluated.

Duplicates are impossible by construction (claims under a unique constraint), so
two beats or many workers running the same evaluation only waste a little work.
"""
import logging
import time

import redis
from celery import shared_task
from django.conf import settings

from budgets.digests import digest_send, digests_claim_due
from budgets.emails import budget_alert_send, budget_alerts_due, retry_delay
from budgets.models import Budget, BudgetAlert
from budgets.services import budgets_evaluate_all
from queries.services import rollup_fold

logger = logging.getLogger(__name__)

# At most one evaluation per organization per this many seconds of ingestion: a long
# burst costs a handful of evaluations, and an email still arrives seconds after its event.
DEBOUNCE_SECONDS = getattr(settings, "BUDGET_EVALUATION_DEBOUNCE_SECONDS", 5.0)
PENDING_TTL_SECONDS = 60
# After Redis failed once, ingestion does not try it again for this long: a broker
# that is down must not cost every request a timeout.
REDIS_BACKOFF_SECONDS = 5.0
HAS_BUDGETS_CACHE_SECONDS = 30.0

_redis_client: redis.Redis | None = None
_redis_down_until = 0.0
_has_budgets: dict[int, tuple[float, bool]] = {}


def _queue() -> str | None:
    """Operators may give budget work its own queue and workers (BUDGETS_QUEUE); tests use one each."""
    return getattr(settings, "BUDGETS_QUEUE", None) or None


def _pending_key(organization_id: int) -> str:
    return f"budgets:evaluation-pending:{organization_id}"


def _redis() -> redis.Redis:
    global _redis_client
    if _redis_client is None:
        _redis_client = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=0.25, socket_timeout=0.25)
    return _redis_client


def _organization_has_budgets(organization_id: int) -> bool:
    now = time.monotonic()
    cached = _has_budgets.get(organization_id)
    if cached is not None and cached[0] > now:
        return cached[1]
    found = Budget.objects.filter(organization_id=organization_id, active=True).exists()
    _has_budgets[organization_id] = (now + HAS_BUDGETS_CACHE_SECONDS, found)
    return found


def budgets_request_evaluation(*, organization_id: int, project_ids: list[int], first, last) -> None:
    """Ingestion's after-commit hook. Never raises and never waits long on Redis."""
    global _redis_down_until
    if time.monotonic() < _redis_down_until or not _organization_has_budgets(organization_id):
        return
    try:
        if _redis().set(_pending_key(organization_id), "1", nx=True, ex=PENDING_TTL_SECONDS):
            try:
                budgets_evaluate_organization.apply_async(args=[organization_id], countdown=DEBOUNCE_SECONDS,
                                                          queue=_queue())
            except Exception:
                _redis().delete(_pending_key(organization_id))
                raise
    except Exception as error:  # Redis or the broker is down: the sweep catches up
        _redis_down_until = time.monotonic() + REDIS_BACKOFF_SECONDS
        logger.warning("budget.evaluation_request_failed", extra={
            "organization_id": organization_id, "error": f"{type(error).__name__}: {error}"})


def _fold_rollups() -> None:
    """Folds events committed a moment ago into the rollups. Not needed for exactness
    (the evaluation reads events past the watermark raw) but keeps that tail short, so a
    failing fold is logged and the evaluation goes on."""
    try:
        rollup_fold()
    except Exception:
        logger.exception("budget.rollup_fold_failed")


def _send_now(alert_ids: list[int]) -> dict[str, int]:
    outcomes: dict[str, int] = {}
    for alert_id in alert_ids:
        outcome = budget_alert_send(alert_id=alert_id)
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
        if outcome == "failed":
            _schedule_retry(alert_id)
    return outcomes


def _schedule_retry(alert_id: int) -> None:
    alert = BudgetAlert.objects.filter(pk=alert_id).only("attempts", "next_attempt_at").first()
    if alert is None or alert.next_attempt_at is None:
        return
    try:
        budgets_alert_send.apply_async(args=[alert_id], countdown=retry_delay(alert.attempts).total_seconds(),
                                       queue=_queue())
    except Exception:
        logger.warning("budget.alert_retry_not_enqueued", extra={"alert_id": alert_id})


@shared_task(acks_late=True, ignore_result=True, expires=600)
def budgets_evaluate_organization(organization_id: int) -> dict:
    """Evaluates one organization's active budgets now and sends what they claim."""
    try:
        _redis().delete(_pending_key(organization_id))
    except redis.RedisError:
        pass  # the key expires on its own
    _fold_rollups()
    claimed = budgets_evaluate_all(organization_ids=[organization_id])
    return {"claimed": len(claimed), **_send_now(claimed)}


@shared_task(acks_late=True, ignore_result=True, expires=55)
def budgets_sweep() -> dict:
    """Beat, every minute: every active budget, then every alert waiting to be sent."""
    started = time.monotonic()
    _fold_rollups()
    claimed = budgets_evaluate_all()
    due = budget_alerts_due()
    for alert_id in dict.fromkeys([*claimed, *due]):
        budgets_alert_send.apply_async(args=[alert_id], queue=_queue())
    logger.info("budget.sweep", extra={"claimed": len(claimed), "due": len(due),
                                       "seconds": round(time.monotonic() - started, 3)})
    return {"claimed": len(claimed), "due": len(due)}


@shared_task(acks_late=True, ignore_result=True, expires=600)
def budgets_weekly_digests() -> dict:
    """Beat, every 15 minutes: claims and sends the digests whose Monday 08:00 has come."""
    outcomes: dict[str, int] = {}
    for delivery_id in digests_claim_due():
        outcome = digest_send(delivery_id=delivery_id)
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    return outcomes


@shared_task(acks_late=True, ignore_result=True)
def budgets_alert_send(alert_id: int) -> dict:
    """Sends one claimed alert if it is due; a failure schedules the next attempt."""
    return _send_now([alert_id])
