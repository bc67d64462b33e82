"""Reports and saved queries over HTTP: parse, call one selector or service, answer."""
from django.http import HttpResponse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.response import Response

from koala.api import CursorPagination, TenantAPIView, body_fields
from koala.exceptions import InvalidRequest
from queries.engine import report_csv
from queries.health import taxonomy_health
from queries.models import SavedQuery
from queries.selectors import report_run, saved_query_get, saved_query_list, saved_query_run
from queries.services import EDITABLE_FIELDS, saved_query_create, saved_query_delete, saved_query_update
from queries.spec import health_window_parse

READ_ONLY_FIELDS = ("id", "builtin", "created_at", "updated_at")
FORMAT_PARAMETER = OpenApiParameter("format", str, enum=["json", "csv"],
                                    description="csv: the same table as CSV with a header row (text/csv).")


class JsonUnlessCsv(DefaultContentNegotiation):
    """Always JSON through DRF (errors included); the view renders `?format=csv` itself."""

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


def _wants_csv(request) -> bool:
    requested = request.query_params.get("format", "json")
    if requested not in ("json", "csv"):
        raise InvalidRequest(f"format: '{requested[:20]}' is not a format; use json (default) or csv.")
    return requested == "csv"


def report_response(result: dict, *, csv: bool):
    if not csv:
        return Response(result)
    return HttpResponse(report_csv(result["columns"], result["rows"]), content_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": 'attachment; filename="report.csv"'})


REPORT_DESCRIPTION = """
A report over the events the key can read, as one table. Beyond the contract:

- Window: `from`/`to` half-open, at most 400 days, years 1970-2999. The answer echoes
  them as `from`/`to` in the organization's offset. Saved queries may give `range`.
- `projects`: an unknown slug, or one the key cannot see, is 404 `not_found`.
- Filters: `null` in a list matches a missing value (`"user": [null]`); an empty list
  is no filter; `metadata` is JSON containment (`@>`).
- `charge` and `margin` sum events with a charge (`0` is a charge); they are `"0"`
  when no event has one, while `margin_pct` is then null (and when the charges sum to 0).
- `error_rate` is a fraction from 0 to 1 (not a percentage); null over no events.
- `latency_p50/p95/p99` are interpolated between the two nearest values (PostgreSQL
  `percentile_cont`, numpy's default): exact when the report reads raw events, and
  within 2 % of that when it reads the daily latency histogram (whole local days,
  no status/user/tag/metadata filter). `latency_avg` is exact either way; both are
  null when no event has `latencyMs`.
- Reports over whole local days without a tag, hour or metadata question read the
  rollups, which hold every event committed more than about a second ago; totals
  include `unconverted_count`, events no exchange rate converted yet (not summed).
- Groups: an event appears under each distinct tag it carries; untagged events under
  `tag: null`. Missing values group as null. Hour buckets follow the event's offset,
  so a DST fall-back has two 01:00 buckets. Without `group_by` there is one row,
  equal to `totals`.
- Order: the `order_by` column, then every group ascending; nulls last either way;
  text byte-wise. Without `order_by`, by the groups. `truncated` is true when more
  rows matched than `limit`. `totals` cover every matching event once.
- `?format=csv`: the columns and rows, null as an empty cell; no totals line.
  Errors stay JSON.
"""


class ReportApi(TenantAPIView):
    """POST a report body; the answer is `{"currency", "columns", "rows", "totals"}`."""

    write_scope = "read"  # a report reads, whatever its HTTP method
    content_negotiation_class = JsonUnlessCsv

    @extend_schema(request=OpenApiTypes.OBJECT, responses=OpenApiTypes.OBJECT, parameters=[FORMAT_PARAMETER],
                   description=REPORT_DESCRIPTION)
    def post(self, request):
        csv = _wants_csv(request)
        result = report_run(organization=self.organization, api_key=self.api_key, body=request.data)
        return report_response(result, csv=csv)


def saved_query_json(saved_query: SavedQuery) -> dict:
    return {
        "id": saved_query.pk,
        "name": saved_query.name,
        "description": saved_query.description,
        "project": saved_query.project.slug if saved_query.project_id else None,
        "query": saved_query.query,
        "builtin": saved_query.builtin,
        "created_at": saved_query.created_at.isoformat(),
        "updated_at": saved_query.updated_at.isoformat(),
    }


class SavedQueryPagination(CursorPagination):
    ordering = ("name", "id")


class SavedQueryMixin:
    def _fields(self, data, *, partial: bool) -> dict:
        """The body's editable fields, typed; `project` resolved as the key may see it."""
        fields = body_fields(data, kind="saved query", editable=EDITABLE_FIELDS, read_only=READ_ONLY_FIELDS,
                             required=("name", "query"), partial=partial)
        if "description" in fields:
            description = fields["description"]
            if description is None:
                fields["description"] = ""
            elif not isinstance(description, str) or len(description) > 2000:
                raise InvalidRequest("description: must be a string of at most 2000 characters.",
                                     details={"field": "description"})
        if "project" in fields:
            slug = fields["project"]
            if slug is not None and not isinstance(slug, str):
                raise InvalidRequest("project: must be a project slug or null.", details={"field": "project"})
            fields["project"] = None if slug is None else self.resolve_project(slug)
        elif not partial and self.api_key.project_id is not None:
            fields["project"] = self.api_key.project  # a project key saves for its project
        return fields


class SavedQueryCollectionApi(SavedQueryMixin, TenantAPIView):
    """GET: the saved queries the key can see, by name (a project key: its project's and
    the organization-wide ones). POST (manage): save one; its query is validated like a
    report and may give `range` (today, last_24_hours, last_7_days, last_30_days,
    this_month, previous_month) instead of from/to."""

    @extend_schema(responses=OpenApiTypes.OBJECT, operation_id="saved_queries_list")
    def get(self, request):
        paginator = SavedQueryPagination()
        queries = saved_query_list(organization=self.organization, api_key=self.api_key)
        page = paginator.paginate_queryset(queries, request, view=self)
        return paginator.get_paginated_response([saved_query_json(saved_query) for saved_query in page])

    @extend_schema(request=OpenApiTypes.OBJECT, responses={201: OpenApiTypes.OBJECT})
    def post(self, request):
        fields = self._fields(request.data, partial=False)
        saved_query = saved_query_create(organization=self.organization, api_key=self.api_key, **fields)
        return Response(saved_query_json(saved_query), status=201)


class SavedQueryDetailApi(SavedQueryMixin, TenantAPIView):
    """One saved query: GET (read); PATCH any of name, description, project, query and
    DELETE (manage). A project key changes only its project's queries."""

    def _get(self, saved_query_id: int) -> SavedQuery:
        return saved_query_get(organization=self.organization, api_key=self.api_key, saved_query_id=saved_query_id)

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request, saved_query_id: int):
        return Response(saved_query_json(self._get(saved_query_id)))

    @extend_schema(request=OpenApiTypes.OBJECT, responses=OpenApiTypes.OBJECT)
    def patch(self, request, saved_query_id: int):
        saved_query = self._get(saved_query_id)
        changes = self._fields(request.data, partial=True)
        saved_query = saved_query_update(saved_query=saved_query, api_key=self.api_key, changes=changes)
        return Response(saved_query_json(saved_query))

    @extend_schema(responses={204: None})
    def delete(self, request, saved_query_id: int):
        saved_query_delete(saved_query=self._get(saved_query_id), api_key=self.api_key)
        return Response(status=204)


class SavedQueryRunApi(TenantAPIView):
    """Runs a saved query; the optional body `{"from", "to"}` (or `{"range"}`) overrides its window."""

    write_scope = "read"
    content_negotiation_class = JsonUnlessCsv

    @extend_schema(request=OpenApiTypes.OBJECT, responses=OpenApiTypes.OBJECT, parameters=[FORMAT_PARAMETER])
    def post(self, request, saved_query_id: int):
        csv = _wants_csv(request)
        saved_query = saved_query_get(organization=self.organization, api_key=self.api_key,
                                      saved_query_id=saved_query_id)
        result = saved_query_run(organization=self.organization, api_key=self.api_key, saved_query=saved_query,
                                 body=request.data)
        return report_response(result, csv=csv)


HEALTH_DESCRIPTION = """
The data-quality report of the playbook's five common problems, over `[from, to)`
(default: the last 30 days, today included, in the organization's time zone) and one
`project` (default: every project the key can read):

- `missing_charge`: events without a charge (margin cannot be computed), with the cost
  they carry; `missing_traces`: events without trace ids.
- `environment`: events without one, values outside the taxonomy (each seen value with
  its count, whether it is known, and the allowed value it most resembles).
- `metadata_drift`: metadata keys the taxonomy does not know, the registered key each
  resembles (`latency_ms` ~ `latencyMs`) and the applications sending them. Aliases the
  taxonomy lists are rewritten at ingestion, so they are not drift.
- `action_naming`: stored action names that break the snake_case convention, with the
  suggested name (only flagged ones are stored: a rejected event never is).
- `flags`: events per flagged rule, with their cost; `trend`: per local day, events,
  missing charge, missing traces and flagged events. Shares are fractions 0-1.

Answered from the rollups (whole local days), otherwise from the same aggregates over
the raw events of the window.
"""


class TaxonomyHealthApi(TenantAPIView):
    """GET the taxonomy health report: `?from=&to=&project=`."""

    @extend_schema(responses=OpenApiTypes.OBJECT, description=HEALTH_DESCRIPTION, parameters=[
        OpenApiParameter("from", str, description="RFC 3339; default: 29 days before today, local midnight."),
        OpenApiParameter("to", str, description="RFC 3339, exclusive; default: tomorrow, local midnight."),
        OpenApiParameter("project", str, description="A project slug; default: every project the key can read."),
    ])
    def get(self, request):
        start, end = health_window_parse(request.query_params, timezone_name=self.organization.timezone,
                                         now=timezone.now())
        project = request.query_params.get("project") or None
        return Response(taxonomy_health(organization=self.organization, api_key=self.api_key, start=start, end=end,
                                        project_slug=project))
