#!/usr/bin/env python
"""Dashboard page benchmark: each page's server time against a given database and organization.

The goal (issue 7): every page renders in under 300 ms of server time on the
10-million-event data set of `bench/reports.py`. Server time is what the page
decorator measures around the view, template rendering included, and sends as
`Server-Timing: app;dur=<ms>`; the wall time of the request is reported beside it.

Two ways in:

    # in-process (Django's test client, signed in as an owner or admin of the organization)
    DATABASE_URL=postgres://... .venv/bin/python bench/pages.py --org demo --runs 5
    # over HTTP against a running server, signing in like a person
    .venv/bin/python bench/pages.py --org demo --base-url http://127.0.0.1:8000 \\
        --email demo@trackingkoala.localhost --password koala-demo

From Python (what bench/reports.py calls):

    from bench.pages import time_pages
    figures = time_pages(client, "demo", 5)          # a signed-in django.test.Client
    figures = time_pages("http://127.0.0.1:8000", "demo", 5, email=..., password=...)

Each page is fetched once to warm up, then `runs` times; the median and the maximum
are reported per page, and `pass` says whether every median is under the goal.
"""
from __future__ import annotations

import argparse
import http.cookiejar
import json
import os
import re
import statistics
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

GOAL_MS = 300.0
_SERVER_TIMING = re.compile(r"app;dur=([0-9.]+)")


def page_paths(organization_slug: str) -> dict[str, str]:
    """The pages, by name, as a person opens them (default periods and reports)."""
    base = f"/o/{organization_slug}"
    return {
        "overview": f"{base}/",
        "overview_90d": f"{base}/?period=90d",
        "explore": f"{base}/explore/",
        "explore_by_provider": f"{base}/explore/?range=last_30_days&group1=day&group2=provider&metric=cost"
                               f"&metric=margin",
        "saved_queries": f"{base}/saved-queries/",
        "customers": f"{base}/customers/",
        "budgets": f"{base}/budgets/",
        "taxonomy_health": f"{base}/taxonomy-health/",
        "events": f"{base}/events/",
        "api_keys": f"{base}/api-keys/",
    }


class _HttpSession:
    """A signed-in browser session over urllib: the sign-in form, its CSRF cookie, cookies kept."""

    def __init__(self, base_url: str, email: str, password: str):
        self.base_url = base_url.rstrip("/")
        jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
        self.opener.open(f"{self.base_url}/login/").read()
        token = next(cookie.value for cookie in jar if cookie.name == "csrftoken")
        form = urllib.parse.urlencode({"username": email, "password": password, "csrfmiddlewaretoken": token})
        request = urllib.request.Request(f"{self.base_url}/login/", data=form.encode(),
                                         headers={"Referer": f"{self.base_url}/login/"})
        self.opener.open(request).read()
        if not any(cookie.name == "sessionid" for cookie in jar):
            raise SystemExit(f"Could not sign in to {self.base_url} as {email}.")

    def get(self, path: str) -> tuple[int, dict, bytes]:
        try:
            with self.opener.open(f"{self.base_url}{path}") as response:
                return response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as error:
            return error.code, dict(error.headers), error.read()


class _ClientSession:
    def __init__(self, client):
        self.client = client

    def get(self, path: str) -> tuple[int, dict, bytes]:
        response = self.client.get(path)
        return response.status_code, dict(response.headers), response.content


def _discover(session, organization_slug: str) -> dict[str, str]:
    """Pages behind a link: the first saved query (run) and the newest event's detail."""
    found = {}
    _, _, body = session.get(f"/o/{organization_slug}/saved-queries/")
    match = re.search(rf'href="(/o/{re.escape(organization_slug)}/saved-queries/\d+/)"', body.decode())
    if match:
        found["saved_query_run"] = match.group(1)
    _, _, body = session.get(f"/o/{organization_slug}/events/")
    match = re.search(rf'href="(/o/{re.escape(organization_slug)}/events/view/\?[^"]+)"', body.decode())
    if match:
        found["event_detail"] = match.group(1).replace("&amp;", "&")
    return found


def time_pages(client_or_base_url, organization_slug: str, runs: int = 5, *, email: str | None = None,
               password: str | None = None) -> dict:
    """Times every dashboard page of `organization_slug`.

    `client_or_base_url`: a signed-in `django.test.Client` (in-process), or the base URL
    of a running server with `email`/`password` of a member (owner or admin, so the API
    keys page is included). Returns `{"goal_ms", "runs", "pages": {name: {"path",
    "status", "server_ms_median", "server_ms_max", "wall_ms_median"}}, "pass"}`.
    """
    if isinstance(client_or_base_url, str):
        session = _HttpSession(client_or_base_url, email or "", password or "")
    else:
        session = _ClientSession(client_or_base_url)
    paths = {**page_paths(organization_slug), **_discover(session, organization_slug)}
    pages = {}
    for name, path in paths.items():
        session.get(path)  # warm-up: connections, caches, the template loader
        server, wall, status = [], [], None
        for _ in range(max(runs, 1)):
            started = time.perf_counter()
            status, headers, _ = session.get(path)
            wall.append((time.perf_counter() - started) * 1000)
            timing = _SERVER_TIMING.search(headers.get("Server-Timing", ""))
            server.append(float(timing.group(1)) if timing else wall[-1])
        pages[name] = {"path": path, "status": status, "server_ms_median": round(statistics.median(server), 1),
                       "server_ms_max": round(max(server), 1), "wall_ms_median": round(statistics.median(wall), 1)}
    passed = all(page["status"] == 200 and page["server_ms_median"] < GOAL_MS for page in pages.values())
    return {"goal_ms": GOAL_MS, "runs": runs, "pages": pages, "pass": passed}


def _in_process_client(organization_slug: str):
    """Django set up against DATABASE_URL; a test client signed in as the organization's
    first owner or admin."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "koala.settings")
    # Production settings serve hashed static files from a manifest: collect them once,
    # into a folder of the benchmark's own unless STATIC_ROOT says where.
    os.environ.setdefault("STATIC_ROOT", str(Path(tempfile.gettempdir()) / "koala-bench-static"))
    import django

    django.setup()
    from django.core.management import call_command
    from django.test import Client

    call_command("collectstatic", interactive=False, verbosity=0)

    from organizations.models import Membership

    membership = (Membership.objects.select_related("user")
                  .filter(organization__slug=organization_slug, role__in=Membership.ADMIN_ROLES)
                  .order_by("id").first())
    if membership is None:
        raise SystemExit(f"No owner or admin of organization '{organization_slug}' to sign in as.")
    client = Client()
    client.force_login(membership.user)
    return client


def _print_table(figures: dict) -> None:
    print(f"{'page':<22} {'status':>6} {'server p50':>11} {'server max':>11} {'wall p50':>9}")
    for name, page in figures["pages"].items():
        mark = "" if page["status"] == 200 and page["server_ms_median"] < figures["goal_ms"] else "  <-- over goal"
        print(f"{name:<22} {page['status']:>6} {page['server_ms_median']:>9.1f}ms {page['server_ms_max']:>9.1f}ms "
              f"{page['wall_ms_median']:>7.1f}ms{mark}")
    print(f"goal: every page under {figures['goal_ms']:.0f} ms server time (median of {figures['runs']}): "
          f"{'PASS' if figures['pass'] else 'FAIL'}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--org", required=True, help="organization slug")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--base-url", help="a running server; default: in-process against DATABASE_URL")
    parser.add_argument("--email")
    parser.add_argument("--password")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    target = args.base_url or _in_process_client(args.org)
    figures = time_pages(target, args.org, args.runs, email=args.email, password=args.password)
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        _print_table(figures)
    return 0 if figures["pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
