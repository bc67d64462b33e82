#!/usr/bin/env python
"""Budgets benchmark: one full sweep of 10,000 budgets, and event-to-email latency.

On a dedicated database (`trackingkoala_bench_budgets`, created and migrated here):
1,000 organizations (five time zones) with three projects each, `--events` events
over the last 90 days from the reports data set's generator (bench/dataset.py,
generated inside PostgreSQL), the rollups built once, and `--budgets-per-org` budgets
each (all four periods, a third project-scoped, filters on environment, provider and
model, one in twenty on tags; amounts 0.3 to 2.7 times the period's average spend).

1. **Sweep**: `budgets_evaluate_all()` (what beat's `budgets_sweep` runs every minute)
   `--sweeps` times. The first claims the alerts the data set crosses; later ones claim
   nothing (the steady state). Also timed alone: the spend statement(s) and the spike
   statement(s).
2. **Latency**: a real Celery worker (`celery -A koala worker`, production settings)
   and beat (the rollup fold every 10 s, the sweep every minute) on Redis, an SMTP
   server (aiosmtpd) in this process. `--samples` times: a fresh daily budget of 1 in
   a random organization, then one event of cost 2 through `event_ingest_batch`
   (ingestion's own code, which asks for an evaluation after commit); the clock runs
   from the ingest's return to the email's arrival at the SMTP server.

    .venv/bin/python bench/budgets.py --events 10000000 --keep
    .venv/bin/python bench/budgets.py --events 1000000          # a quicker look
    .venv/bin/python bench/budgets.py --reuse                  # the data set of a --keep run

See bench/README.md ("Budgets benchmark").
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

DATABASE = "trackingkoala_bench_budgets"
ORGANIZATIONS = 1000
ZONES = ["UTC", "Europe/Paris", "America/New_York", "Asia/Kolkata", "Australia/Sydney"]


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def server_url(args) -> str:
    return args.postgres.rstrip("/")


def prepare_database(args) -> str:
    import psycopg
    from psycopg import sql

    url = f"{server_url(args)}/{DATABASE}"
    with psycopg.connect(f"{server_url(args)}/postgres", autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [DATABASE]).fetchone()
        if exists and not args.reuse:
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(DATABASE)))
        if not exists or not args.reuse:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DATABASE)))
    env = dict(os.environ, DATABASE_URL=url, REDIS_URL=args.redis)
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=REPO, env=env, check=True)
    return url


def setup_django(url: str, args) -> None:
    os.environ.update(DATABASE_URL=url, REDIS_URL=args.redis, DJANGO_SETTINGS_MODULE="koala.settings",
                      LOG_LEVEL="WARNING")
    import django

    django.setup()


# --- the data set -------------------------------------------------------------------------------

def load(args, url: str) -> None:
    """1,000 organizations with the three projects and the events of bench/dataset.py
    (the reports data set's generator, events/demo.py), `--events` in all, then the
    rollups built once, and `--budgets-per-org` budgets each."""
    from concurrent.futures import ThreadPoolExecutor
    from datetime import UTC, datetime, timedelta

    from django.db import connection

    from bench import dataset
    from budgets.models import Budget
    from events.partitions import ensure_partitions
    from organizations.models import Organization, Project
    from queries.rollups import rollup_rebuild

    started = time.monotonic()
    # Through the ORM (its defaults fill whatever columns the schema has today); the setup
    # hooks (taxonomy, saved queries) run later, only for the organizations that ingest.
    organizations = Organization.objects.bulk_create(
        [Organization(name=f"Bench {n}", slug=f"bench-{n}", timezone=ZONES[n % len(ZONES)])
         for n in range(1, ORGANIZATIONS + 1)])
    Project.objects.bulk_create([Project(organization=organization, name=slug, slug=slug)
                                 for organization in organizations for slug in dataset.PROJECTS])
    projects_of: dict[int, list[int]] = {}
    for organization_id, project_id in Project.objects.order_by("id").values_list("organization_id", "id"):
        projects_of.setdefault(organization_id, []).append(project_id)
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    months, day = set(), (end - timedelta(days=dataset.DAYS + 1)).date()
    while day <= end.date() + timedelta(days=31):
        months.add((day.year, day.month))
        day += timedelta(days=1)
    ensure_partitions(months)
    per_organization = args.events // ORGANIZATIONS
    done = [0]

    def load_one(organization_id: int) -> None:
        dataset.load_events(url, organization_id=organization_id, project_ids=projects_of[organization_id],
                            currency="USD", count=per_organization, prefix=f"o{organization_id}", end=end,
                            workers=1, log=lambda message: None)
        done[0] += 1
        if done[0] % 100 == 0:
            log(f"  events of {done[0]} organizations ({done[0] * per_organization:,}, "
                f"{time.monotonic() - started:.0f} s)")

    with ThreadPoolExecutor(2) as pool:
        list(pool.map(load_one, sorted(projects_of)))
    with connection.cursor() as cursor:
        cursor.execute("VACUUM (ANALYZE) events_event")
        # Everything loaded is final: the fold starts after it, the rebuild covers it.
        cursor.execute("UPDATE queries_rollup_state SET watermark = now()")
    for organization in Organization.objects.all():
        rollup_rebuild(organization=organization)
    log(f"  rollups built ({time.monotonic() - started:.0f} s)")
    with connection.cursor() as cursor:
        cursor.execute("VACUUM (ANALYZE)")
        cursor.execute("SELECT organization_id, sum(cost_reporting) / %s FROM events_event GROUP BY 1",
                       [dataset.DAYS])
        daily = {organization_id: float(amount or 0) for organization_id, amount in cursor.fetchall()}
    budgets = []
    periods = ["day", "week", "month", "quarter"]
    for organization_id, project_ids in sorted(projects_of.items()):
        for k in range(args.budgets_per_org):
            n = organization_id * 31 + k
            filters = {}
            if k % 3 == 1:
                filters["environment"] = ["production"]
            if k % 5 == 2:
                filters["provider"] = ["openai", "anthropic"]
            if k % 7 == 3:
                filters["model"] = ["gpt-4o", "gpt-4o-mini", "claude-sonnet-4-20250514"]
            if k == 9 and organization_id % 2:
                filters["tags"] = ["enterprise", "pro"]
            period = periods[n % 4]
            # Amounts from 0.3 to 2.7 times the period's average spend, so a share of the
            # budgets crosses thresholds.
            days = {"day": 1, "week": 7, "month": 30, "quarter": 90}[period]
            amount = max(daily.get(organization_id, 0) * days * (0.3 + (n % 17) * 0.15), 0.01)
            budgets.append(Budget(organization_id=organization_id,
                                  project_id=project_ids[n % len(project_ids)] if k % 3 == 0 else None,
                                  name=f"Budget {k}", amount=f"{amount:.6f}", period=period, filters=filters,
                                  recipients=[f"ops{organization_id}@bench.test"], notify_forecast=True,
                                  notify_spike=True))
    Budget.objects.bulk_create(budgets, batch_size=2000)
    log(f"  {len(budgets):,} budgets; data set ready in {time.monotonic() - started:.0f} s")


# --- 1. the sweep -------------------------------------------------------------------------------

def measure_sweep(args) -> dict:
    from django.db import connection
    from django.utils import timezone

    from budgets.models import BudgetAlert, BudgetSpendSnapshot
    from budgets.selectors import budget_hourly_spend, budget_standings
    from budgets.services import budgets_active, budgets_evaluate_all

    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM events_event")
        events = cursor.fetchone()[0]
    budgets = budgets_active()
    figures = {"events": events, "budgets": len(budgets),
               "organizations": len({budget.organization_id for budget in budgets}), "sweeps": []}
    BudgetAlert.objects.all().delete()
    BudgetSpendSnapshot.objects.all().delete()  # the first sweep starts cold
    for number in range(args.sweeps):
        started = time.monotonic()
        claimed = budgets_evaluate_all()
        seconds = time.monotonic() - started
        figures["sweeps"].append((seconds, len(claimed)))
        log(f"  sweep {number + 1}: {seconds:.2f} s, {len(claimed):,} alerts claimed")
    now = timezone.now()
    started = time.monotonic()
    budget_standings(budgets=budgets, now=now)
    figures["spend_seconds"] = time.monotonic() - started
    spiky = [budget for budget in budgets if budget.notify_spike]
    started = time.monotonic()
    budget_hourly_spend(budgets=spiky, hour_start=now.replace(minute=0, second=0, microsecond=0))
    figures["spike_seconds"] = time.monotonic() - started
    figures["tag_budgets"] = sum("tags" in budget.filters for budget in budgets)
    # The alerts the sweeps claimed count as sent: the latency phase measures one fresh
    # crossing at a time, not a backlog of a thousand emails.
    BudgetAlert.objects.filter(sent_at__isnull=True).update(sent_at=timezone.now())
    return figures


# --- 2. event to email --------------------------------------------------------------------------

class Inbox:
    def __init__(self):
        self.arrivals: dict[str, float] = {}
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):
        from email import message_from_bytes

        subject = str(message_from_bytes(envelope.content)["Subject"]).replace("\n", "").replace("\r", "")
        with self.lock:
            self.arrivals.setdefault(subject, time.monotonic())
        return "250 OK"


def measure_latency(args, url: str) -> dict:
    import json

    from aiosmtpd.controller import Controller

    from budgets.models import BudgetAlert
    from budgets.services import budget_create
    from events.ingest import event_ingest_batch
    from koala.embedded import free_port
    from organizations.models import ApiKey, Organization
    from organizations.services import ORGANIZATION_SETUP_HOOKS, api_key_create

    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    folder = Path(tempfile.mkdtemp(prefix="bench-budgets-"))
    env = dict(os.environ, DATABASE_URL=url, REDIS_URL=args.redis, DJANGO_SETTINGS_MODULE="koala.settings",
               EMAIL_HOST="127.0.0.1", EMAIL_PORT=str(port), LOG_LEVEL="WARNING", PYTHONUNBUFFERED="1")
    processes = [subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "koala", "worker", "-c", str(args.concurrency), "-l", "WARNING",
         "-n", f"bench-budgets-{os.getpid()}@%h", "--without-gossip", "--without-mingle"],
        cwd=REPO, env=env, stdout=(folder / "worker.log").open("w"), stderr=subprocess.STDOUT)]
    if not args.no_beat:
        processes.append(subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "koala", "beat", "-l", "WARNING", "-s",
             str(folder / "celerybeat-schedule")],
            cwd=REPO, env=env, stdout=(folder / "beat.log").open("w"), stderr=subprocess.STDOUT))
    log(f"  worker and beat started (logs in {folder}); waiting 10 s for them to settle")
    time.sleep(10)
    organizations = list(Organization.objects.order_by("?")[:args.samples])
    latencies = []
    try:
        for number, organization in enumerate(organizations):
            project = organization.projects.first()
            for setup in ORGANIZATION_SETUP_HOOKS:  # the default taxonomy ingestion checks against
                setup(organization=organization)
            api_key, _ = api_key_create(organization=organization, project=project, scopes="ingest")
            api_key = ApiKey.objects.select_related("organization", "project").get(pk=api_key.pk)
            name = f"Latency {number}"
            budget_create(organization=organization, api_key=None, name=name, amount="1", period="day",
                          thresholds=[100], recipients=["latency@bench.test"])
            # The hook caches "this organization has budgets" for 30 s per process.
            from budgets import tasks
            tasks._has_budgets.pop(organization.pk, None)
            body = json.dumps({"events": [{"cost": "2", "environment": "production", "action": "completion",
                                           "provider": "openai"}]}).encode()
            status, _ = event_ingest_batch(raw_body=body, api_key=api_key)
            sent = time.monotonic()
            assert status == 200, status
            deadline = sent + args.timeout
            while time.monotonic() < deadline:
                arrived = next((at for subject, at in list(inbox.arrivals.items())
                                if subject.startswith(f"Budget '{name}'")), None)
                if arrived is not None:
                    latencies.append(arrived - sent)
                    break
                time.sleep(0.02)
            else:
                latencies.append(float("inf"))
            log(f"  sample {number + 1}: {latencies[-1]:.2f} s")
            time.sleep(args.spacing)
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        controller.stop()
    ordered = sorted(latencies)
    return {"samples": len(ordered), "p50": statistics.median(ordered),
            "p95": ordered[max(0, int(round(0.95 * len(ordered))) - 1)], "max": ordered[-1],
            "alerts_sent_total": BudgetAlert.objects.filter(sent_at__isnull=False).count()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--budgets-per-org", type=int, default=10)
    parser.add_argument("--sweeps", type=int, default=3)
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--spacing", type=float, default=1.0, help="seconds between latency samples")
    parser.add_argument("--timeout", type=float, default=120.0, help="give up on one email after this long")
    parser.add_argument("--concurrency", type=int, default=2, help="Celery worker processes")
    parser.add_argument("--no-beat", action="store_true", help="no beat: only the ingest hook evaluates")
    parser.add_argument("--postgres", default="postgres://postgres@127.0.0.1:5432")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/3")
    parser.add_argument("--reuse", action="store_true", help="keep the data set of an earlier --keep run")
    parser.add_argument("--keep", action="store_true", help="leave the database for --reuse")
    args = parser.parse_args()

    log(f"database {DATABASE}: {'reused' if args.reuse else 'created'}")
    url = prepare_database(args)
    setup_django(url, args)
    if not args.reuse:
        load(args, url)
    sweep = measure_sweep(args)
    latency = measure_latency(args, url)
    times = [seconds for seconds, _ in sweep["sweeps"]]
    print()
    print(f"data set: {sweep['events']:,} events, {sweep['organizations']:,} organizations, "
          f"{sweep['budgets']:,} active budgets ({sweep['tag_budgets']:,} filter on tags: raw events)")
    print(f"full sweep, first (claims {sweep['sweeps'][0][1]:,} alerts): {times[0]:.2f} s")
    if len(times) > 1:
        print(f"full sweep, steady state (median of {len(times) - 1}): {statistics.median(times[1:]):.2f} s")
    print(f"  of which spend statements {sweep['spend_seconds']:.2f} s, spike statements "
          f"{sweep['spike_seconds']:.2f} s")
    print(f"event -> email at the SMTP server ({latency['samples']} samples): p50 {latency['p50']:.2f} s, "
          f"p95 {latency['p95']:.2f} s, max {latency['max']:.2f} s")
    steady = statistics.median(times[1:]) if len(times) > 1 else times[0]
    goal_sweep = steady < 10
    goal_latency = latency["p95"] < 60
    print(f"goal: full sweep under 10 s, steady state ...... {'PASS' if goal_sweep else 'FAIL'}")
    print(f"goal: full sweep under 10 s, cold (no snapshots)  {'PASS' if times[0] < 10 else 'FAIL'}")
    print(f"goal: p95 event -> email under 60 s ............. {'PASS' if goal_latency else 'FAIL'}")
    if not args.keep:
        import psycopg
        from django.db import connections

        connections.close_all()
        with psycopg.connect(f"{server_url(args)}/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE "{DATABASE}" WITH (FORCE)')
    return 0 if goal_sweep and goal_latency else 1


if __name__ == "__main__":
    sys.exit(main())
