"""Monthly partitions of `events_event`, created ahead and on demand.

A partition is named `events_event_pYYYYMM` and holds `[first of month, first of
next month)` in UTC. Retention can later drop a whole month with one statement.
"""
import logging
from datetime import UTC, date, datetime

from django.db import connection

logger = logging.getLogger(__name__)

MONTHS_AHEAD = 3
_known_partitions: set[tuple[int, int]] = set()


def month_start(year: int, month: int) -> datetime:
    return datetime(year, month, 1, tzinfo=UTC)


def next_month(year: int, month: int) -> tuple[int, int]:
    return (year + 1, 1) if month == 12 else (year, month + 1)


def partition_name(year: int, month: int) -> str:
    return f"events_event_p{year:04d}{month:02d}"


def _existing_partitions(cursor) -> set[tuple[int, int]]:
    cursor.execute(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = 'events_event'::regclass"
    )
    found = set()
    for (name,) in cursor.fetchall():
        suffix = name.rsplit("_p", 1)[-1]
        if len(suffix) == 6 and suffix.isdigit():
            found.add((int(suffix[:4]), int(suffix[4:])))
    return found


def ensure_partitions(months: set[tuple[int, int]], *, using_cursor=None) -> None:
    """Creates the partitions for `months` ((year, month) pairs) that do not exist yet.

    Cheap when they exist: a process remembers what it has seen. Safe to race: two
    processes creating the same month both succeed (IF NOT EXISTS).
    """
    missing = months - _known_partitions
    if not missing:
        return
    cursor = using_cursor or connection.cursor()
    try:
        existing = _existing_partitions(cursor)
        for year, month in sorted(missing - existing):
            upper_year, upper_month = next_month(year, month)
            cursor.execute(
                f"CREATE TABLE IF NOT EXISTS {partition_name(year, month)} PARTITION OF events_event "
                f"FOR VALUES FROM ('{month_start(year, month).isoformat()}') "
                f"TO ('{month_start(upper_year, upper_month).isoformat()}')"
            )
            logger.info("events.partition_created", extra={"partition": partition_name(year, month)})
        _known_partitions.update(existing | missing)
    finally:
        if using_cursor is None:
            cursor.close()


def months_ahead(today: date, count: int = MONTHS_AHEAD) -> set[tuple[int, int]]:
    """This month, the previous one and `count` months ahead."""
    year, month = (today.year - 1, 12) if today.month == 1 else (today.year, today.month - 1)
    months = set()
    for _ in range(count + 2):
        months.add((year, month))
        year, month = next_month(year, month)
    return months


def forget_known_partitions() -> None:
    """For tests that recreate the database: the process cache would otherwise lie."""
    _known_partitions.clear()
