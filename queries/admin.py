"""Saved queries in the admin, scoped to the organizations a person administers."""
from django import forms
from django.contrib import admin

from koala.admin import TenantAdmin
from koala.exceptions import KoalaError
from queries.models import SavedQuery
from queries.services import saved_query_validate


class SavedQueryForm(forms.ModelForm):
    class Meta:
        model = SavedQuery
        fields = ["organization", "project", "name", "description", "query"]

    def clean(self):
        cleaned = super().clean()
        organization, project = cleaned.get("organization"), cleaned.get("project")
        if organization is None or "query" not in cleaned:
            return cleaned
        if project is not None and project.organization_id != organization.pk:
            self.add_error("project", "This project belongs to another organization.")
            return cleaned
        try:
            saved_query_validate(organization=organization, api_key=None, query=cleaned["query"], project=project)
        except KoalaError as error:
            self.add_error("query", error.message)
        return cleaned


@admin.register(SavedQuery)
class SavedQueryAdmin(TenantAdmin):
    form = SavedQueryForm
    list_display = ["name", "project", "window", "builtin", "organization"]
    list_filter = ["builtin", "project"]
    search_fields = ["name", "description"]
    readonly_fields = ["builtin", "created_at", "updated_at"]

    @admin.display(description="range")
    def window(self, saved_query: SavedQuery) -> str:
        query = saved_query.query if isinstance(saved_query.query, dict) else {}
        if "range" in query:
            return str(query["range"])
        return f"{query.get('from', '?')} – {query.get('to', '?')}"

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("project", "organization")
