#!/usr/bin/env python
"""Report benchmark: the dashboard's questions on 10 million events, from the rollups
and from the raw events alone, through the HTTP API.

    .venv/bin/python bench/reports.py                 # loads the data set once, then times
    .venv/bin/python bench/reports.py --events 1000000 --db trackingkoala_reports_1m

Loads `--events` events over 90 days for organization "acme" (America/New_York, three
projects) and a tenth as many for a noisy second organization (bench/dataset.py,
generated inside PostgreSQL), builds the rollups once, then starts two production
servers (gunicorn): one as configured, one with KOALA_REPORTS_ROLLUPS=0 so every
report reads the raw events. Each question is asked twice to warm up, then `--runs`
times on each server; it prints the median and p95 of the wall time per request, and
the raw/rollup ratio of the medians. Goal (issue 4): every dashboard query p95 under
100 ms, and at least 20x faster than the raw path. With bench/pages.py present, the
dashboard pages are timed too (goal: under 300 ms of server time each).

The data set is kept between runs (its database, `--db`); `--reload` starts over.
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench import dataset  # noqa: E402
from bench.ingest import Database, free_port, log  # noqa: E402

ORG, NOISY = "acme", "globex"
ZONE = "America/New_York"
OWNER_EMAIL, OWNER_PASSWORD = "bench-owner@acme.test", "bench-owner-password"


def django_setup(url: str) -> None:
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "koala.settings")
    os.environ.setdefault("SECRET_KEY", "bench-reports-not-secret")
    import django

    django.setup()


def prepare(db: Database, args) -> dict:
    """Migrates, and loads the data set unless this database already holds it."""
    env = {**os.environ, "DATABASE_URL": db.url, "DJANGO_SETTINGS_MODULE": "koala.settings",
           "SECRET_KEY": "bench-reports-not-secret", "KOALA_NO_VENV": "1"}
    subprocess.run([sys.executable, "manage.py", "migrate", "--verbosity", "0"], cwd=REPO, env=env, check=True)
    # The production servers serve the dashboard's CSS from the collected, hashed files.
    subprocess.run([sys.executable, "manage.py", "collectstatic", "--noinput", "--verbosity", "0"], cwd=REPO,
                   env=env, check=True)
    django_setup(db.url)
    from events.partitions import ensure_partitions
    from organizations.services import organization_create, project_create

    meta = db.meta()
    if meta.get("loaded_events") == str(args.events):
        log(f"data set present: {int(meta['loaded_events']):,} events ending {meta['loaded_until']}")
        if args.rebuild_rollups:
            build_rollups(db)
        return db.meta()
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    acme = organization_create(name="Acme", slug=ORG, timezone_name=ZONE, owner_email=OWNER_EMAIL,
                               owner_password=OWNER_PASSWORD)
    globex = organization_create(name="Globex", slug=NOISY, timezone_name="Asia/Kolkata")
    projects = {organization.slug: [project_create(organization=organization, name=slug).pk
                                    for slug in dataset.PROJECTS] for organization in (acme, globex)}
    months = set()
    day = (end - timedelta(days=dataset.DAYS + 1)).date()
    while day <= end.date() + timedelta(days=31):
        months.add((day.year, day.month))
        day += timedelta(days=1)
    ensure_partitions(months)
    url = db.url
    log(f"loading {args.events:,} events for {ORG} and {args.events // 10:,} for {NOISY}")
    seconds = dataset.load_events(url, organization_id=acme.pk, project_ids=projects[ORG], currency="USD",
                                  count=args.events, prefix="a", end=end, log=log)
    seconds += dataset.load_events(url, organization_id=globex.pk, project_ids=projects[NOISY], currency="USD",
                                   count=args.events // 10, prefix="g", end=end, log=log)
    log(f"loaded in {seconds:.0f} s; VACUUM ANALYZE")
    with db.connect() as conn:
        conn.execute("VACUUM (ANALYZE) events_event")
    db.set_meta(loaded_events=args.events, loaded_until=end.isoformat(), load_seconds=round(seconds))
    build_rollups(db)
    return db.meta()


def build_rollups(db: Database) -> None:
    """Every rollup from scratch, as the fold would have built them while the events arrived."""
    from django.db import connection

    from organizations.models import Organization
    from queries.rollups import ROLLUPS, rollup_rebuild

    with db.connect() as conn:
        # Everything loaded is final: the fold starts after it, the rebuild covers it.
        conn.execute("UPDATE queries_rollup_state SET watermark = now()")
        for rollup in ROLLUPS:
            conn.execute(f"TRUNCATE {rollup.table}")
    started = time.monotonic()
    for organization in Organization.objects.filter(slug__in=[ORG, NOISY]):
        rollup_rebuild(organization=organization)
    rebuild_s = time.monotonic() - started
    with connection.cursor() as cursor:
        sizes = {}
        for rollup in ROLLUPS:
            cursor.execute(f"SELECT count(*) FROM {rollup.table}")
            sizes[rollup.table] = cursor.fetchone()[0]
    with db.connect() as conn:
        conn.execute("VACUUM (ANALYZE)")
    log(f"rollups built in {rebuild_s:.0f} s: " + ", ".join(f"{name[14:]} {rows:,} rows" for name, rows in sizes.items()))
    db.set_meta(rollup_seconds=round(rebuild_s), rollup_rows=json.dumps(sizes))


def read_key() -> str:
    from organizations.models import Organization
    from organizations.services import api_key_create

    _, secret = api_key_create(organization=Organization.objects.get(slug=ORG), scopes="read", name="bench-reports")
    return secret


def start_server(db: Database, port: int, *, rollups: bool, workers: int, logdir: Path):
    env = {**os.environ, "DATABASE_URL": db.url, "DJANGO_SETTINGS_MODULE": "koala.settings",
           "SECRET_KEY": "bench-reports-not-secret", "ALLOWED_HOSTS": "127.0.0.1,localhost",
           "KOALA_REPORTS_ROLLUPS": "1" if rollups else "0", "LOG_LEVEL": "WARNING"}
    out = open(logdir / f"gunicorn-{port}.log", "wb")
    server = subprocess.Popen([sys.executable, "-m", "gunicorn", "koala.wsgi:application", "-w", str(workers),
                               "-b", f"127.0.0.1:{port}", "--timeout", "120"], cwd=REPO, env=env, stdout=out,
                              stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                return server
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"gunicorn on {port} did not start: see {logdir}")


def questions(key: str, port: int, end: datetime) -> dict:
    """name -> (method, path, body): the dashboard's questions."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    conn.request("GET", "/api/v1/saved-queries", headers={"Authorization": f"Bearer {key}"})
    saved = {item["name"]: item["id"] for item in json.loads(conn.getresponse().read())["results"]}
    from zoneinfo import ZoneInfo

    tz = ZoneInfo(ZONE)
    # Whole local days ending with the day the data set ends: what a dashboard asks.
    last = end.astimezone(tz).date() + timedelta(days=1)

    def days(count: int) -> dict:
        start = last - timedelta(days=count)
        return {"from": datetime(start.year, start.month, start.day, tzinfo=tz).isoformat(),
                "to": datetime(last.year, last.month, last.day, tzinfo=tz).isoformat()}

    window30 = days(30)
    asked = {f"builtin: {name}": ("POST", f"/api/v1/saved-queries/{saved[name]}/run", days(
        7 if name in ("Production failures", "High-latency paths") else 30))
        for name in ("Production failures", "Provider spend by project", "Customer usage trends",
                     "High-latency paths")}
    asked.update({
        "daily cost by provider, 30 d": ("POST", "/api/v1/reports", {
            **window30, "group_by": ["day", "provider"], "metrics": ["cost", "charge", "margin"]}),
        "top 20 customers by margin, 30 d": ("POST", "/api/v1/reports", {
            **window30, "group_by": ["user"], "metrics": ["count", "cost", "charge", "margin", "margin_pct"],
            "order_by": "-margin", "limit": 20}),
        "p95 latency by action, 7 d": ("POST", "/api/v1/reports", {
            **days(7), "group_by": ["action"], "metrics": ["count", "latency_p95"], "order_by": "-latency_p95"}),
        "taxonomy health, 30 d": ("GET", "/api/v1/taxonomy/health?from={}&to={}".format(
            window30["from"].replace("+", "%2B"), window30["to"].replace("+", "%2B")), None),
    })
    return asked


RAW_TIMEOUT_MS = 30_000  # queries.selectors.STATEMENT_TIMEOUT_MS: a longer report is a 503


def time_question(port: int, key: str, method: str, path: str, body, runs: int, *, may_time_out=False) -> dict:
    """Median and p95 wall time of `runs` requests after two warm-ups. With
    `may_time_out`, a 503 (the statement timeout) ends the timing: the path takes
    longer than the timeout, which stands in for its time."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    payload = None if body is None else json.dumps(body)
    samples, answer = [], None
    for attempt in range(runs + 2):
        started = time.perf_counter()
        conn.request(method, path, body=payload, headers=headers)
        response = conn.getresponse()
        data = response.read()
        elapsed = (time.perf_counter() - started) * 1000
        if response.status == 503 and may_time_out:
            return {"median_ms": RAW_TIMEOUT_MS, "p95_ms": RAW_TIMEOUT_MS, "answer": None, "timed_out": True}
        if response.status != 200:
            raise RuntimeError(f"{method} {path}: {response.status} {data[:300]!r}")
        if attempt >= 2:
            samples.append(elapsed)
        answer = json.loads(data)
    samples.sort()
    p95 = samples[min(len(samples) - 1, round(0.95 * (len(samples) - 1)))]
    return {"median_ms": statistics.median(samples), "p95_ms": p95, "answer": answer}


def same_answer(rollup: dict, raw: dict) -> bool:
    """The same groups with the same values, percentiles within the histogram's 2 %.
    Rows are matched by their groups: ordering by an approximate percentile may swap
    near-ties."""
    if "rows" not in rollup:
        return rollup == raw
    columns = rollup["columns"]
    approx = {i for i, name in enumerate(columns) if name.startswith("latency_p")}
    groups = [i for i, name in enumerate(columns) if name in GROUP_NAMES]

    def keyed(rows):
        return {tuple(row[i] for i in groups): row for row in rows}

    mine, theirs = keyed(rollup["rows"]), keyed(raw["rows"])
    # Cut at `limit` after ordering by a percentile, the last few groups may differ.
    if set(mine) != set(theirs) and not (approx and rollup.get("truncated")):
        return False
    for key in set(mine) & set(theirs):
        for i, (a, b) in enumerate(zip(mine[key], theirs[key])):
            if i in approx and a is not None and b is not None:
                if abs(a - b) > 0.02 * abs(b) + 1e-9:
                    return False
            elif a != b:
                return False
    return all(rollup["totals"][name] == raw["totals"][name] for name in rollup["totals"]
               if not name.startswith("latency_p"))


GROUP_NAMES = {"hour", "day", "week", "month", "project", "environment", "provider", "application", "action",
               "model", "user", "tag", "status"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base-url", default="postgres://postgres@127.0.0.1:5432")
    parser.add_argument("--db", default="trackingkoala_reports")
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers per server")
    parser.add_argument("--reload", action="store_true", help="drop the data set and load it again")
    parser.add_argument("--rebuild-rollups", action="store_true",
                        help="keep the events, build the rollups again (after their definitions changed)")
    parser.add_argument("--pages-runs", type=int, default=5, help="0 skips the dashboard pages")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--only", action="append", default=[], metavar="TEXT",
                        help="time only the questions whose name contains TEXT (repeatable)")
    args = parser.parse_args()

    db = Database(args.base_url, args.db)
    db.create(keep=not args.reload)
    meta = prepare(db, args)
    end = datetime.fromisoformat(meta["loaded_until"])
    key = read_key()
    logdir = Path(os.environ.get("TMPDIR", "/tmp")) / "bench-reports"
    logdir.mkdir(exist_ok=True)
    fast_port, raw_port = free_port(), free_port()
    servers = [start_server(db, fast_port, rollups=True, workers=args.workers, logdir=logdir),
               start_server(db, raw_port, rollups=False, workers=args.workers, logdir=logdir)]
    results = {"events": int(meta["loaded_events"]), "rollup_rows": json.loads(meta["rollup_rows"]),
               "load_seconds": int(meta["load_seconds"]), "rollup_seconds": int(meta["rollup_seconds"]),
               "questions": {}}
    try:
        for name, (method, path, body) in questions(key, fast_port, end).items():
            if args.only and not any(text in name for text in args.only):
                continue
            fast = time_question(fast_port, key, method, path, body, args.runs)
            raw = time_question(raw_port, key, method, path, body, max(3, args.runs // 4), may_time_out=True)
            # A raw path cut off by the statement timeout: its time is at least the timeout,
            # the speedup at least the ratio to it, and there is no raw answer to compare.
            figures = {"rollup_median_ms": round(fast["median_ms"], 1), "rollup_p95_ms": round(fast["p95_ms"], 1),
                       "raw_median_ms": round(raw["median_ms"], 1), "raw_p95_ms": round(raw["p95_ms"], 1),
                       "raw_timed_out": raw.get("timed_out", False),
                       "speedup": round(raw["median_ms"] / fast["median_ms"], 1),
                       "same_answer": None if raw.get("timed_out") else same_answer(fast["answer"], raw["answer"])}
            results["questions"][name] = figures
            log(f"{name}: {figures}")
        if args.pages_runs:
            try:
                from bench.pages import time_pages
            except ImportError:
                time_pages = None
            if time_pages is not None:
                results["pages"] = time_pages(f"http://127.0.0.1:{fast_port}", ORG, args.pages_runs,
                                              email=OWNER_EMAIL, password=OWNER_PASSWORD)
    finally:
        for server in servers:
            server.terminate()
            server.wait(timeout=30)
    print_table(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


def print_table(results: dict) -> None:
    print(f"\n{results['events']:,} events (+10 % noise); rollups built in {results['rollup_seconds']} s: "
          + ", ".join(f"{name[14:]} {rows:,}" for name, rows in results["rollup_rows"].items()))
    print(f"{'question':40} {'rollup p50':>10} {'rollup p95':>10} {'raw p50':>10} {'raw p95':>10} {'x':>6}  same")
    for name, f in results["questions"].items():
        raw = (">30 s", ">30 s") if f.get("raw_timed_out") else (f["raw_median_ms"], f["raw_p95_ms"])
        speedup = f">={f['speedup']}" if f.get("raw_timed_out") else f["speedup"]
        print(f"{name:40} {f['rollup_median_ms']:>10} {f['rollup_p95_ms']:>10} {raw[0]:>10} "
              f"{raw[1]:>10} {speedup:>6}  {'raw timed out' if f['same_answer'] is None else f['same_answer']}")
    goals = [f"{name}: p95 {f['rollup_p95_ms']} ms {'PASS' if f['rollup_p95_ms'] < 100 else 'FAIL'}, "
             f"{'>=' if f.get('raw_timed_out') else ''}{f['speedup']}x {'PASS' if f['speedup'] >= 20 else 'FAIL'}"
             for name, f in results["questions"].items()]
    if "pages" in results:
        pages = results["pages"]
        print(f"\n{'page':24} {'server p50 ms':>13} {'server max ms':>13}")
        for name, page in pages["pages"].items():
            print(f"{name:24} {page['server_ms_median']:>13} {page['server_ms_max']:>13}")
            goals.append(f"page {name}: {page['server_ms_median']} ms "
                         f"{'PASS' if page['server_ms_median'] < pages['goal_ms'] else 'FAIL'}")
    print("\ngoals (p95 < 100 ms and >= 20x the raw path; pages < 300 ms):")
    for line in goals:
        print(f"  {line}")


if __name__ == "__main__":
    main()
