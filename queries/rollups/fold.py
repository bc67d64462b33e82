"""Keeping the rollups equal to the events: the fold and the rebuild.

The fold adds every event received since a durable watermark, in one transaction
that also moves the watermark, so a crash loses nothing and counts nothing twice
(the transaction either happened or did not). Events are only ever inserted once
(duplicates are refused at the door), so folding each inserted row once is exact.

Which events are final? `events_event.received_at` is the inserting transaction's
start time (a column default, `now()`). A transaction that has not committed yet
is listed in pg_stat_activity with that start time, so every event received before
the oldest open transaction began is committed (or never will be). The horizon is
that instant, less a second for the moment between a transaction's start and its
appearance in pg_stat_activity. A long open transaction delays the rollups; it
cannot make them wrong. Reports mark their read-only transactions (application_name
READ_ONLY_APPLICATION, see report_execute) and the horizon skips them, so a
slow report over raw events does not hold back freshness.

The rebuild recomputes one organization (or some of its local days) from the events
under the same lock: after a time zone change, and after amounts of stored events
change (late exchange rates, re-pricing).
"""
import logging
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from django.db import connection, transaction

from queries.rollups.definitions import ROLLUPS, Rollup

logger = logging.getLogger(__name__)

SAFETY_MARGIN = timedelta(seconds=1)
# Set (SET LOCAL) by transactions that only read, such as reports: they never insert
# events, so the horizon need not wait for them.
READ_ONLY_APPLICATION = "koala-read-only"
# Organizations rebuilt per fold run (a zone change, or first seen with events), so
# one fold never holds the lock for long.
REBUILDS_PER_FOLD = 5
# A fold groups ten seconds of events six ways at once (a 160,000-event fold on the
# ingestion benchmark). With the default 4 MB its hash tables and the shared event
# list spill to temporary files, and it took three times as long (23 against 7.5 us
# per event); 32 MB was enough, 64 leaves room for busier organizations. Past that a
# larger fold spills, slower but still correct.
FOLD_WORK_MEM = "64MB"

_EVENT_COLUMNS = (
    'organization_id, project_id, "timestamp", environment, provider, model, application, action, status, '
    "user_id, charge, cost_reporting, charge_reporting, latency_ms, input_tokens, output_tokens, flags, metadata, traces"
)


def event_columns() -> str:
    """The events_event columns every rollup reads."""
    return _EVENT_COLUMNS


# Every event received before it is in the rollups; every event received since is not.
WATERMARK = "(SELECT watermark FROM queries_rollup_state WHERE id = 1)"
_LOCK = "SELECT watermark FROM queries_rollup_state WHERE id = 1 FOR UPDATE"
_HORIZON = """
SELECT least(now(), COALESCE(min(a.xact_start), 'infinity')) - %(margin)s
FROM pg_stat_activity a
WHERE a.datname = current_database() AND a.backend_type = 'client backend'
  AND a.pid <> pg_backend_pid() AND a.xact_start IS NOT NULL
  AND a.application_name IS DISTINCT FROM %(read_only)s
"""


def _aggregate(rollup: Rollup, source: str, *, in_key_order: bool = False) -> str:
    """INSERT ... SELECT grouping `source` (rows aliased e, zone z) into the rollup;
    `in_key_order` writes the rows sorted by organization, then day (or week, hour)."""
    updates = ", ".join(f"{column} = t.{column} + EXCLUDED.{column}" for column in rollup.measure_columns)
    order = f" ORDER BY {rollup.key_positions}" if in_key_order else ""
    return (
        f"INSERT INTO {rollup.table} AS t ({', '.join(rollup.columns)}) {rollup.grouped_select(source)}{order} "
        f"ON CONFLICT ON CONSTRAINT {rollup.table}_key DO UPDATE SET {updates}"
    )


def _fold_statement() -> str:
    """One statement: the new events once (materialized), then every rollup from them."""
    fresh = (
        "fresh AS MATERIALIZED (SELECT e.*, o.timezone AS tz FROM organizations_organization o "
        f"JOIN LATERAL (SELECT {_EVENT_COLUMNS} FROM events_event e WHERE e.organization_id = o.id "
        "AND e.received_at >= %(since)s AND e.received_at < %(until)s) e ON true)"
    )
    # The zone travels with each row as e.tz; the definitions read it as z.tz.
    inserts = [f"r{index} AS ({_aggregate(rollup, 'fresh e, LATERAL (SELECT e.tz) z(tz)')})"
               for index, rollup in enumerate(ROLLUPS)]
    return f"WITH {fresh}, {', '.join(inserts)} SELECT count(*) FROM fresh"


_FOLD = _fold_statement()


def _rebuild_statements(rollup: Rollup) -> tuple[str, str]:
    column = rollup.grain
    delete = (f"DELETE FROM {rollup.table} WHERE organization_id = %(organization_id)s "
              f"AND {column} >= %({column}_from)s AND {column} < %({column}_to)s")
    source = (
        f"(SELECT {_EVENT_COLUMNS} FROM events_event e WHERE e.organization_id = %(organization_id)s "
        "AND e.received_at < %(watermark)s "
        f"AND e.\"timestamp\" >= %({column}_start)s AND e.\"timestamp\" < %({column}_end)s) e, "
        "(SELECT %(tz)s::text AS tz) z"
    )
    # A report reads a few days of an organization: rows written in day order share
    # pages (the fold writes each day's rows as the day goes by). In hash order, four
    # days of 10,000 customers were spread over 17,000 of the table's 32,000 pages.
    return delete, _aggregate(rollup, source, in_key_order=True)


_REBUILD = [_rebuild_statements(rollup) for rollup in ROLLUPS]

# Far enough apart for any event PostgreSQL and the contract accept.
_FIRST_DAY, _LAST_DAY = date(1970, 1, 1), date(3000, 1, 1)


def _local_midnight(day: date, tz: ZoneInfo) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=tz)


def _floor_hour(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def _rebuild(cursor, organization_id: int, zone: str, watermark: datetime, since: date | None,
             until: date | None) -> None:
    tz = ZoneInfo(zone)
    since, until = since or _FIRST_DAY, until or _LAST_DAY
    start, end = _local_midnight(since, tz), _local_midnight(until, tz)
    # Hours are UTC hours: widened to whole hours, so a :30 zone's day boundary does
    # not split one.
    hour_from, hour_to = _floor_hour(start), _floor_hour(end - timedelta(microseconds=1)) + timedelta(hours=1)
    # Weeks too are recomputed whole: from the Monday of `since` to the Monday after `until - 1`.
    week_from = max(since - timedelta(days=since.weekday()), _FIRST_DAY)
    last = until - timedelta(days=1)
    week_to = min(last - timedelta(days=last.weekday()) + timedelta(days=7), _LAST_DAY)
    params = {
        "organization_id": organization_id, "tz": zone, "watermark": watermark,
        "day_from": since, "day_to": until, "day_start": start, "day_end": end,
        "week_from": week_from, "week_to": week_to, "week_start": _local_midnight(week_from, tz),
        "week_end": _local_midnight(week_to, tz),
        "hour_from": hour_from, "hour_to": hour_to, "hour_start": hour_from, "hour_end": hour_to,
    }
    for delete, insert in _REBUILD:
        cursor.execute(delete, params)
        cursor.execute(insert, params)


def _settle_zones(cursor, watermark: datetime) -> None:
    """Organizations whose rollups are not in their current zone: marked at once when
    they have no events yet, rebuilt (a few per run) otherwise."""
    cursor.execute(
        "SELECT o.id, o.timezone, EXISTS (SELECT 1 FROM events_event e WHERE e.organization_id = o.id "
        "AND e.received_at < %s) FROM organizations_organization o "
        "LEFT JOIN queries_rollup_zone r ON r.organization_id = o.id "
        "WHERE r.timezone IS DISTINCT FROM o.timezone ORDER BY o.id", [watermark])
    pending = cursor.fetchall()
    empty = [(organization_id, zone) for organization_id, zone, has_events in pending if not has_events]
    if empty:
        # Nothing of theirs is folded yet: only stale rows of a former zone, if any.
        for rollup in ROLLUPS:
            cursor.execute(f"DELETE FROM {rollup.table} WHERE organization_id = ANY(%s)",
                           [[organization_id for organization_id, _ in empty]])
        _mark_zones(cursor, empty)
    for organization_id, zone, _ in [row for row in pending if row[2]][:REBUILDS_PER_FOLD]:
        logger.info("rollups.zone_rebuild", extra={"organization_id": organization_id, "timezone": zone})
        _rebuild(cursor, organization_id, zone, watermark, None, None)
        _mark_zones(cursor, [(organization_id, zone)])


def _mark_zones(cursor, zones: list[tuple[int, str]]) -> None:
    cursor.execute(
        "INSERT INTO queries_rollup_zone (organization_id, timezone, built_at) "
        "SELECT * , now() FROM unnest(%s::bigint[], %s::text[]) "
        "ON CONFLICT (organization_id) DO UPDATE SET timezone = EXCLUDED.timezone, built_at = now()",
        [[organization_id for organization_id, _ in zones], [zone for _, zone in zones]])


def rollup_fold(*, up_to: datetime | None = None) -> int:
    """Folds every event received since the watermark and now final; returns how many.

    `up_to` replaces the computed horizon; only for callers that know every event
    received before it is committed (a test inside its own transaction, whose
    events carry that transaction's start time). Another fold in progress: returns 0
    at once.
    """
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(_LOCK + " SKIP LOCKED")
        row = cursor.fetchone()
        if row is None:
            return 0
        watermark = row[0]
        cursor.execute(f"SET LOCAL work_mem = '{FOLD_WORK_MEM}'")
        if up_to is None:
            cursor.execute(_HORIZON, {"margin": SAFETY_MARGIN, "read_only": READ_ONLY_APPLICATION})
            up_to = cursor.fetchone()[0]
        folded = 0
        if up_to > watermark:
            cursor.execute(_FOLD, {"since": watermark, "until": up_to})
            folded = cursor.fetchone()[0]
            cursor.execute("UPDATE queries_rollup_state SET watermark = %s, folded_at = now() WHERE id = 1", [up_to])
            watermark = up_to
        _settle_zones(cursor, watermark)
    if folded:
        logger.info("rollups.folded", extra={"events": folded})
    return folded


def rollup_rebuild(*, organization, since: date | None = None, until: date | None = None) -> None:
    """Recomputes `organization`'s rollups for its local days [since, until) (every
    day when both are None) from the stored events, under the fold's lock.

    Call after changing stored events' amounts, in the same transaction or after it
    commits. A partial rebuild of an organization whose rollups are in a former zone
    rebuilds it whole.
    """
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(_LOCK)
        watermark = cursor.fetchone()[0]
        cursor.execute(f"SET LOCAL work_mem = '{FOLD_WORK_MEM}'")
        cursor.execute("SELECT timezone FROM queries_rollup_zone WHERE organization_id = %s", [organization.pk])
        row = cursor.fetchone()
        whole = (since is None and until is None) or row is None or row[0] != organization.timezone
        if whole:
            since = until = None
        _rebuild(cursor, organization.pk, organization.timezone, watermark, since, until)
        if whole:
            _mark_zones(cursor, [(organization.pk, organization.timezone)])


def rollup_state(*, organization_id: int) -> tuple[str | None, datetime]:
    """The zone the organization's daily rollups are in (None while not built), and
    the watermark now."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT (SELECT timezone FROM queries_rollup_zone WHERE organization_id = %s), "
                       f"{WATERMARK}", [organization_id])
        return cursor.fetchone()


def unfolded_rows(rollup: Rollup) -> str:
    """SELECT of `rollup`'s rows computed from the organization's events of
    [%(start)s, %(end)s) that are not folded yet, as the statement sees them.

    Parameters: organization_id, tz, start, end and unfolded_from, a watermark read
    before this statement. The watermark only moves forward, so the statement's own
    (the subquery) is at least as late and decides; unfolded_from lets the planner
    see that few events are that new and pick the (organization, received_at) index.
    """
    source = (
        f"(SELECT {_EVENT_COLUMNS} FROM events_event e WHERE e.organization_id = %(organization_id)s "
        f"AND e.received_at >= %(unfolded_from)s AND e.received_at >= {WATERMARK} "
        'AND e."timestamp" >= %(start)s AND e."timestamp" < %(end)s) e, (SELECT %(tz)s::text AS tz) z'
    )
    return rollup.grouped_select(source)


def current_rows(rollup: Rollup) -> str:
    """The organization's rows of `rollup` as of this statement: those folded, and
    those of its events received since (unfolded_rows()). The fold moves events and
    watermark in one transaction, so one statement's snapshot sees every event once:
    a report is as fresh as the events it reads, however long ago the fold ran."""
    return (f"(SELECT {', '.join(rollup.columns)} FROM {rollup.table} WHERE organization_id = %(organization_id)s "
            f"UNION ALL {unfolded_rows(rollup)})")
