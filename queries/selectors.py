"""Reads: reports (one SQL statement each) and saved queries, scoped to the key."""
import logging
from contextlib import contextmanager
from datetime import datetime
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import OperationalError, connection, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from koala.exceptions import KoalaError, NotFound
from organizations.models import ApiKey, Organization, Project
from organizations.selectors import project_list_visible
from queries.engine import Scope, compile_report
from queries.models import SavedQuery
from queries.rollups import rollup_state
from queries.rollups.fold import READ_ONLY_APPLICATION
from queries.spec import ReportSpec, report_spec_parse, run_window_parse

logger = logging.getLogger(__name__)

# A report that runs longer is cancelled and answered 503: narrow it and retry.
STATEMENT_TIMEOUT_MS = getattr(settings, "REPORT_STATEMENT_TIMEOUT_MS", 30_000)
REPORT_WORK_MEM_MB = getattr(settings, "REPORT_WORK_MEM_MB", 64)


def report_scope(*, organization: Organization, api_key: ApiKey | None, spec: ReportSpec,
                 project: Project | None = None) -> Scope:
    """The project ids a report reads: those named in `spec.projects` (default: all),
    among those the key can see (and `project`, for a project's saved query).

    A named project that is unknown or invisible is answered 404, like any object
    the key cannot see.
    """
    visible = project_list_visible(organization=organization, api_key=api_key)
    if project is not None:
        visible = visible.filter(pk=project.pk)
    ids_by_slug = dict(visible.values_list("slug", "id"))
    if spec.projects is None:
        project_ids = ids_by_slug.values()
    else:
        for slug in spec.projects:
            if slug not in ids_by_slug:
                raise NotFound(f"No project '{slug}'.", details={"field": "projects"})
        project_ids = [ids_by_slug[slug] for slug in spec.projects]
    zone, watermark = rollup_state(organization_id=organization.pk)
    return Scope(organization_id=organization.pk, project_ids=tuple(sorted(project_ids)),
                 timezone=organization.timezone,
                 rollups=settings.REPORTS_USE_ROLLUPS and zone == organization.timezone, unfolded_from=watermark)


def _iso(moment: datetime, tz: ZoneInfo) -> str:
    return moment.astimezone(tz).isoformat()


@contextmanager
def report_cursor(*, organization: Organization, source: str):
    """A cursor in a read-only report transaction (one round trip of settings); a
    statement that outlives the timeout is a 503 telling the caller to narrow it."""
    settings_sql = [
        f"SET LOCAL statement_timeout = {int(STATEMENT_TIMEOUT_MS)}",
        # Grouping 10,000 customers' exact sums outgrows the default 4 MB: keep it in memory.
        f"SET LOCAL work_mem = '{int(REPORT_WORK_MEM_MB)}MB'",
        # A report's estimated cost often passes jit_above_cost, and compiling took 1.5 s
        # of a 0.1 s rollup read (and more than it saved on raw events).
        "SET LOCAL jit = off",
        # Read-only: the rollup fold need not wait for this transaction.
        f"SET LOCAL application_name = '{READ_ONLY_APPLICATION}'",
    ]
    if source != "events":
        # A rollup read is small: parallel workers would cost more to start and merge
        # (their partial groups sorted again) than they save, and they take the cores
        # other requests need. The raw events keep them.
        settings_sql.append("SET LOCAL max_parallel_workers_per_gather = 0")
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("; ".join(settings_sql))
            yield cursor
    except OperationalError as error:
        if getattr(error.__cause__, "sqlstate", None) != "57014":  # query_canceled
            raise
        logger.warning("report.timeout", extra={"organization_id": organization.pk, "source": source})
        raise KoalaError("unavailable", "The report took too long; narrow the range, filters or groups and retry.",
                         status=503, headers={"Retry-After": "30"}) from None


def report_execute(*, organization: Organization, api_key: ApiKey | None, spec: ReportSpec,
                   project: Project | None = None) -> dict:
    """Runs a validated spec; returns the contract's response body."""
    scope = report_scope(organization=organization, api_key=api_key, spec=spec, project=project)
    compiled = compile_report(spec, scope)
    with report_cursor(organization=organization, source=compiled.source) as cursor:
        cursor.execute(compiled.sql, compiled.params)
        rows = cursor.fetchall()
    report = compiled.decode(rows)
    tz = ZoneInfo(organization.timezone)
    return {
        "currency": organization.reporting_currency,
        "from": _iso(spec.start, tz),
        "to": _iso(spec.end, tz),
        "columns": report.columns,
        "rows": report.rows,
        "totals": report.totals,
        "truncated": report.truncated,
    }


def report_run(*, organization: Organization, api_key: ApiKey | None, body, now: datetime | None = None) -> dict:
    """POST /api/v1/reports: validates the body, then runs it."""
    spec = report_spec_parse(body, timezone_name=organization.timezone, now=now or timezone.now())
    return report_execute(organization=organization, api_key=api_key, spec=spec)


def saved_query_list(*, organization: Organization, api_key: ApiKey | None = None) -> QuerySet[SavedQuery]:
    """The organization's saved queries; a project key sees its project's and the
    organization-wide ones (which then read only its project)."""
    queries = SavedQuery.objects.filter(organization=organization).select_related("project")
    if api_key is not None and api_key.project_id is not None:
        queries = queries.filter(Q(project__isnull=True) | Q(project_id=api_key.project_id))
    return queries.order_by("name", "id")


def saved_query_get(*, organization: Organization, api_key: ApiKey | None, saved_query_id: int) -> SavedQuery:
    saved_query = saved_query_list(organization=organization, api_key=api_key).filter(pk=saved_query_id).first()
    if saved_query is None:
        raise NotFound(f"No saved query {saved_query_id}.")
    return saved_query


def saved_query_run(*, organization: Organization, api_key: ApiKey | None, saved_query: SavedQuery, body=None,
                    now: datetime | None = None) -> dict:
    """Runs a saved query; `body` may override its window with from/to or a range."""
    window = run_window_parse(body)
    spec = report_spec_parse(saved_query.query, timezone_name=organization.timezone, now=now or timezone.now(),
                             allow_range=True, window=window, prefix="query.")
    result = report_execute(organization=organization, api_key=api_key, spec=spec, project=saved_query.project)
    return {"saved_query": {"id": saved_query.pk, "name": saved_query.name}, **result}
