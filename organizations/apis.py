from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response

from koala.api import CursorPagination, TenantAPIView, TenantGenericAPIView
from organizations.models import Project


class ProjectSerializer(serializers.ModelSerializer):
    class Meta:
        model = Project
        fields = ["slug", "name", "created_at"]


class ProjectPagination(CursorPagination):
    ordering = "slug"


class ProjectListApi(TenantGenericAPIView):
    """Projects this key can see: all of the organization's, or a project key's own."""

    serializer_class = ProjectSerializer
    pagination_class = ProjectPagination

    def get_tenant_queryset(self):
        return self.visible_projects()

    @extend_schema(operation_id="projects_list")
    def get(self, request):
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(self.get_serializer(page, many=True).data)


class ProjectDetailApi(TenantGenericAPIView):
    serializer_class = ProjectSerializer
    lookup_field = "slug"

    def get_tenant_queryset(self):
        return self.visible_projects()

    def get(self, request, slug: str):
        return Response(self.get_serializer(self.get_object()).data)


class KeyInfoSerializer(serializers.Serializer):
    organization = serializers.CharField()
    project = serializers.CharField(allow_null=True)
    scopes = serializers.ListField(child=serializers.CharField())
    prefix = serializers.CharField()
    reporting_currency = serializers.CharField()
    timezone = serializers.CharField()


class KeyInfoApi(TenantAPIView):
    """What the calling key is: its organization, project and scopes."""

    @extend_schema(responses=KeyInfoSerializer)
    def get(self, request):
        key = self.api_key
        return Response({
            "organization": self.organization.slug,
            "project": key.project.slug if key.project_id else None,
            "scopes": key.scopes,
            "prefix": key.prefix,
            "reporting_currency": self.organization.reporting_currency,
            "timezone": self.organization.timezone,
        })
