"""The tenant-scoped API base: every API view of TrackingKoala derives from these.

The organization and the projects a request may see come from its API key, never
from the request body. List and detail views implement `get_tenant_queryset`;
the base then narrows whatever it returns to the key's organization (and to the
key's project for a project key), so a forgotten filter cannot leak data.
"""
from django.db.models import QuerySet
from rest_framework import generics, pagination
from rest_framework.response import Response
from rest_framework.views import APIView

from koala.exceptions import InvalidRequest, NotFound
from organizations.models import ApiKey, Organization, Project
from organizations.selectors import project_get_by_slug, project_list_visible
from queries.spec import reject_unstorable_text


class TenantMixin:
    """Gives a view `organization`, `api_key` and `visible_projects()`."""

    @property
    def api_key(self) -> ApiKey:
        return self.request.auth

    @property
    def organization(self) -> Organization:
        return self.request.auth.organization

    def visible_projects(self) -> QuerySet[Project]:
        return project_list_visible(organization=self.organization, api_key=self.api_key)

    def resolve_project(self, slug: str) -> Project:
        """A project slug from the request, as the key may see it; otherwise 404."""
        project = project_get_by_slug(organization=self.organization, slug=slug, api_key=self.api_key)
        if project is None:
            raise NotFound(f"No project '{slug}'.")
        return project


class TenantAPIView(TenantMixin, APIView):
    """For endpoints that are not a list of rows (reports, ingestion, taxonomy)."""


def _model_has_field(model, name: str) -> bool:
    return any(field.name == name for field in model._meta.get_fields())


class TenantGenericAPIView(TenantMixin, generics.GenericAPIView):
    """For list/detail endpoints over a tenant-owned model."""

    def get_tenant_queryset(self) -> QuerySet:
        raise NotImplementedError(f"{type(self).__name__} must implement get_tenant_queryset()")

    def get_queryset(self) -> QuerySet:
        queryset = self.get_tenant_queryset()
        model = queryset.model
        if model is Organization:
            return queryset.filter(pk=self.organization.pk)
        if not _model_has_field(model, "organization"):
            raise TypeError(f"{model.__name__} has no organization field; it cannot be served by a tenant view")
        queryset = queryset.filter(organization=self.organization)
        if self.api_key.project_id is not None:
            if model is Project:
                queryset = queryset.filter(pk=self.api_key.project_id)
            elif _model_has_field(model, "project"):
                queryset = queryset.filter(project_id=self.api_key.project_id)
        return queryset


class CursorPagination(pagination.CursorPagination):
    """`{"results": [...], "next": <url or null>}`, `limit` 1-500 (default 100)."""

    page_size = 100
    page_size_query_param = "limit"
    max_page_size = 500
    ordering = "-created_at"

    def get_page_size(self, request):
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return self.page_size
        try:
            size = int(raw)
        except ValueError:
            raise InvalidRequest(f"limit must be a whole number from 1 to 500, not {raw!r}.") from None
        if not 1 <= size <= self.max_page_size:
            raise InvalidRequest(f"limit must be from 1 to 500, not {size}.")
        return size

    def get_paginated_response(self, data):
        return Response({"results": data, "next": self.get_next_link()})

    def get_paginated_response_schema(self, schema):
        return {
            "type": "object",
            "required": ["results", "next"],
            "properties": {"results": schema, "next": {"type": "string", "nullable": True, "format": "uri"}},
        }


def body_fields(data, *, kind: str, editable, read_only, required, partial: bool) -> dict:
    """A copy of a write body's fields once each is known and writable for a `kind`
    (a PATCH may leave out the `required` ones); InvalidRequest naming the field otherwise.
    Text PostgreSQL cannot store (NUL, lone surrogates) is refused up front."""
    if not isinstance(data, dict):
        raise InvalidRequest(f"The body must be a JSON object with the {kind}'s fields: {', '.join(editable)}.")
    reject_unstorable_text(data, field="")
    for name in data:
        if name in read_only:
            raise InvalidRequest(f"{name}: is read-only.", details={"field": name})
        if name not in editable:
            raise InvalidRequest(f"{str(name)[:40]}: is not a {kind} field; the fields are {', '.join(editable)}.",
                                 details={"field": str(name)[:40]})
    if not partial:
        for name in required:
            if name not in data:
                raise InvalidRequest(f"{name}: is required.", details={"field": name})
    return dict(data)
