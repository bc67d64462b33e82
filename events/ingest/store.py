"""Writing a validated batch: claim ids, sort out repeats, COPY the new rows; one transaction."""
import logging
from operator import attrgetter

import psycopg.errors
from django.db import OperationalError, connection, transaction

from events.ingest.copytext import array_literal, bytea_array_literal
from events.ingest.limits import COPY_COLUMNS
from events.ingest.outcome import Outcome, judge_repeat, settle_repeats
from events.ingest.prepare import Prepared, Repeat
from events.partitions import ensure_partitions, forget_known_partitions

logger = logging.getLogger(__name__)


_CLAIM_KEYS = """
INSERT INTO events_eventkey (organization_id, project_id, client_id, content_hash, "timestamp")
SELECT %s, claim.* FROM unnest(%s::bigint[], %s::text[], %s::bytea[], %s::timestamptz[]) AS claim
ORDER BY 1, 2, 3
ON CONFLICT DO NOTHING
RETURNING project_id, client_id
"""
_STORED_KEYS = """
SELECT k.project_id, k.client_id, k.content_hash
FROM events_eventkey k
JOIN unnest(%s::bigint[], %s::text[]) AS wanted(project_id, client_id) USING (project_id, client_id)
WHERE k.organization_id = %s
"""
_BY_KEY = attrgetter("project_id", "client_id")
_COPY_EVENTS = "COPY events_event ({}) FROM STDIN".format(", ".join(f'"{name}"' for name in COPY_COLUMNS))


def _ids(items: list[Prepared]) -> str:
    return "{" + ",".join([str(item.project_id) for item in items]) + "}"


def stored_digests(cursor, organization_id: int, keyed: list[Prepared]) -> dict:
    if not keyed:
        return {}
    cursor.execute(_STORED_KEYS, [_ids(keyed), array_literal([p.client_id for p in keyed]), organization_id])
    return {(project_id, client_id): bytes(digest) for project_id, client_id, digest in cursor.fetchall()}


def write_batch(cursor, organization_id: int, prepared: list[Prepared], repeats: list[Repeat],
           outcome: Outcome) -> list[Prepared]:
    """Claims the client ids, sorts out repeats of stored events, COPYs the rest.

    Keys are claimed in a fixed order so concurrent batches with the same ids wait
    for each other instead of deadlocking; the loser sees the winner's rows.
    """
    keyed = sorted([p for p in prepared if p.digest is not None], key=_BY_KEY)
    claimed: set = set()
    if keyed:
        cursor.execute(_CLAIM_KEYS, [
            organization_id, _ids(keyed), array_literal([p.client_id for p in keyed]),
            bytea_array_literal([p.digest for p in keyed]), array_literal([p.stamp for p in keyed]),
        ])
        claimed = set(cursor.fetchall())
    unclaimed = [p for p in keyed if (p.project_id, p.client_id) not in claimed]
    stored = stored_digests(cursor, organization_id, unclaimed)
    for item in unclaimed:
        judge_repeat(item.index, item.client_id, stored.get((item.project_id, item.client_id)) == item.digest,
                      outcome)
    if repeats:
        settled = {(p.project_id, p.client_id): p.digest for p in keyed}
        settled.update(stored)
        settle_repeats(settled, repeats, outcome)
    fresh = [p for p in prepared if p.digest is None or (p.project_id, p.client_id) in claimed]
    if fresh:
        with cursor.copy(_COPY_EVENTS) as copy:
            copy.write("".join(item.line for item in fresh))
    return fresh


def check_stored(cursor, organization_id: int, prepared: list[Prepared], repeats: list[Repeat],
                  outcome: Outcome) -> list[Prepared]:
    """The dry run's view of repeats: what a real send would call duplicates or conflicts."""
    keyed = [p for p in prepared if p.digest is not None]
    stored = stored_digests(cursor, organization_id, keyed)
    fresh = []
    for item in prepared:
        digest = stored.get((item.project_id, item.client_id))
        if item.digest is not None and digest is not None:
            judge_repeat(item.index, item.client_id, digest == item.digest, outcome)
        else:
            fresh.append(item)
    if repeats:
        settled = {(p.project_id, p.client_id): p.digest for p in keyed}
        settled.update(stored)
        settle_repeats(settled, repeats, outcome)
    return fresh


DEADLOCK_RETRIES = 3


def missing_partition(error: Exception) -> bool:
    return (isinstance(error, psycopg.errors.CheckViolation)
            and (error.diag.message_primary or "").startswith("no partition of relation"))


def store_batch(organization_id: int, prepared: list[Prepared], repeats: list[Repeat], outcome: Outcome) -> list[Prepared]:
    months = {(item.timestamp.year, item.timestamp.month) for item in prepared}
    ensure_partitions(months)
    looked_again = False
    for attempt in range(DEADLOCK_RETRIES + 1):
        trial = Outcome()
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                fresh = write_batch(cursor, organization_id, prepared, repeats, trial)
        except OperationalError as error:
            if isinstance(error.__cause__, psycopg.errors.DeadlockDetected) and attempt + 1 < DEADLOCK_RETRIES:
                logger.warning("events.ingest_deadlock_retry", extra={"organization_id": organization_id})
                continue
            raise
        except psycopg.errors.CheckViolation as error:
            # The process remembers the partitions it has seen, and one may be gone since:
            # dropped by retention, or created inside a transaction that was rolled back.
            # Nothing was written (the transaction rolled back); look again once and retry.
            if not missing_partition(error) or looked_again:
                raise
            looked_again = True
            logger.warning("events.partition_cache_stale", extra={"organization_id": organization_id})
            forget_known_partitions()
            ensure_partitions(months)
            continue
        outcome.duplicates += trial.duplicates
        outcome.rejected += trial.rejected
        outcome.errors.extend(trial.errors)
        return fresh
    raise AssertionError("unreachable")
