"""The ingestion fast path: parse, validate, enforce the taxonomy, write once.

A batch costs a fixed number of queries whatever its size: one INSERT ... ON
CONFLICT into the idempotency table (which decides new / duplicate), one SELECT
for the ids that were already there (duplicate vs id_conflict), and one COPY of
the new rows into the partitioned event table, all in one transaction. Events are
checked in plain Python against rules compiled once per organization.
"""
import gc
import logging
from contextlib import contextmanager
from datetime import UTC, datetime

from django.db import connection, transaction

from events.ingest.limits import MAX_BODY_BYTES, NonFinite
from events.ingest.outcome import Outcome
from events.ingest.parsing import BodyError, parse_body
from events.ingest.prepare import Context
from events.ingest.prepare import prepare_batch as _prepare_batch
from events.ingest.store import check_stored
from events.ingest.store import store_batch as _store
from organizations.models import ApiKey

__all__ = ["MAX_BODY_BYTES", "BodyError", "NonFinite", "event_ingest_batch", "parse_body"]

logger = logging.getLogger(__name__)

# Called after a batch's new events are committed, as hook(organization_id=, project_ids=,
# first=, last=) (the events' timestamp range). Budgets append theirs in AppConfig.ready().
# A hook must be quick; one that raises is logged and never fails the ingest.
INGEST_COMMITTED_HOOKS: list = []


def _run_committed_hooks(organization_id: int, project_ids: list[int], first: datetime, last: datetime) -> None:
    for hook in INGEST_COMMITTED_HOOKS:
        try:
            hook(organization_id=organization_id, project_ids=project_ids, first=first, last=last)
        except Exception:
            logger.exception("events.ingest_hook_failed", extra={"organization_id": organization_id})


@contextmanager
def _collector_paused():
    """Python's cyclic garbage collector off for the duration, then back as it was.

    A batch allocates tens of thousands of dicts, lists and rows that live until the
    response: each few hundred allocations wake the collector, which then walks them,
    and every so often the whole heap (Django, DRF, the app), for cycles a batch never
    makes (JSON values and our rows form none). About 10% of the batch's CPU. Memory is
    still freed by reference counting; a cycle made meanwhile elsewhere waits a batch.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def event_ingest_batch(*, raw_body: bytes, api_key: ApiKey, dry_run: bool = False) -> tuple[int, dict]:
    """Validates and (unless `dry_run`) stores a request's events.

    Returns the HTTP status (200, 207, or 422 for a single rejected event) and the
    contract's response body. Rows stored == `accepted`, always.
    """
    with _collector_paused():
        return _ingest_batch(raw_body, api_key, dry_run)


def _ingest_batch(raw_body: bytes, api_key: ApiKey, dry_run: bool) -> tuple[int, dict]:
    events, single = parse_body(raw_body)
    organization = api_key.organization
    projects_by_slug = {}
    if api_key.project_id is None:
        projects_by_slug = {project.slug: project for project in organization.projects.all()}
    context = Context(organization=organization, api_key=api_key, projects_by_slug=projects_by_slug,
                      now=datetime.now(UTC))
    outcome = Outcome()
    # Module-level names, so bench/ingest.py --profile can time each stage.
    prepared, repeats = _prepare_batch(events, context, outcome)
    if prepared:
        if dry_run:
            with connection.cursor() as cursor:
                fresh = check_stored(cursor, organization.pk, prepared, repeats, outcome)
        else:
            fresh = _store(organization.pk, prepared, repeats, outcome)
            if fresh and INGEST_COMMITTED_HOOKS:
                stamps = [item.timestamp for item in fresh]
                transaction.on_commit(lambda: _run_committed_hooks(
                    organization.pk, sorted({item.project_id for item in fresh}), min(stamps), max(stamps)))
        outcome.accepted = len(fresh)
        outcome.warnings = [
            {"index": item.index, "id": item.client_id, "fields": item.warnings} for item in fresh if item.warnings
        ]
    outcome.errors.sort(key=lambda error: error["index"])
    if outcome.rejected == 0:
        status = 200
    elif single:
        status = 422
    else:
        status = 207
    logger.info("events.ingested", extra={
        "organization_id": organization.pk, "accepted": outcome.accepted, "duplicates": outcome.duplicates,
        "rejected": outcome.rejected, "dry_run": dry_run,
    })
    body = outcome.as_json()
    if status == 422:
        # Every non-2xx answer carries the contract's error object; the counts stay
        # alongside so a client reads a single send like a batch of one.
        [error] = outcome.errors
        body["error"] = {"code": error["code"], "message": error["message"], "details": {"fields": error["fields"]}}
    return status, body


