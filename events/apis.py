import base64
import binascii
import json
from datetime import datetime
from decimal import Decimal, localcontext

import msgspec
from django.db.models import Q
from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.utils.urls import replace_query_param

from events.filters import RFC3339_HELP, EventFilter
from events.ingest import MAX_BODY_BYTES, BodyError, event_ingest_batch
from events.selectors import event_list, taxonomy_compiled
from koala.api import CursorPagination, TenantAPIView, TenantGenericAPIView
from koala.exceptions import InvalidRequest, KoalaError
from koala.money import money_str

_response_encoder = msgspec.json.Encoder()


class IngestResponseSerializer(serializers.Serializer):
    accepted = serializers.IntegerField()
    duplicates = serializers.IntegerField()
    rejected = serializers.IntegerField()
    errors = serializers.ListField(child=serializers.DictField())
    warnings = serializers.ListField(child=serializers.DictField())
    error = serializers.DictField(required=False, help_text=(
        "422 only (a single event, rejected): the contract's error object, "
        "{code, message, details: {fields}}, beside the counts."))


def ingest_response(request, api_key, *, dry_run: bool) -> HttpResponse:
    declared = request.META.get("CONTENT_LENGTH") or "0"
    if not (declared.isascii() and declared.isdigit()):
        # Django would fail on int() while reading the body; HTTP allows digits only.
        raise KoalaError("invalid_request", "The Content-Length header must be a whole number of bytes.")
    if int(declared) > MAX_BODY_BYTES:
        raise KoalaError("payload_too_large", "The body is larger than 5 MiB; send smaller batches.", status=413)
    try:
        status, body = event_ingest_batch(raw_body=request.body, api_key=api_key, dry_run=dry_run)
    except BodyError as error:
        raise KoalaError(error.code, error.message, status=error.status) from None
    try:
        content = _response_encoder.encode(body)
    except UnicodeEncodeError:
        # An id echoed in an error may hold an unpaired surrogate, which UTF-8 cannot
        # carry; ASCII-escaped JSON can.
        content = json.dumps(body).encode()
    return HttpResponse(content, status=status, content_type="application/json")


INGEST_RESPONSES = {200: IngestResponseSerializer, 207: IngestResponseSerializer, 422: IngestResponseSerializer}


class EventValidateApi(TenantAPIView):
    """The same checks and answer as sending events, but nothing is stored: lint instrumentation in CI."""

    write_scope = "ingest"

    @extend_schema(request=OpenApiTypes.OBJECT, responses=INGEST_RESPONSES)
    def post(self, request):
        return ingest_response(request, self.api_key, dry_run=True)


def _margin(cost: Decimal, charge: Decimal | None) -> tuple[str | None, float | None]:
    if charge is None:
        return None, None
    margin = charge - cost
    percent = float(round(margin / charge * 100, 4)) if charge else None
    return money_str(margin), percent


def event_as_json(event) -> dict:
    # Amounts have up to 38 significant digits; the default context rounds to 28.
    with localcontext(prec=80):
        return _event_as_json(event)


def _event_as_json(event) -> dict:
    # In the event's own currency, beside cost and charge; the reporting twins follow.
    margin, margin_pct = _margin(event.cost, event.charge)
    margin_reporting = None
    if event.cost_reporting is not None and event.charge_reporting is not None:
        margin_reporting = money_str(event.charge_reporting - event.cost_reporting)
    return {
        "id": event.client_id,
        "project": event.project.slug,
        "timestamp": event.timestamp.isoformat(),
        "received_at": event.received_at.isoformat(),
        "cost": money_str(event.cost),
        "charge": money_str(event.charge),
        "currency": event.currency,
        # What reports and budgets sum, in the organization's reporting currency;
        # null while no exchange rate converts the event ("converted": false).
        "reporting_currency": event.organization.reporting_currency,
        "cost_reporting": money_str(event.cost_reporting),
        "charge_reporting": money_str(event.charge_reporting),
        "margin_reporting": margin_reporting,
        "exchange_rate": money_str(event.exchange_rate),
        "converted": event.cost_reporting is not None,
        "cost_source": event.cost_source,
        "price_ref": event.price_ref,
        "environment": event.environment,
        "provider": event.provider,
        "application": event.application,
        "action": event.action,
        "userId": event.user_id,
        "tags": event.tags,
        "traces": event.traces,
        "metadata": event.metadata,
        "margin": margin,
        "margin_pct": margin_pct,
        "flags": event.flags,
    }


class EventPagination(CursorPagination):
    """Keyset pages on (timestamp, seq), newest first.

    DRF's cursor holds a position in the first ordering field only and steps
    through equal timestamps with an offset it caps at 1000, so once more than
    1000 events shared a timestamp (a batch stamped on receipt, clients sending
    whole seconds) the pages repeated forever. This cursor holds the last row's
    (timestamp, seq), which is unique, and costs one index range scan per page.
    """

    ordering = ("-timestamp", "-seq")

    def paginate_queryset(self, queryset, request, view=None):
        self.request = request
        self.page_size = self.get_page_size(request)
        self.base_url = request.build_absolute_uri()
        after = self._decode(request.query_params.get(self.cursor_query_param))
        if after is not None:
            timestamp, seq = after
            # The `lte` bound lets PostgreSQL range-scan; the OR then breaks the tie.
            queryset = queryset.filter(timestamp__lte=timestamp).filter(Q(timestamp__lt=timestamp) | Q(seq__lt=seq))
        rows = list(queryset.order_by(*self.ordering)[: self.page_size + 1])
        self.page = rows[: self.page_size]
        self.has_next = len(rows) > self.page_size
        return self.page

    def get_next_link(self):
        if not self.has_next:
            return None
        last = self.page[-1]
        token = base64.urlsafe_b64encode(f"{last.timestamp.isoformat()}|{last.seq}".encode()).decode()
        return replace_query_param(self.base_url, self.cursor_query_param, token)

    def _decode(self, token: str | None) -> tuple[datetime, int] | None:
        if token is None:
            return None
        try:
            timestamp, seq = base64.urlsafe_b64decode(token.encode("ascii")).decode("ascii").split("|")
            after = datetime.fromisoformat(timestamp), int(seq)
        except (ValueError, UnicodeError, binascii.Error):
            after = None
        if after is None or after[0].tzinfo is None:
            raise InvalidRequest("cursor is not valid: follow the 'next' link as it was given.")
        return after


def _exact(name: str, what: str) -> OpenApiParameter:
    return OpenApiParameter(name, str, description=f"Only events whose {what} equals this (canonical value).")


# Declared by hand: spectacular adds filter and pagination parameters to list views
# only, and this view's GET is written out (it shares its path with ingestion).
EVENT_LIST_PARAMETERS = [
    OpenApiParameter("limit", int, description="1-500, default 100"),
    OpenApiParameter("cursor", str, description="Opaque; follow the `next` link of the previous page."),
    OpenApiParameter("project", str, description="Only events of this project (slug)."),
    _exact("environment", "environment"), _exact("provider", "provider"), _exact("application", "application"),
    _exact("action", "action"), _exact("user", "userId"), _exact("model", "metadata.model"),
    _exact("status", "metadata.status"),
    OpenApiParameter("tag", str, many=True, explode=True, description="Repeatable: events carrying any of these tags."),
    OpenApiParameter("trace", str, description="Only events carrying this trace id."),
    OpenApiParameter("since", OpenApiTypes.DATETIME, description="timestamp >= since. " + RFC3339_HELP),
    OpenApiParameter("until", OpenApiTypes.DATETIME, description="timestamp < until. " + RFC3339_HELP),
]


class EventCollectionApi(TenantGenericAPIView):
    """GET: stored events, newest first, canonical values after normalization.
    POST: send one event, or `{"events": [...]}` with 1 to 1000."""

    write_scope = "ingest"
    pagination_class = EventPagination
    filterset_class = EventFilter

    def get_tenant_queryset(self):
        return event_list(organization=self.organization, api_key=self.api_key)

    @extend_schema(parameters=EVENT_LIST_PARAMETERS, responses=OpenApiTypes.OBJECT)
    def get(self, request):
        events = self.filter_queryset(self.get_queryset())
        page = self.paginate_queryset(events)
        return self.get_paginated_response([event_as_json(event) for event in page])

    @extend_schema(request=OpenApiTypes.OBJECT, responses=INGEST_RESPONSES)
    def post(self, request):
        return ingest_response(request, self.api_key, dry_run=False)


class TaxonomyApi(TenantAPIView):
    """The organization's rules, for SDKs and CI linters."""

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request):
        organization = self.organization
        return Response({
            "organization": organization.slug,
            "version": organization.taxonomy_version,
            "reporting_currency": organization.reporting_currency,
            **taxonomy_compiled(organization=organization).to_json(),
        })
