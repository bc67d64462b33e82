"""Budgets over HTTP: parse, call one selector or service, answer."""
import json
from decimal import Decimal
from zoneinfo import ZoneInfo

from django.conf import settings
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser
from rest_framework.response import Response

from budgets.models import Budget, BudgetAlert
from budgets.selectors import budget_get, budget_list, budget_status
from budgets.services import EDITABLE_FIELDS, budget_create, budget_delete, budget_update
from koala.api import CursorPagination, TenantAPIView, body_fields
from koala.exceptions import InvalidRequest
from koala.money import money_str

READ_ONLY_FIELDS = ("id", "created_at", "updated_at")


class DecimalJSONParser(JSONParser):
    """JSON numbers become Decimal (`"amount": 0.1` is exactly 0.1), never float."""

    def parse(self, stream, media_type=None, parser_context=None):
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        try:
            return json.loads(stream.read().decode(encoding), parse_float=Decimal, parse_constant=_no_constant)
        except (ValueError, UnicodeDecodeError) as error:
            raise ParseError(str(error)) from None


def _no_constant(name: str):
    raise ValueError(f"{name} is not a number")


def budget_json(budget: Budget) -> dict:
    return {
        "id": budget.pk,
        "name": budget.name,
        "project": budget.project.slug if budget.project_id else None,
        "amount": money_str(budget.amount),
        "currency": budget.organization.reporting_currency,
        "period": budget.period,
        "thresholds": list(budget.thresholds),
        "filters": budget.filters,
        "recipients": list(budget.recipients),
        "recipient_roles": list(budget.recipient_roles),
        "notify_forecast": budget.notify_forecast,
        "notify_spike": budget.notify_spike,
        "active": budget.active,
        "created_at": budget.created_at.isoformat(),
        "updated_at": budget.updated_at.isoformat(),
    }


def alert_json(alert: BudgetAlert) -> dict:
    return {
        "kind": alert.kind,
        "threshold": alert.threshold if alert.kind == BudgetAlert.Kind.THRESHOLD else None,
        "triggered_at": alert.triggered_at.isoformat(),
        "sent_at": alert.sent_at.isoformat() if alert.sent_at else None,
        "period_start": alert.period_start.isoformat(),
        "spent": money_str(alert.spent),
    }


class BudgetPagination(CursorPagination):
    ordering = ("name", "id")


class BudgetMixin:
    parser_classes = [DecimalJSONParser]

    def _fields(self, data, *, partial: bool) -> dict:
        fields = body_fields(data, kind="budget", editable=EDITABLE_FIELDS, read_only={*READ_ONLY_FIELDS, "currency"},
                             required=("name", "amount"), partial=partial)
        if "project" in fields:
            slug = fields["project"]
            if slug is not None and not isinstance(slug, str):
                raise InvalidRequest("project: must be a project slug or null.", details={"field": "project"})
            fields["project"] = None if slug is None else self.resolve_project(slug)
        elif not partial and self.api_key.project_id is not None:
            fields["project"] = self.api_key.project  # a project key budgets its own project
        return fields


class BudgetCollectionApi(BudgetMixin, TenantAPIView):
    """GET: the budgets the key can see, by name (a project key: its project's only,
    since an organization-wide budget adds up other projects' spend). POST (manage):
    create one; `name` and `amount` are required, the rest default to
    period month, thresholds [50, 80, 100], no filters, no recipients,
    notify_forecast and notify_spike true, active true."""

    @extend_schema(responses=OpenApiTypes.OBJECT, operation_id="budgets_list")
    def get(self, request):
        paginator = BudgetPagination()
        page = paginator.paginate_queryset(budget_list(organization=self.organization, api_key=self.api_key),
                                           request, view=self)
        return paginator.get_paginated_response([budget_json(budget) for budget in page])

    @extend_schema(request=OpenApiTypes.OBJECT, responses={201: OpenApiTypes.OBJECT})
    def post(self, request):
        fields = self._fields(request.data, partial=False)
        budget = budget_create(organization=self.organization, api_key=self.api_key, **fields)
        return Response(budget_json(budget), status=201)


class BudgetDetailApi(BudgetMixin, TenantAPIView):
    """One budget: GET (read); PATCH any field and DELETE (manage)."""

    def _get(self, budget_id: int) -> Budget:
        return budget_get(organization=self.organization, api_key=self.api_key, budget_id=budget_id)

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request, budget_id: int):
        return Response(budget_json(self._get(budget_id)))

    @extend_schema(request=OpenApiTypes.OBJECT, responses=OpenApiTypes.OBJECT)
    def patch(self, request, budget_id: int):
        budget = self._get(budget_id)
        changes = self._fields(request.data, partial=True)
        return Response(budget_json(budget_update(budget=budget, api_key=self.api_key, changes=changes)))

    @extend_schema(responses={204: None})
    def delete(self, request, budget_id: int):
        budget_delete(budget=self._get(budget_id), api_key=self.api_key)
        return Response(status=204)


class BudgetStatusApi(TenantAPIView):
    """The current period: spent so far, percent of the amount, the linear forecast for
    the period end, and this period's alerts (threshold, forecast and spike)."""

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request, budget_id: int):
        budget = budget_get(organization=self.organization, api_key=self.api_key, budget_id=budget_id)
        standing, alerts = budget_status(budget=budget, now=timezone.now())
        tz = ZoneInfo(budget.organization.timezone)
        return Response({
            "budget": budget.pk,
            "currency": budget.organization.reporting_currency,
            "period": budget.period,
            "period_start": standing.period.start.astimezone(tz).isoformat(),
            "period_end": standing.period.end.astimezone(tz).isoformat(),
            "amount": money_str(budget.amount),
            "spent": money_str(standing.spent),
            "percent": float(round(standing.percent, 2)),
            "forecast": money_str(standing.forecast),
            "alerts": [alert_json(alert) for alert in alerts],
        })
