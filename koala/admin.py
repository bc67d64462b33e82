"""`TenantAdmin`: the one base class every admin page of a tenant-owned model uses.

An organization admin sees and changes only rows of the organizations they
administer: change lists, change and history pages (through `get_queryset`),
foreign-key and many-to-many choices, list filter choices, autocomplete and raw-id
popups (which use the related model's scoped admin), actions (which act on the
scoped queryset) and saving (checked again before the write). Superusers see all.
"""
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.core.exceptions import FieldDoesNotExist, PermissionDenied
from django.db import models

from koala.admin_site import administered_organization_ids
from organizations.models import Organization


def scope_to_organizations(queryset: models.QuerySet, organization_ids: set[int]) -> models.QuerySet:
    """`queryset` narrowed to rows of `organization_ids`; unknown shapes get nothing."""
    model = queryset.model
    if model is Organization:
        return queryset.filter(pk__in=organization_ids)
    if model is get_user_model():
        return queryset.filter(memberships__organization_id__in=organization_ids).distinct()
    try:
        model._meta.get_field("organization")
    except FieldDoesNotExist:
        return queryset.none()
    return queryset.filter(organization_id__in=organization_ids)


def organization_id_of(obj) -> int | None:
    if isinstance(obj, Organization):
        return obj.pk
    return getattr(obj, "organization_id", None)


class TenantAdmin(admin.ModelAdmin):
    """Base admin for tenant-owned models (and for Organization itself)."""

    def _organization_ids(self, request) -> set[int]:
        return administered_organization_ids(request)

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        if request.user.is_superuser:
            return queryset
        return scope_to_organizations(queryset, self._organization_ids(request))

    def _may_touch(self, request, obj=None) -> bool:
        if not request.user.is_active:
            return False
        if request.user.is_superuser:
            return True
        organization_ids = self._organization_ids(request)
        if not organization_ids:
            return False
        if obj is None:
            return True
        return organization_id_of(obj) in organization_ids

    def has_module_permission(self, request) -> bool:
        return self._may_touch(request)

    def has_view_permission(self, request, obj=None) -> bool:
        return self._may_touch(request, obj)

    def has_add_permission(self, request) -> bool:
        return self._may_touch(request)

    def has_change_permission(self, request, obj=None) -> bool:
        return self._may_touch(request, obj)

    def has_delete_permission(self, request, obj=None) -> bool:
        return self._may_touch(request, obj)

    def _scoped_related(self, request, related_model, kwargs: dict) -> dict:
        if not request.user.is_superuser:
            base = kwargs.get("queryset")
            if base is None:
                base = related_model._default_manager.all()
            kwargs["queryset"] = scope_to_organizations(base, self._organization_ids(request))
        return kwargs

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        kwargs = self._scoped_related(request, db_field.related_model, kwargs)
        formfield = super().formfield_for_foreignkey(db_field, request, **kwargs)
        organization_ids = self._organization_ids(request) if not request.user.is_superuser else set()
        if formfield is not None and db_field.related_model is Organization and len(organization_ids) == 1:
            formfield.initial = next(iter(organization_ids))
        return formfield

    def formfield_for_manytomany(self, db_field, request, **kwargs):
        kwargs = self._scoped_related(request, db_field.related_model, kwargs)
        return super().formfield_for_manytomany(db_field, request, **kwargs)

    def get_list_filter(self, request):
        """Foreign-key filters offer only the values in the scoped rows."""
        scoped = []
        for entry in super().get_list_filter(request):
            if isinstance(entry, str):
                try:
                    field = self.model._meta.get_field(entry)
                except FieldDoesNotExist:
                    field = None
                if field is not None and field.is_relation:
                    entry = (entry, admin.RelatedOnlyFieldListFilter)
            scoped.append(entry)
        return scoped

    def save_model(self, request, obj, form, change):
        if not request.user.is_superuser and organization_id_of(obj) not in self._organization_ids(request):
            raise PermissionDenied("That object belongs to an organization you do not administer.")
        super().save_model(request, obj, form, change)

    def delete_model(self, request, obj):
        if not self._may_touch(request, obj):
            raise PermissionDenied("That object belongs to an organization you do not administer.")
        super().delete_model(request, obj)


class TenantInline(admin.TabularInline):
    """Inlines inherit the parent's scope; their own foreign keys are scoped too."""

    extra = 0

    def _scoped(self, request, related_model, kwargs):
        if not request.user.is_superuser:
            base = kwargs.get("queryset") or related_model._default_manager.all()
            kwargs["queryset"] = scope_to_organizations(base, administered_organization_ids(request))
        return kwargs

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        return super().formfield_for_foreignkey(db_field, request, **self._scoped(request, db_field.related_model, kwargs))

    def has_view_permission(self, request, obj=None):
        return request.user.is_superuser or bool(administered_organization_ids(request))

    has_add_permission = has_change_permission = has_delete_permission = has_view_permission
