#!/usr/bin/env python
"""Ingestion benchmark: POST /api/v1/events through gunicorn, against its COPY ceiling.

Starts the production web server (gunicorn, koala.settings) on a dedicated database,
drives POST /api/v1/events from several client processes with 1000-event batches of
realistic events under the default taxonomy, and in the same run measures the
ceiling: psycopg COPY of the same rows into the same tables with the same
deduplication. Prints sustained events/s, p50/p95 batch latency, server peak RSS,
the ratio end-to-end / ceiling, and where the CPU went, on an empty table and with
millions of events already stored (`--preload 0,5000000`).

    .venv/bin/python bench/ingest.py                           # empty table, 30 s
    .venv/bin/python bench/ingest.py --preload 0,5000000 --keep
    .venv/bin/python bench/ingest.py --preload 5000000 --keep  # reuses the preload

See bench/README.md for what each figure means.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench import eventgen, pgcopy, procstats  # noqa: E402  (after the path fix, light imports only)

# Where the application's code is taken from: the work tree, or an export of --rev.
APP_DIR = REPO
EXPORTED_REV = None

ORG_SLUG = "bench"
PROJECT_SLUG = "bench-app"
PRELOAD_DAYS = 90
# Preloaded events end this long before the preload ran, so everything a benchmark
# writes afterwards (timestamps within minutes of now) is told apart by timestamp.
PRELOAD_GAP = timedelta(hours=1)
SEED = 20261203


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- the HTTP clients (separate processes, spawned) ---------------------------------------------

def http_client(index: int, port: int, key: str, seed: int, templates: int, batch: int, ready, go, start_at,
                stop_at, results) -> None:
    """Pre-generates its bodies, then POSTs them back to back until stop_at.

    Records (sent, done, status, accepted, duplicates, rejected, warned) per request,
    on the machine-wide monotonic clock the parent uses for the measurement window.
    """
    import http.client

    import msgspec

    decode = msgspec.json.decode
    records: list[tuple] = []
    errors: list[str] = []
    reconnects = 0
    try:
        bodies = eventgen.body_templates(seed, templates, batch)
        headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
        stop = pgcopy.wait_for_start(index, ready, go, start_at, stop_at)
        n = 0
        while time.monotonic() < stop:
            body = bodies[n % len(bodies)].stamp()  # fresh random ids; not timed
            n += 1
            if conn.sock is None:
                reconnects += 1
            sent = time.monotonic()
            try:
                conn.request("POST", "/api/v1/events", body=body, headers=headers)
                response = conn.getresponse()
                data = response.read()
            except (OSError, http.client.HTTPException) as error:
                records.append((sent, time.monotonic(), 0, 0, 0, 0, 0))
                if len(errors) < 5:
                    errors.append(f"{type(error).__name__}: {error}")
                conn.close()
                continue
            done = time.monotonic()
            status = response.status
            if status in (200, 207):
                outcome = decode(data)
                records.append((sent, done, status, outcome["accepted"], outcome["duplicates"], outcome["rejected"],
                                len(outcome["warnings"])))
                if outcome["rejected"] and len(errors) < 5:
                    errors.append(json.dumps(outcome["errors"][:2]))
            else:
                records.append((sent, done, status, 0, 0, 0, 0))
                if len(errors) < 5:
                    errors.append(f"HTTP {status}: {data[:300]!r}")
        conn.close()
    except Exception as error:  # reported by the parent
        errors.append(f"client {index} failed: {type(error).__name__}: {error}")
        ready.put(index)
    results.put((index, records, errors, reconnects))


# --- measurement helpers -------------------------------------------------------------------------

def fold_loop(env: dict, stop, results) -> None:
    """What Celery beat does in production: rollup_fold() every ROLLUP_FOLD_SECONDS,
    here for the length of an end-to-end segment, so its cost on ingestion is part of
    the figure."""
    os.environ.update(env)
    import django

    django.setup()
    from django.conf import settings

    from queries.rollups import rollup_fold

    folds, folded, busy = 0, 0, 0.0
    while not stop.is_set():
        started = time.monotonic()
        folded += rollup_fold()
        elapsed = time.monotonic() - started
        folds, busy = folds + 1, busy + elapsed
        stop.wait(max(0.0, settings.ROLLUP_FOLD_SECONDS - elapsed))
    results.put({"folds": folds, "events_folded": folded, "fold_seconds": round(busy, 2)})


def percentile(sorted_values: list[float], fraction: float) -> float | None:
    """Nearest-rank percentile of an ascending list."""
    if not sorted_values:
        return None
    rank = max(1, min(len(sorted_values), int(-(-fraction * len(sorted_values) // 1))))
    return sorted_values[rank - 1]


def window_metrics(records: list[tuple], window_start: float, window_end: float, bucket_s: float = 5.0) -> dict:
    """Throughput and latency of the requests that completed inside the window."""
    inside = [r for r in records if window_start <= r[1] <= window_end]
    seconds = window_end - window_start
    latencies = sorted(r[1] - r[0] for r in inside)
    events = sum(r[3] for r in inside)
    buckets = [0] * max(1, round(seconds / bucket_s))
    bucket_s = seconds / len(buckets)
    for r in inside:
        slot = min(len(buckets) - 1, int((r[1] - window_start) // bucket_s))
        buckets[slot] += r[3]
    statuses: dict[str, int] = {}
    for r in inside:
        statuses[str(r[2])] = statuses.get(str(r[2]), 0) + 1
    return {
        "events_per_s": round(events / seconds, 1),
        "events": events,
        "batches": len(inside),
        "p50_ms": round(percentile(latencies, 0.50) * 1000, 1) if latencies else None,
        "p95_ms": round(percentile(latencies, 0.95) * 1000, 1) if latencies else None,
        "max_ms": round(latencies[-1] * 1000, 1) if latencies else None,
        "bucket_events_per_s": [round(b / bucket_s) for b in buckets],
        "statuses": statuses,
    }


class Database:
    """The benchmark's own database: created, migrated, its bookkeeping in `bench_meta`."""

    def __init__(self, base_url: str, name: str):
        self.base_url = base_url.rstrip("/")
        self.name = name
        self.url = f"{self.base_url}/{name}"

    def admin(self):
        import psycopg

        return psycopg.connect(f"{self.base_url}/postgres", autocommit=True)

    def connect(self):
        import psycopg

        return psycopg.connect(self.url, autocommit=True)

    def exists(self) -> bool:
        with self.admin() as conn:
            return conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [self.name]).fetchone() is not None

    def create(self, *, keep: bool) -> bool:
        """Creates the database (dropping an old one unless `keep`); True when it is new."""
        from psycopg import sql

        with self.admin() as conn:
            found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [self.name]).fetchone()
            if found and keep:
                return False
            if found:
                log(f"dropping database {self.name}")
                conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(self.name)))
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.name)))
        return True

    def meta(self) -> dict:
        with self.connect() as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS bench_meta (key text PRIMARY KEY, value text NOT NULL)")
            return dict(conn.execute("SELECT key, value FROM bench_meta").fetchall())

    def set_meta(self, **values) -> None:
        with self.connect() as conn:
            for key, value in values.items():
                conn.execute("INSERT INTO bench_meta VALUES (%s, %s) ON CONFLICT (key) DO UPDATE SET value = "
                             "excluded.value", [key, str(value)])

    def pg_stats(self) -> dict:
        with self.connect() as conn:
            wal = conn.execute("SELECT wal_bytes, wal_fpi FROM pg_stat_wal").fetchone()
            checkpoints = conn.execute("SELECT checkpoints_timed + checkpoints_req FROM pg_stat_bgwriter").fetchone()
            db = conn.execute("SELECT blks_read, blks_hit, xact_commit FROM pg_stat_database WHERE datname = %s",
                              [self.name]).fetchone()
        return {"wal_bytes": int(wal[0]), "wal_fpi": int(wal[1]), "checkpoints": int(checkpoints[0]),
                "blks_read": int(db[0]), "blks_hit": int(db[1]), "commits": int(db[2])}


def stats_between(before: dict, after: dict, events: int) -> dict:
    delta = {key: after[key] - before[key] for key in before}
    reads = delta["blks_read"] + delta["blks_hit"]
    return {
        "wal_mib": round(delta["wal_bytes"] / 2**20, 1),
        "wal_bytes_per_event": round(delta["wal_bytes"] / events) if events else None,
        "wal_full_page_images": delta["wal_fpi"],
        "checkpoints": delta["checkpoints"],
        "buffer_hit_pct": round(100 * delta["blks_hit"] / reads, 2) if reads else None,
        "blocks_read": delta["blks_read"],
        "commits": delta["commits"],
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- the benchmark -------------------------------------------------------------------------------

class Bench:
    def __init__(self, args):
        self.args = args
        self.db = Database(args.pg, args.db_name)
        self.ctx = mp.get_context("spawn")
        self.workdir = Path(tempfile.mkdtemp(prefix="koala-bench-"))
        self.gunicorn: subprocess.Popen | None = None
        self.port = args.port or free_port()
        self.secret_key = secrets.token_urlsafe(50)
        self.ceiling_tails: list[list[bytes]] | None = None
        self.result: dict = {"config": {k: v for k, v in vars(args).items()}, "phases": []}

    # setup

    def env(self) -> dict:
        env = dict(os.environ)
        env.update({
            "DJANGO_SETTINGS_MODULE": "koala.settings",
            "DATABASE_URL": self.db.url,
            "SECRET_KEY": self.secret_key,
            "ALLOWED_HOSTS": "127.0.0.1",
            "LOG_LEVEL": "WARNING",
            "DEBUG": "false",
            # manage.py would otherwise (re)create or reinstall a virtual environment beside the code.
            "KOALA_NO_VENV": "1",
        })
        return env

    def setup(self) -> None:
        fresh = self.db.create(keep=self.args.keep)
        log(f"database {self.db.name}: {'created' if fresh else 'kept'}; migrating")
        subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=APP_DIR,
                       env=self.env(), check=True)
        os.environ.update(self.env())
        import django

        django.setup()
        import events.ingest

        if not Path(events.ingest.__file__).resolve().is_relative_to(APP_DIR.resolve()):
            raise RuntimeError(f"the application was imported from {events.ingest.__file__}, not from {APP_DIR}")
        from organizations.models import Organization, Project
        from organizations.services import api_key_create, organization_create, project_create

        organization = Organization.objects.filter(slug=ORG_SLUG).first()
        if organization is None:
            organization = organization_create(name="Benchmark Co", slug=ORG_SLUG)
        project = Project.objects.filter(organization=organization, slug=PROJECT_SLUG).first()
        if project is None:
            project = project_create(organization=organization, name="Bench app", slug=PROJECT_SLUG)
        api_key, self.key = api_key_create(organization=organization, project=project, scopes="ingest",
                                           name=f"bench {datetime.now(UTC):%Y-%m-%d %H:%M}")
        from organizations.selectors import api_key_get_by_plaintext

        self.api_key = api_key_get_by_plaintext(plaintext=self.key)  # with organization and project loaded
        self.organization_id, self.project_id = organization.pk, project.pk
        with self.db.connect() as conn:
            self.columns = pgcopy.event_columns(conn)
            # Preloaded events stay out of the rollups: the fold measured is the one of
            # what this run ingests, as in production where the fold keeps up.
            if conn.execute("SELECT to_regclass('queries_rollup_state')").fetchone()[0]:
                conn.execute("UPDATE queries_rollup_state SET watermark = now()")
                conn.execute("INSERT INTO queries_rollup_zone (organization_id, timezone) SELECT id, timezone "
                             "FROM organizations_organization ON CONFLICT (organization_id) DO UPDATE "
                             "SET timezone = EXCLUDED.timezone")
        self.result["config"].update({"organization_id": organization.pk, "project_id": project.pk,
                                      "postgres": self._server_settings(), "git": git_state()})
        self.close_django()

    def _server_settings(self) -> dict:
        with self.db.connect() as conn:
            names = ("server_version", "shared_buffers", "max_wal_size", "synchronous_commit", "wal_level",
                     "checkpoint_timeout", "work_mem")
            return {name: conn.execute(f"SHOW {name}").fetchone()[0] for name in names}

    @staticmethod
    def close_django() -> None:
        from django.db import connections

        connections.close_all()

    def preload_state(self) -> tuple[int, datetime | None]:
        meta = self.db.meta()
        bound = meta.get("preload_until")
        return int(meta.get("preload_rows", 0)), datetime.fromisoformat(bound) if bound else None

    def verify_preload(self) -> None:
        """A kept database must still hold what bench_meta says was preloaded (someone may have
        truncated or deleted rows); otherwise the bookkeeping is corrected to what is there."""
        rows, bound = self.preload_state()
        if not rows:
            return
        with self.db.connect() as conn:
            found = conn.execute('SELECT count(*) FROM events_eventkey WHERE organization_id = %s '
                                 'AND "timestamp" <= %s', [self.organization_id, bound]).fetchone()[0]
        if found != rows:
            log(f"bench_meta says {rows:,} preloaded events but the table holds {found:,}: correcting it")
            self.db.set_meta(preload_rows=found)

    # cleaning between segments

    def cleanup(self) -> None:
        """Back to the preloaded state: removes every event the benchmark itself wrote."""
        rows, bound = self.preload_state()
        started = time.monotonic()
        with self.db.connect() as conn:
            if rows == 0:
                conn.execute("TRUNCATE events_event, events_eventkey")
            else:
                keys = conn.execute('DELETE FROM events_eventkey WHERE organization_id = %s AND "timestamp" > %s',
                                    [self.organization_id, bound]).rowcount
                events = conn.execute('DELETE FROM events_event WHERE organization_id = %s AND "timestamp" > %s',
                                      [self.organization_id, bound]).rowcount
                if keys or events:
                    conn.execute("VACUUM (ANALYZE) events_eventkey")
                    for (partition,) in conn.execute(
                            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                            "WHERE i.inhparent = 'events_event'::regclass AND c.relname >= %s ORDER BY 1",
                            [f"events_event_p{bound:%Y%m}"]).fetchall():
                        conn.execute(f"VACUUM (ANALYZE) {partition}")
                    log(f"cleanup: removed {events:,} events and {keys:,} keys written by the benchmark "
                        f"({time.monotonic() - started:.1f} s)")
            conn.execute("CHECKPOINT")

    def stored_rows(self) -> int:
        with self.db.connect() as conn:
            return conn.execute("SELECT count(*) FROM events_event").fetchone()[0]

    # rows as the application stores them

    def capture(self, seed: int, batches: int) -> list[str]:
        """Sends generated batches through the application's own event_ingest_batch; their ids."""
        import msgspec

        from events.ingest import event_ingest_batch

        ids: list[str] = []
        for template in eventgen.body_templates(seed, batches, self.args.batch):
            body = template.stamp()
            status, outcome = event_ingest_batch(raw_body=body, api_key=self.api_key)
            if outcome["rejected"] or outcome["accepted"] != template.count:
                raise RuntimeError(f"the generated events were not all accepted: {outcome['errors'][:3]}")
            ids.extend(event["id"] for event in msgspec.json.decode(body)["events"])
        self.close_django()
        return ids

    def ceiling_payloads(self) -> list[list[bytes]]:
        """Per ceiling client: the stored rows of the very events HTTP client i sends."""
        if self.ceiling_tails is None:
            started = time.monotonic()
            self.ceiling_tails = []
            for index in range(self.args.ceiling_clients):
                ids = self.capture(SEED + index, self.args.templates)
                with self.db.connect() as conn:
                    self.ceiling_tails.append(
                        pgcopy.capture_stage_tails(conn, self.organization_id, ids, self.columns))
            log(f"ceiling rows captured from the application's own writes ({time.monotonic() - started:.1f} s)")
        return self.ceiling_tails

    # preload

    def preload(self, target: int) -> None:
        rows, bound = self.preload_state()
        missing = target - rows
        if missing <= 0:
            return
        self.cleanup()
        if bound is None:
            bound = datetime.now(UTC) - PRELOAD_GAP
        start = bound - timedelta(days=PRELOAD_DAYS)
        from events.partitions import ensure_partitions

        months, cursor_day = set(), start
        while cursor_day <= bound + timedelta(days=31):
            months.add((cursor_day.year, cursor_day.month))
            cursor_day += timedelta(days=27)
        ensure_partitions(months)
        self.close_django()
        log(f"preloading {missing:,} events over {start:%Y-%m-%d} .. {bound:%Y-%m-%d %H:%M} "
            f"({self.args.preload_procs} COPY connections)")
        ids = self.capture(SEED - 1, 20)
        with self.db.connect() as conn:
            tails = pgcopy.capture_preload_tails(conn, self.organization_id, ids, self.columns)
        procs = self.args.preload_procs
        share = [missing // procs + (1 if i < missing % procs else 0) for i in range(procs)]
        span = (bound - start).total_seconds()
        progress = self.ctx.Queue()
        workers = []
        offset = 0
        for index, count in enumerate(share):
            # Each connection fills its own contiguous slice of time, in time order, as live traffic would.
            lo = start.timestamp() + span * offset / missing
            hi = start.timestamp() + span * (offset + count) / missing
            offset += count
            process = self.ctx.Process(daemon=True, target=pgcopy.preload_worker, args=(
                index, self.db.url, self.columns, self.organization_id, self.project_id, tails, count, lo, hi,
                self.args.preload_chunk, SEED + 1000 * (rows + 1) + index, progress))
            process.start()
            workers.append(process)
        self.children = workers
        started = time.monotonic()
        done, finished, last_report = 0, 0, started
        while finished < len(workers):
            try:
                index, count = progress.get(timeout=600)
            except Exception:
                raise RuntimeError("the preload stalled: no progress for 10 minutes") from None
            if count is None:
                finished += 1
                continue
            done += count
            if time.monotonic() - last_report > 15:
                last_report = time.monotonic()
                log(f"preload: {done:,}/{missing:,} ({done / (last_report - started):,.0f} rows/s)")
        for process in workers:
            process.join()
            if process.exitcode != 0:
                raise RuntimeError(f"a preload process failed (exit {process.exitcode})")
        copy_s = time.monotonic() - started
        log(f"preload: {missing:,} rows in {copy_s:.0f} s ({missing / copy_s:,.0f} rows/s); VACUUM ANALYZE")
        with self.db.connect() as conn:
            conn.execute("VACUUM (ANALYZE) events_eventkey")
            conn.execute("VACUUM (ANALYZE) events_event")
            conn.execute("CHECKPOINT")
        self.db.set_meta(preload_rows=rows + missing, preload_until=bound.isoformat())
        log(f"preload done in {time.monotonic() - started:.0f} s")

    # the server

    def start_server(self) -> None:
        from gunicorn.config import Config

        command = [sys.executable, "-m", "gunicorn", "koala.wsgi:application", "-w", str(self.args.workers),
                   "-b", f"127.0.0.1:{self.port}", "--worker-class", self.args.worker_class]
        if self.args.threads:
            command += ["--threads", str(self.args.threads)]
        if self.args.gunicorn_preload:
            command.append("--preload")
        if "control_socket_disable" in Config().settings:
            command.append("--no-control-socket")
        self.server_log = open(self.workdir / "gunicorn.log", "wb")
        log(f"starting {' '.join(command[1:])} (log: {self.workdir / 'gunicorn.log'})")
        self.gunicorn = subprocess.Popen(command, cwd=APP_DIR, env=self.env(), stdout=self.server_log,
                                         stderr=subprocess.STDOUT)
        self.result["config"]["gunicorn_command"] = " ".join(command[1:])
        import http.client

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.gunicorn.poll() is not None:
                raise RuntimeError(f"gunicorn exited: see {self.workdir / 'gunicorn.log'}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                conn.request("GET", "/healthz")
                conn.getresponse().read()
                conn.close()
                sampler = procstats.RssSampler(self.gunicorn.pid)
                if len(sampler.worker_pids()) >= self.args.workers:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError("gunicorn did not answer within 60 s")

    def stop_server(self) -> None:
        if self.gunicorn is not None and self.gunicorn.poll() is None:
            self.gunicorn.terminate()
            try:
                self.gunicorn.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.gunicorn.kill()
                self.gunicorn.wait()
        self.gunicorn = None

    # timed segments

    def _run_clients(self, target, argsets: list[tuple], *, rss: bool, label: str, py_spy: bool = False) -> dict:
        args = self.args
        ready, results, go = self.ctx.Queue(), self.ctx.Queue(), self.ctx.Event()
        start_at, stop_at = self.ctx.Value("d", 0.0), self.ctx.Value("d", 0.0)
        processes = [self.ctx.Process(target=target, args=(*argset, ready, go, start_at, stop_at, results),
                                      daemon=True) for argset in argsets]
        self.children = processes
        for process in processes:
            process.start()
        for _ in processes:
            ready.get(timeout=600)
        quiet = self.wait_quiet()
        speed = speed_ms()
        sampler = None
        idle_rss = None
        if rss:
            sampler = procstats.RssSampler(self.gunicorn.pid)
            sampler.sample()
            idle_rss = round(sampler.peak_sum / 1024, 1)
            sampler.start()
        t0 = time.monotonic() + 0.5
        window_start, window_end = t0 + args.warmup, t0 + args.warmup + args.seconds
        start_at.value, stop_at.value = t0, window_end
        go.set()
        client_pids = [p.pid for p in processes]
        gunicorn_pid = self.gunicorn.pid if (rss and self.gunicorn) else None
        time.sleep(max(0.0, window_start - time.monotonic()))
        cpu_before = procstats.CpuSnapshot(gunicorn_pid, client_pids, self.db.name)
        pg_before = self.db.pg_stats()
        spies = self._start_py_spy(label) if py_spy else []
        time.sleep(max(0.0, window_end - time.monotonic()))
        cpu_after = procstats.CpuSnapshot(gunicorn_pid, client_pids, self.db.name)
        pg_after = self.db.pg_stats()
        collected = [results.get(timeout=900) for _ in processes]
        for process in processes:
            process.join(timeout=60)
        memory = sampler.stop() if sampler else None
        if memory:
            memory["idle_sum_mib"] = idle_rss
        records = [record for item in collected for record in item[1]]
        errors = [error for item in collected for error in item[2]]
        metrics = window_metrics(records, window_start, window_end)
        metrics.update({
            "clients": len(processes),
            "busy_cores_before_start": quiet,
            "speed_ms": round((speed + speed_ms()) / 2, 1),
            "cpu": procstats.cpu_between(cpu_before, cpu_after),
            "postgres": stats_between(pg_before, pg_after, metrics["events"]),
            "errors": errors[:10],
            "accepted_total": sum(r[3] for r in records),
            "rejected_total": sum(r[5] for r in records),
            "warned_events_pct": round(100 * sum(r[6] for r in records) / max(1, sum(r[3] for r in records)), 1),
        })
        metrics["cpu_us_per_event"] = cpu_per_event(metrics["cpu"], metrics["events"])
        if len(collected[0]) > 3:
            metrics["reconnects"] = sum(item[3] for item in collected)
        if memory:
            metrics["rss"] = memory
        if spies:
            metrics["py_spy"] = self._finish_py_spy(spies)
        return metrics

    def wait_quiet(self) -> float:
        """Waits (up to --wait-quiet seconds) until the machine is idle before a segment starts.

        Other processes on the machine (a test suite, a build) take CPU from the server and
        PostgreSQL and make every figure low; their share is also reported as "other" CPU.
        """
        import psutil

        deadline = time.monotonic() + self.args.wait_quiet
        while True:
            busy = psutil.cpu_percent(interval=1.0) * psutil.cpu_count() / 100
            if busy <= self.args.quiet_cores or time.monotonic() >= deadline:
                if busy > self.args.quiet_cores:
                    log(f"starting although the machine is busy ({busy:.2f} cores used by other processes)")
                return round(busy, 2)
            log(f"waiting for a quiet machine: {busy:.2f} cores busy (limit {self.args.quiet_cores})")
            time.sleep(2)

    def run_e2e(self, label: str, *, fold: bool) -> dict:
        args = self.args
        log(f"[{label}] end to end: {args.clients} clients -> gunicorn ({args.workers} workers), "
            f"{args.warmup:g} s warm-up + {args.seconds:g} s, rollup fold {'on' if fold else 'off'}")
        argsets = [(index, self.port, self.key, SEED + index, args.templates, args.batch)
                   for index in range(args.clients)]
        folder = None
        if fold:
            stop, folds = self.ctx.Event(), self.ctx.Queue()
            folder = self.ctx.Process(target=fold_loop, args=(self.env(), stop, folds), daemon=True)
            folder.start()
        metrics = self._run_clients(http_client, argsets, rss=True, label=label, py_spy=args.py_spy)
        if folder is not None:
            stop.set()
            metrics["fold"] = folds.get(timeout=300)
            folder.join(timeout=60)
        metrics["rows_stored_check"] = self._rows_check(metrics["accepted_total"])
        return metrics

    def _rows_check(self, accepted: int) -> dict:
        rows, bound = self.preload_state()
        with self.db.connect() as conn:
            if bound is None:
                stored = conn.execute("SELECT count(*) FROM events_event").fetchone()[0]
            else:
                stored = conn.execute('SELECT count(*) FROM events_event WHERE organization_id = %s AND '
                                      '"timestamp" > %s', [self.organization_id, bound]).fetchone()[0]
        return {"accepted_in_responses": accepted, "rows_in_table": stored, "ok": accepted == stored}

    def run_ceiling(self, label: str) -> dict:
        args = self.args
        tails = self.ceiling_payloads()
        log(f"[{label}] ceiling: {args.ceiling_clients} psycopg connections, COPY to staging + INSERT .. ON "
            f"CONFLICT + INSERT .. SELECT per {args.batch} rows, {args.warmup:g} s warm-up + {args.seconds:g} s")
        argsets = [(index, self.db.url, self.columns, tails[index], args.batch)
                   for index in range(args.ceiling_clients)]
        return self._run_clients(pgcopy.ceiling_client, argsets, rss=False, label=label)

    # py-spy on the workers during the measurement window

    def _start_py_spy(self, label: str) -> list:
        binary = self.args.py_spy_bin
        spies = []
        for pid in procstats.RssSampler(self.gunicorn.pid).worker_pids():
            out = self.workdir / f"py-spy-{label}-{pid}.txt"
            command = [binary, "record", "--pid", str(pid), "--duration", str(int(self.args.seconds)), "--rate",
                       "100", "--format", "raw", "--nonblocking", "--output", str(out)]
            spies.append((subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL), out))
        return spies

    def _finish_py_spy(self, spies: list) -> dict:
        for process, _ in spies:
            process.wait(timeout=120)
        return summarize_collapsed([out for _, out in spies])

    # the whole run

    def run(self) -> dict:
        args = self.args
        self.setup()
        levels = sorted({int(level) for level in args.preload.split(",")})
        self.verify_preload()
        if args.profile_only:
            self.cleanup()
            self.result["profile"] = self.profile(args.profile or 20)
            self.cleanup()
            return self.result
        self.start_server()
        self.result["config"]["gunicorn_pid"] = self.gunicorn.pid
        for level in levels:
            rows, _ = self.preload_state()
            if level == 0 and rows > 0:
                log(f"skipping the empty-table phase: the kept database holds {rows:,} preloaded events "
                    "(run without --keep for an empty table)")
                continue
            if level > rows:
                self.preload(level)
                rows, _ = self.preload_state()
            label = "empty" if rows == 0 else f"{rows / 1e6:g}M"
            phase = {"label": label, "stored_before": rows, "rounds": []}
            e2e_runs, ceiling_runs, bare_runs = [], [], []
            for round_ in range(args.repeat):
                # End to end and ceiling alternate, so both see the same machine (its speed drifts).
                self.cleanup()
                e2e = self.run_e2e(label, fold=args.fold != "off")
                e2e_runs.append(e2e)
                entry = {"e2e_events_per_s": e2e["events_per_s"], "e2e_speed_ms": e2e["speed_ms"]}
                if args.fold == "both":
                    # The same segment without the fold, minutes apart: the rollups' cost.
                    self.cleanup()
                    bare = self.run_e2e(label, fold=False)
                    bare_runs.append(bare)
                    entry.update({"e2e_without_fold_events_per_s": bare["events_per_s"],
                                  "fold_ratio": round(e2e["events_per_s"] / bare["events_per_s"], 3)
                                  if bare["events_per_s"] else None})
                if not args.no_ceiling:
                    self.cleanup()
                    ceiling = self.run_ceiling(label)
                    ceiling_runs.append(ceiling)
                    rate = ceiling["events_per_s"]
                    entry.update({"ceiling_events_per_s": rate, "ceiling_speed_ms": ceiling["speed_ms"],
                                  "ratio": round(e2e["events_per_s"] / rate, 3) if rate else None})
                phase["rounds"].append(entry)
                log(f"[{label}] round {round_ + 1}/{args.repeat}: e2e {e2e['events_per_s']:,.0f} ev/s"
                    + (f", ceiling {entry['ceiling_events_per_s']:,.0f} ev/s" if ceiling_runs else ""))
            # The figures of a phase are the median round's (by rate); the ratio is the median of the
            # rounds' ratios, each taken from an end-to-end and a ceiling segment minutes apart.
            phase["e2e"] = median_run(e2e_runs)
            if bare_runs:
                phase["e2e_without_fold"] = median_run(bare_runs)
                fold_ratios = sorted(entry["fold_ratio"] for entry in phase["rounds"] if entry.get("fold_ratio"))
                phase["fold_ratio"] = fold_ratios[(len(fold_ratios) - 1) // 2] if fold_ratios else None
            if ceiling_runs:
                phase["ceiling"] = median_run(ceiling_runs)
                ratios = sorted(entry["ratio"] for entry in phase["rounds"] if entry.get("ratio") is not None)
                phase["ratio"] = ratios[(len(ratios) - 1) // 2] if ratios else None
            self.result["phases"].append(phase)
        if args.profile:
            self.cleanup()
            self.result["profile"] = self.profile(args.profile)
        self.cleanup()
        return self.result

    def profile(self, batches: int) -> dict:
        """Where the time goes in event_ingest_batch, in this process, on `batches` 1000-event batches."""
        import cProfile
        import io
        import pstats

        from events import ingest
        from organizations.selectors import api_key_get_by_plaintext

        api_key = api_key_get_by_plaintext(plaintext=self.key)
        bodies = [t.stamp() for t in eventgen.body_templates(SEED + 99, batches, self.args.batch)]
        extra = [t.stamp() for t in eventgen.body_templates(SEED + 98, 2, self.args.batch)]
        for body in extra:  # warm: taxonomy compiled, partitions known, connection open
            ingest.event_ingest_batch(raw_body=body, api_key=api_key)

        # The stages of the ingest module at the time of writing; whichever still exist are timed.
        names = [name for name in ("parse_body", "_prepare_batch", "_store", "_write") if hasattr(ingest, name)]
        stages = {name: 0.0 for name in names}
        cpu_stages = {name: 0.0 for name in names}
        originals = {name: getattr(ingest, name) for name in stages}

        def timed(name):
            function = originals[name]

            def wrapper(*a, **kw):
                started, started_cpu = time.perf_counter(), time.thread_time()
                try:
                    return function(*a, **kw)
                finally:
                    stages[name] += time.perf_counter() - started
                    cpu_stages[name] += time.thread_time() - started_cpu
            return wrapper

        for name in stages:
            setattr(ingest, name, timed(name))
        try:
            started, started_cpu = time.perf_counter(), time.thread_time()
            for body in bodies[: batches // 2]:
                ingest.event_ingest_batch(raw_body=body, api_key=api_key)
            total, total_cpu = time.perf_counter() - started, time.thread_time() - started_cpu
        finally:
            for name, function in originals.items():
                setattr(ingest, name, function)
        timed_events = (batches // 2) * self.args.batch
        per_event = {name: round(seconds / timed_events * 1e6, 2) for name, seconds in stages.items()}
        per_event["total"] = round(total / timed_events * 1e6, 2)
        if "_store" in per_event and "_write" in per_event:
            per_event["commit_and_rest_of_store"] = round(per_event["_store"] - per_event["_write"], 2)
        per_event["other"] = round(per_event["total"] - sum(per_event.get(name, 0) for name in
                                                            ("parse_body", "_prepare_batch", "_store")), 2)
        cpu_per_event = {name: round(seconds / timed_events * 1e6, 2) for name, seconds in cpu_stages.items()}
        cpu_per_event["total"] = round(total_cpu / timed_events * 1e6, 2)

        profiler = cProfile.Profile()
        for body in bodies[batches // 2:]:
            profiler.runcall(ingest.event_ingest_batch, raw_body=body, api_key=api_key)
        profiled_events = (batches - batches // 2) * self.args.batch
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out)
        stats.sort_stats("tottime").print_stats(30)
        stats.sort_stats("cumulative").print_stats(40)
        path = self.workdir / "profile.txt"
        path.write_text(out.getvalue())
        top = []
        for (filename, line, function), (cc, nc, tottime, cumtime, _) in sorted(
                stats.stats.items(), key=lambda item: -item[1][2])[:25]:
            short = filename.replace(str(APP_DIR) + "/", "").replace(str(REPO) + "/", "").split("site-packages/")[-1]
            top.append({"function": f"{short}:{line}({function})", "calls_per_event": round(nc / profiled_events, 2),
                        "tottime_us_per_event": round(tottime / profiled_events * 1e6, 2),
                        "cumtime_us_per_event": round(cumtime / profiled_events * 1e6, 2)})
        # The stages as the profiler saw them: what event_ingest_batch itself called, by cumulative time
        # (robust to the module being reorganized, unlike the named stages above).
        stats.calc_callees()
        stages_seen = []
        for key in stats.stats:
            if key[2] != "event_ingest_batch":
                continue
            for (filename, line, function), value in stats.all_callees[key].items():
                cumtime = value[3] if isinstance(value, tuple) else 0.0
                short = filename.replace(str(APP_DIR) + "/", "").replace(str(REPO) + "/", "")
                stages_seen.append({"function": f"{short.split('site-packages/')[-1]}:{line}({function})",
                                    "cumtime_us_per_event": round(cumtime / profiled_events * 1e6, 2)})
        stages_seen.sort(key=lambda row: -row["cumtime_us_per_event"])
        self.close_django()
        return {"events_timed": timed_events, "us_per_event": per_event, "cpu_us_per_event": cpu_per_event,
                "callees_of_event_ingest_batch": stages_seen[:8], "top_tottime": top,
                "cprofile_file": str(path)}

    def shutdown(self) -> None:
        for process in getattr(self, "children", []):
            if process.is_alive():
                process.terminate()
        self.stop_server()


def speed_ms() -> float:
    """How fast this machine runs a fixed piece of Python right now (ms, best of 3; lower is faster).

    Cloud machines drift: the same code ran 1.5x slower from one minute to the next here, with
    nothing else running. Each segment records this before and after, so runs can be compared.
    """
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        table = {}
        for i in range(60_000):
            table[str(i)] = i * 2
        sum(len(key) for key in table)
        best = min(best, time.perf_counter() - started)
    return best * 1000


def median_run(runs: list[dict]) -> dict:
    """The run with the median rate (the lower middle one for an even count)."""
    ordered = sorted(runs, key=lambda run: run["events_per_s"])
    return ordered[(len(ordered) - 1) // 2]


def cpu_per_event(cpu: dict, events: int) -> dict:
    """CPU microseconds per stored event by group, and the CPU-bound rate they imply.

    `cpu_bound_events_per_s` = cores / (benchmark CPU per event): what the same work would
    reach on this machine with nothing else running and no idle time. It is an upper
    bound, useful when other processes took CPU during the window ("other").
    """
    if not events:
        return {}
    seconds = cpu["seconds"]
    per_event = {group: round(value / events * 1e6, 1) for group, value in seconds.items()}
    own = sum(value for group, value in seconds.items() if group != "other") / events
    per_event["cpu_bound_events_per_s"] = round(cpu["cores"] / own) if own else None
    return per_event


def git_revision(rev: str) -> str:
    return subprocess.run(["git", "rev-parse", "--short", rev], cwd=REPO, capture_output=True, text=True).stdout.strip()


def git_state() -> dict:
    """The code measured: an exported revision, or the work tree with the files that differ from HEAD."""
    if APP_DIR != REPO:
        return {"source": f"git archive of {EXPORTED_REV}", "commit": git_revision(EXPORTED_REV)}
    status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO, capture_output=True,
                            text=True).stdout
    return {"source": "work tree", "commit": git_revision("HEAD"),
            "modified_files": [line[3:] for line in status.splitlines() if line[3:]]}


def summarize_collapsed(paths: list[Path], top: int = 60) -> dict:
    """py-spy raw (collapsed) stacks -> share of samples per function, self and inclusive."""
    total = 0
    inclusive: dict[str, int] = {}
    self_time: dict[str, int] = {}
    for path in paths:
        if not path.exists():
            continue
        for line in path.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            if not count.isdigit():
                continue
            n = int(count)
            total += n
            frames = [_frame_name(frame) for frame in stack.split(";")]
            for frame in set(frames):
                inclusive[frame] = inclusive.get(frame, 0) + n
            self_time[frames[-1]] = self_time.get(frames[-1], 0) + n
    if not total:
        return {"samples": 0}

    def share(table):
        return [{"function": name, "pct": round(100 * n / total, 1)}
                for name, n in sorted(table.items(), key=lambda item: -item[1])[:top]]

    return {"samples": total, "self": share(self_time), "inclusive": share(inclusive),
            "files": [str(path) for path in paths]}


def _frame_name(frame: str) -> str:
    """`prepare_event (events/ingest.py:312)` -> `prepare_event (events/ingest.py)`."""
    name, _, where = frame.partition(" (")
    where = where.rstrip(")").rsplit(":", 1)[0]
    where = where.split("site-packages/")[-1].replace(str(APP_DIR) + "/", "").replace(str(REPO) + "/", "")
    return f"{name} ({where})" if where else name


# --- output --------------------------------------------------------------------------------------

def _mib(value) -> str:
    return "-" if value is None else f"{value:,.0f} MiB"


def render_table(result: dict) -> str:
    config = result["config"]
    lines = [
        f"TrackingKoala ingest benchmark: gunicorn {config['workers']} {config['worker_class']} workers, "
        f"{config['clients']} HTTP clients, ceiling {config['ceiling_clients']} connections, batch {config['batch']}, "
        f"{config['seconds']:g} s measured after {config['warmup']:g} s warm-up; PostgreSQL "
        f"{config['postgres']['server_version']} shared_buffers={config['postgres']['shared_buffers']} "
        f"synchronous_commit={config['postgres']['synchronous_commit']}",
        "",
        f"{'stored before':>14} {'e2e ev/s':>9} {'p50 ms':>7} {'p95 ms':>7} {'ceiling ev/s':>12} {'e2e/ceil':>8} "
        f"{'RSS sum pk':>11} {'RSS/worker pk':>13}",
    ]
    for phase in result["phases"]:
        e2e, ceiling = phase["e2e"], phase.get("ceiling")
        rss = e2e.get("rss", {})
        lines.append(
            f"{phase['stored_before']:>14,} {e2e['events_per_s']:>9,.0f} {e2e['p50_ms'] or 0:>7.0f} "
            f"{e2e['p95_ms'] or 0:>7.0f} {(ceiling or {}).get('events_per_s', 0):>12,.0f} "
            f"{(phase.get('ratio') or 0) * 100:>7.0f}% {_mib(rss.get('peak_sum_mib')):>11} "
            f"{_mib(rss.get('peak_worker_max_mib')):>13}")
    lines.append("")
    for phase in result["phases"]:
        rounds = phase.get("rounds", [])
        if len(rounds) > 1:
            lines.append(f"{phase['label']:>6} rounds (e2e / ceiling ev/s, ratio, speed ms): " + "; ".join(
                f"{r['e2e_events_per_s']:,.0f} / {r.get('ceiling_events_per_s', 0):,.0f}, "
                f"{(r.get('ratio') or 0) * 100:.0f}%, {r['e2e_speed_ms']}" for r in rounds))
    for phase in result["phases"]:
        for name in ("e2e", "ceiling"):
            segment = phase.get(name)
            if not segment:
                continue
            cpu = segment["cpu"]
            seconds = cpu["seconds"]
            events = max(1, segment["events"])
            per_event = ", ".join(f"{group} {value / events * 1e6:,.0f}" for group, value in seconds.items()
                                  if value > 0.05)
            pg = segment["postgres"]
            bound = segment.get("cpu_us_per_event", {}).get("cpu_bound_events_per_s")
            lines.append(
                f"{phase['label']:>6} {name:<7} CPU busy {cpu['busy_cores']:.2f}/{cpu['cores']} cores "
                f"(iowait {cpu['iowait_cores']:.2f}, steal {cpu.get('steal_cores', 0):.2f}); "
                f"CPU us/event: {per_event}; "
                f"speed {segment.get('speed_ms')} ms; CPU-bound at "
                f"{bound or 0:,} ev/s; WAL {pg['wal_bytes_per_event']} "
                f"B/event, {pg['checkpoints']} checkpoints; per-5s ev/s {min(segment['bucket_events_per_s']):,}"
                f"..{max(segment['bucket_events_per_s']):,}")
    for phase in result["phases"]:
        for name in ("e2e", "ceiling"):
            segment = phase.get(name)
            if segment and segment["cpu"]["seconds"]["other"] / segment["cpu"]["wall_s"] > 0.2:
                lines.append(f"WARNING {phase['label']} {name}: other processes used "
                             f"{segment['cpu']['seconds']['other'] / segment['cpu']['wall_s']:.2f} cores during the "
                             "window; its figures are lower than the machine can do")
    checks = []
    for phase in result["phases"]:
        e2e = phase["e2e"]
        worker_peak = e2e.get("rss", {}).get("peak_worker_max_mib") or 0
        checks.append(f"{phase['label']}: e2e >= 15,000 ev/s {'PASS' if e2e['events_per_s'] >= 15000 else 'FAIL'}; "
                      + (f"e2e >= 50% of ceiling {'PASS' if (phase.get('ratio') or 0) >= 0.5 else 'FAIL'}; "
                         if "ratio" in phase else "")
                      + f"RSS < 300 MiB/worker {'PASS' if worker_peak < 300 else 'FAIL'}; "
                      + f"rows stored == accepted {'yes' if e2e['rows_stored_check']['ok'] else 'NO'}; "
                      + f"rejected {e2e['rejected_total']}, flagged events {e2e['warned_events_pct']}%")
    for phase in result["phases"]:
        fold = phase["e2e"].get("fold")
        if fold:
            lines.append(f"{phase['label']:>6} rollup fold during e2e: {fold['folds']} folds, "
                         f"{fold['events_folded']:,} events in {fold['fold_seconds']} s")
        if phase.get("fold_ratio") is not None:
            bare = phase["e2e_without_fold"]["events_per_s"]
            checks.append(f"{phase['label']}: with the rollup fold {phase['e2e']['events_per_s']:,.0f} ev/s, without "
                          f"{bare:,.0f}: {phase['fold_ratio'] * 100:.0f}% (goal >= 80%) "
                          f"{'PASS' if phase['fold_ratio'] >= 0.8 else 'FAIL'}")
    lines += ["", "goals: " + "\n       ".join(checks)]
    errors = [error for phase in result["phases"] for seg in ("e2e", "ceiling") for error in
              phase.get(seg, {}).get("errors", [])]
    if errors:
        lines += ["", "errors (first few):", *("  " + error for error in errors[:5])]
    profile = result.get("profile")
    if profile:
        us = profile["us_per_event"]
        lines += ["", f"profile of event_ingest_batch in-process ({profile['events_timed']:,} events), wall us/event: "
                      + ", ".join(f"{k} {v}" for k, v in us.items()),
                  "    CPU us/event of this process: "
                  + ", ".join(f"{k} {v}" for k, v in profile["cpu_us_per_event"].items()),
                  "    under cProfile, what event_ingest_batch calls (cumulative us/event): "
                  + ", ".join(f"{row['function'].rsplit('/', 1)[-1]} {row['cumtime_us_per_event']}"
                              for row in profile.get("callees_of_event_ingest_batch", [])[:6]),
                  "top functions by own time (us/event):"]
        lines += [f"  {row['tottime_us_per_event']:>7} own {row['cumtime_us_per_event']:>8} cum "
                  f"{row['calls_per_event']:>6} calls  {row['function']}" for row in profile["top_tottime"][:15]]
        lines.append(f"  full cProfile output: {profile['cprofile_file']}")
    for phase in result["phases"]:
        spy = phase["e2e"].get("py_spy")
        if spy and spy.get("samples"):
            lines += ["", f"py-spy of the workers during the {phase['label']} window ({spy['samples']} samples), "
                          "% of worker CPU samples; inclusive (below the WSGI stack):"]
            lines += [f"  {row['pct']:>5}%  {row['function']}" for row in spy["inclusive"] if row["pct"] < 90][:22]
            lines += ["  self (the frame on top of the stack):"]
            lines += [f"  {row['pct']:>5}%  {row['function']}" for row in spy["self"][:12]]
    return "\n".join(lines)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--pg", default=os.environ.get("BENCH_PG", "postgres://postgres@127.0.0.1:5432"),
                        help="PostgreSQL server URL without a database name")
    parser.add_argument("--db-name", default="trackingkoala_bench", help="the benchmark's own database")
    parser.add_argument("--keep", action="store_true",
                        help="reuse the database (and its preload) instead of dropping and recreating it")
    parser.add_argument("--preload", default="0",
                        help="comma-separated table sizes to measure at, e.g. 0,5000000 (preloads as needed)")
    parser.add_argument("--preload-procs", type=int, default=2, help="COPY connections for the preload")
    parser.add_argument("--preload-chunk", type=int, default=20000, help="preload rows per transaction")
    parser.add_argument("--clients", type=int, default=4, help="HTTP client processes")
    parser.add_argument("--ceiling-clients", type=int, default=None,
                        help="psycopg connections for the ceiling (default: as many as --clients)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument("--worker-class", default="sync", help="gunicorn worker class")
    parser.add_argument("--threads", type=int, default=0, help="gunicorn --threads (0: not passed)")
    parser.add_argument("--gunicorn-preload", action="store_true",
                        help="pass --preload to gunicorn (load the app in the master, as `manage.py up` does)")
    parser.add_argument("--batch", type=int, default=1000, help="events per request / rows per ceiling transaction")
    parser.add_argument("--templates", type=int, default=8,
                        help="distinct pre-generated batches per client (ids are fresh on every request)")
    parser.add_argument("--seconds", type=float, default=30, help="measured duration of each segment")
    parser.add_argument("--warmup", type=float, default=5, help="unmeasured warm-up before each segment")
    parser.add_argument("--repeat", type=int, default=1,
                        help="rounds of end to end + ceiling per table size; the median round is reported")
    parser.add_argument("--no-ceiling", action="store_true", help="skip the COPY ceiling")
    parser.add_argument("--fold", choices=["on", "off", "both"], default="on",
                        help="run the rollup fold every ROLLUP_FOLD_SECONDS during end-to-end segments, as beat "
                             "does in production (both: each round also runs without it, and reports the ratio)")
    parser.add_argument("--profile", type=int, default=0, metavar="BATCHES",
                        help="also profile event_ingest_batch in-process on this many batches (e.g. 20)")
    parser.add_argument("--profile-only", action="store_true",
                        help="only the in-process profile (no server, no clients); with --keep, on the preloaded table")
    parser.add_argument("--py-spy", action="store_true", help="sample the workers with py-spy during each e2e window")
    parser.add_argument("--py-spy-bin", default=os.environ.get("PY_SPY", "py-spy"), help="the py-spy executable")
    parser.add_argument("--wait-quiet", type=float, default=120, metavar="SECONDS",
                        help="before each segment, wait up to this long for other processes to go idle")
    parser.add_argument("--quiet-cores", type=float, default=0.3,
                        help="what counts as idle for --wait-quiet: cores busy outside the benchmark")
    parser.add_argument("--rev", default=None,
                        help="measure this git revision (exported with git archive) instead of the work tree")
    parser.add_argument("--port", type=int, default=0, help="gunicorn port (default: a free one)")
    parser.add_argument("--json", action="store_true",
                        help="print the full result as JSON on stdout (the table then goes to stderr)")
    args = parser.parse_args(argv)
    if args.ceiling_clients is None:
        args.ceiling_clients = args.clients
    return args


def export_revision(rev: str) -> Path:
    """`git archive` of a revision into a temporary folder: the code measured cannot change mid-run."""
    global APP_DIR, EXPORTED_REV
    target = Path(tempfile.mkdtemp(prefix="koala-bench-src-"))
    archive = subprocess.run(["git", "archive", "--format=tar", rev], cwd=REPO, capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive.stdout, check=True)
    # The benchmark itself always comes from the work tree, never from the export.
    shutil.rmtree(target / "bench", ignore_errors=True)
    APP_DIR, EXPORTED_REV = target, rev
    sys.path.insert(0, str(target))
    # bench/eventgen.py read its vocabulary from the work tree's events.demo: forget that
    # package, so the application measured is imported from the export.
    for name in [name for name in sys.modules if name == "events" or name.startswith("events.")]:
        del sys.modules[name]
    # Importing koala (Celery) puts the working directory first on sys.path: make it the export.
    os.chdir(target)
    return target


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.rev:
        log(f"measuring {args.rev} ({git_revision(args.rev)}), exported to {export_revision(args.rev)}")

    def stop(signum, frame):
        raise SystemExit(f"stopped by signal {signum}")

    signal.signal(signal.SIGTERM, stop)
    bench = Bench(args)
    try:
        result = bench.run()
    finally:
        bench.shutdown()
    table = render_table(result)
    if args.json:
        print(table, file=sys.stderr)
        print(json.dumps(result, indent=2, default=str))
    else:
        print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
