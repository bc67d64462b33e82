"""The benchmark's direct write paths: the COPY ceiling and the preload.

Both write the rows the application itself writes. The rows are captured, not
re-implemented: the benchmark sends generated events through the application's
`event_ingest_batch` once, then reads the stored rows back with
`COPY (SELECT ...) TO STDOUT`, so they are byte for byte what the application
stores (normalized values, flags, jsonb metadata, idempotency digest), whatever
its validation code looks like today. The timed loops only splice in fresh ids
and send bytes.
"""
from __future__ import annotations

import os
import random
import time
from datetime import UTC, datetime

KEY_COLUMNS = ("organization_id", "project_id", "client_id", "content_hash", "timestamp")
# The preload writes these itself; every other column comes from a captured row.
PRELOAD_HEAD = ("organization_id", "project_id", "client_id", "timestamp", "received_at")


def wait_for_start(index, ready, go, start_at, stop_at) -> float:
    """A load process's start line: report ready, wait for the signal and the shared start
    time, and return the monotonic time at which to stop (all processes start together)."""
    ready.put(index)
    go.wait()
    delay = start_at.value - time.monotonic()
    if delay > 0:
        time.sleep(delay)
    return stop_at.value

def quote_columns(columns, alias: str = "") -> str:
    return ", ".join(f'{alias}"{c}"' for c in columns)


def event_columns(conn) -> list[str]:
    """The columns of events_event in table order, without the surrogate `seq`."""
    rows = conn.execute(
        "SELECT attname FROM pg_attribute WHERE attrelid = 'events_event'::regclass AND attnum > 0 "
        "AND NOT attisdropped AND attname <> 'seq' ORDER BY attnum").fetchall()
    return [name for (name,) in rows]


def stage_columns(columns: list[str]) -> list[str]:
    """Staging rows: client_id first (a fresh id is spliced in front), the event columns, the digest."""
    return ["client_id", *(c for c in columns if c != "client_id"), "content_hash"]


def copy_out(conn, query: str, params) -> list[bytes]:
    """The rows of a query as COPY text lines (each ending in a newline)."""
    data = bytearray()
    with conn.cursor() as cursor:
        with cursor.copy(f"COPY ({query}) TO STDOUT", params) as copy:
            for chunk in copy:
                data += chunk
    return bytes(data).splitlines(keepends=True)


def capture_stage_tails(conn, organization_id: int, client_ids: list[str], columns: list[str]) -> list[bytes]:
    """Staging lines of stored events, without their leading client id (`\t...\n`)."""
    select = ", ".join(['e."client_id"', *(f'e."{c}"' for c in stage_columns(columns)[1:-1]), "k.content_hash"])
    lines = copy_out(conn, f"SELECT {select} FROM events_event e JOIN events_eventkey k "
                           "USING (organization_id, project_id, client_id) "
                           "WHERE e.organization_id = %s AND e.client_id = ANY(%s) ORDER BY e.seq",
                     [organization_id, client_ids])
    return [line[line.index(b"\t"):] for line in lines]


def capture_preload_tails(conn, organization_id: int, client_ids: list[str], columns: list[str]) -> list[bytes]:
    """The columns of stored events other than PRELOAD_HEAD, as COPY lines."""
    tail = [c for c in columns if c not in PRELOAD_HEAD]
    return copy_out(conn, f"SELECT {quote_columns(tail)} FROM events_event "
                          "WHERE organization_id = %s AND client_id = ANY(%s) ORDER BY seq",
                    [organization_id, client_ids])


# --- the ceiling: psycopg COPY with the same deduplication, 1000 rows a transaction --------------

def stage_statements(columns: list[str]) -> tuple[str, str, str]:
    """(create the temp staging table, COPY into it, merge it into the two tables)."""
    staged = stage_columns(columns)
    create = (f"CREATE TEMP TABLE bench_stage ON COMMIT DELETE ROWS AS SELECT {quote_columns(staged[:-1])}, "
              "NULL::bytea AS content_hash FROM events_event WITH NO DATA")
    copy = f"COPY bench_stage ({quote_columns(staged)}) FROM STDIN"
    # Claims the ids (sorted, like the app, so concurrent writers cannot deadlock) and
    # stores only the events whose id was new: the app's idempotency in one statement.
    merge = f"""
WITH claimed AS (
    INSERT INTO events_eventkey ({quote_columns(KEY_COLUMNS)})
    SELECT {quote_columns(KEY_COLUMNS)} FROM bench_stage ORDER BY project_id, client_id
    ON CONFLICT DO NOTHING
    RETURNING project_id, client_id
)
INSERT INTO events_event ({quote_columns(columns)})
SELECT {quote_columns(columns, "s.")} FROM bench_stage s JOIN claimed USING (project_id, client_id)
"""
    return create, copy, merge


def stamp_stage(tails: list[bytes]) -> bytes:
    """A staging COPY payload: the tails with fresh random ids in front."""
    hexed = os.urandom(16 * len(tails)).hex().encode()
    return b"".join(b"evt_" + hexed[i * 32:i * 32 + 32] + tail for i, tail in enumerate(tails))


def ceiling_client(index: int, dsn: str, columns: list[str], tails: list[bytes], batch: int, ready, go, start_at,
                   stop_at, results):
    """One ceiling connection: staging COPY + merge + commit per `batch` rows, until stop_at.

    Records have the HTTP clients' shape: (started, done, 200, rows stored, 0, 0, 0).
    """
    import psycopg

    create, stage_copy, merge = stage_statements(columns)
    records = []
    errors = []
    try:
        with psycopg.connect(dsn) as conn:
            conn.execute(create)
            conn.commit()
            chunks = [tails[i:i + batch] for i in range(0, len(tails) - batch + 1, batch)]
            stop = wait_for_start(index, ready, go, start_at, stop_at)
            n = 0
            while time.monotonic() < stop:
                payload = stamp_stage(chunks[n % len(chunks)])  # fresh random ids; not timed
                n += 1
                started = time.monotonic()
                with conn.cursor() as cursor:
                    with cursor.copy(stage_copy) as copy:
                        copy.write(payload)
                    cursor.execute(merge)
                    stored = cursor.rowcount
                conn.commit()
                records.append((started, time.monotonic(), 200, stored, 0, 0, 0))
    except Exception as exc:  # reported by the parent, never silently
        errors.append(f"ceiling client {index} failed: {type(exc).__name__}: {exc}")
        ready.put(index)
    results.put((index, records, errors, 0))


# --- the preload: plain COPY into the two tables, ordered in time --------------------------------

def preload_worker(index: int, dsn: str, columns: list[str], organization_id: int, project_id: int,
                   tails: list[bytes], count: int, start_epoch: float, end_epoch: float, chunk: int, seed: int,
                   progress):
    """COPYs `count` events (and their keys) with timestamps rising from start to end epoch."""
    import psycopg

    r = random.Random(seed)
    prefix = f"{organization_id}\t{project_id}\t"
    key_prefix = prefix
    span = (end_epoch - start_epoch) / max(count, 1)
    tail_columns = [c for c in columns if c not in PRELOAD_HEAD]
    event_copy = f"COPY events_event ({quote_columns([*PRELOAD_HEAD, *tail_columns])}) FROM STDIN"
    key_copy = f"COPY events_eventkey ({quote_columns(KEY_COLUMNS)}) FROM STDIN"
    fromtimestamp = datetime.fromtimestamp
    done = 0
    with psycopg.connect(dsn) as conn:
        while done < count:
            n = min(chunk, count - done)
            hexed = os.urandom(32 * n).hex()
            event_lines = []
            key_lines = []
            for i in range(n):
                epoch = start_epoch + (done + i + r.random()) * span
                ts = fromtimestamp(epoch, UTC).isoformat()
                received = fromtimestamp(epoch + 0.05 + r.random() * 2, UTC).isoformat()
                client_id = "evt_" + hexed[i * 64:i * 64 + 32]
                event_lines.append(f"{prefix}{client_id}\t{ts}\t{received}\t".encode() + tails[r.randrange(len(tails))])
                key_lines.append(f"{key_prefix}{client_id}\t\\\\x{hexed[i * 64 + 32:i * 64 + 64]}\t{ts}\n")
            with conn.cursor() as cursor:
                with cursor.copy(key_copy) as copy:
                    copy.write("".join(key_lines).encode())
                with cursor.copy(event_copy) as copy:
                    copy.write(b"".join(event_lines))
            conn.commit()
            done += n
            progress.put((index, n))
    progress.put((index, None))
