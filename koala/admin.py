"""`TenantAdmin`: the one base class every admin page of a tenant-owned model uses.

An organization admin sees and changes only rows of the organizations they
administer. Everything the admin shows or accepts goes through the hooks below:

- change lists, change, delete and history pages, actions (`delete_selected`
  included) and facets: `get_queryset`; an object outside it answers like a
  missing one (a redirect to the index), never with its data;
- foreign-key and many-to-many choices, so a posted id of another organization is
  a form error, and the raw-id widget's label, which Django looks up through the
  default manager;
- list filters: relational filters offer only values present in the scoped rows;
- autocomplete and raw-id popups: Django answers them with the *target* model's
  admin (`get_queryset`, `search_fields`), so they are scoped when that admin is
  a `TenantAdmin`;
- saving and deleting, checked again before the write.

Superusers see everything. `TenantInline` applies the same rules inside a page.
"""
from django.contrib import admin
from django.contrib.admin.utils import NotRelationField, get_fields_from_path
from django.contrib.admin.widgets import ForeignKeyRawIdWidget
from django.contrib.auth import get_user_model
from django.core.exceptions import FieldDoesNotExist, PermissionDenied, ValidationError
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


class ScopedForeignKeyRawIdWidget(ForeignKeyRawIdWidget):
    """Names the chosen object only when it is among the field's (scoped) choices.

    Django's widget looks the label up through the default manager, so a form
    re-rendered with another organization's id (posted, or pre-filled with
    `?organization=<id>` on an add page) would print that organization's name.
    """

    def __init__(self, rel, admin_site, *, queryset: models.QuerySet, attrs=None, using=None):
        self.queryset = queryset
        super().__init__(rel, admin_site, attrs=attrs, using=using)

    def label_and_url_for_value(self, value):
        key = self.rel.get_related_field().name
        try:
            visible = self.queryset.using(self.db).filter(**{key: value}).exists()
        except (ValueError, TypeError, ValidationError):
            visible = False
        return super().label_and_url_for_value(value) if visible else ("", "")


class TenantScopingMixin:
    """The scoping shared by `TenantAdmin` and `TenantInline`."""

    def _sees_everything(self, request) -> bool:
        return request.user.is_active and request.user.is_superuser

    def _organization_ids(self, request) -> set[int]:
        return administered_organization_ids(request)

    def _scoped(self, request, queryset: models.QuerySet) -> models.QuerySet:
        if self._sees_everything(request):
            return queryset
        return scope_to_organizations(queryset, self._organization_ids(request))

    def get_queryset(self, request):
        return self._scoped(request, super().get_queryset(request))

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

    def _related_queryset(self, db_field, request, kwargs: dict) -> models.QuerySet:
        queryset = kwargs.get("queryset")
        if queryset is None:
            # Keeps the related admin's ordering, as Django would.
            queryset = self.get_field_queryset(kwargs.get("using"), db_field, request)
        if queryset is None:
            queryset = db_field.remote_field.model._default_manager.using(kwargs.get("using")).all()
        return self._scoped(request, queryset)

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        kwargs["queryset"] = self._related_queryset(db_field, request, kwargs)
        if "widget" not in kwargs and db_field.name in self.raw_id_fields:
            kwargs["widget"] = ScopedForeignKeyRawIdWidget(db_field.remote_field, self.admin_site,
                                                           queryset=kwargs["queryset"], using=kwargs.get("using"))
        formfield = super().formfield_for_foreignkey(db_field, request, **kwargs)
        if formfield is not None and db_field.related_model is Organization and not self._sees_everything(request):
            organization_ids = self._organization_ids(request)
            if len(organization_ids) == 1:
                formfield.initial = next(iter(organization_ids))
        return formfield

    def formfield_for_manytomany(self, db_field, request, **kwargs):
        # (The many-to-many raw-id widget prints no labels, so it needs no scoped twin.)
        kwargs["queryset"] = self._related_queryset(db_field, request, kwargs)
        return super().formfield_for_manytomany(db_field, request, **kwargs)


class TenantAdmin(TenantScopingMixin, admin.ModelAdmin):
    """Base admin for tenant-owned models (and for Organization itself).

    Subclasses keep the scoping as long as they call `super()` in the hooks above.
    A custom `SimpleListFilter` must build its choices from the `queryset` it is
    given; the admin crawl test (tests/organizations/test_admin_tenancy.py) walks
    every filter link of every registered model and would catch one that does not.
    """

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

    def get_list_filter(self, request):
        """Relational filters offer only the values present in the scoped rows.

        Django's `RelatedFieldListFilter` lists every row of the related table;
        `RelatedOnlyFieldListFilter` lists those the (scoped) change list refers to.
        """
        scoped = []
        for entry in super().get_list_filter(request):
            if isinstance(entry, str):
                path, filter_class = entry, None
            elif isinstance(entry, tuple):
                path, filter_class = entry
            else:  # a SimpleListFilter: its own lookups, from the scoped queryset
                path, filter_class = None, entry
            if path is not None and filter_class in (None, admin.RelatedFieldListFilter):
                try:
                    last_field = get_fields_from_path(self.model, path)[-1]
                except (FieldDoesNotExist, NotRelationField):
                    last_field = None
                if last_field is not None and last_field.is_relation:
                    entry = (path, admin.RelatedOnlyFieldListFilter)
            scoped.append(entry)
        return scoped

    def _refuse_unless_administered(self, request, obj) -> None:
        if not self._sees_everything(request) and organization_id_of(obj) not in self._organization_ids(request):
            raise PermissionDenied("That object belongs to an organization you do not administer.")

    def save_model(self, request, obj, form, change):
        self._refuse_unless_administered(request, obj)
        super().save_model(request, obj, form, change)

    def save_formset(self, request, form, formset, change):
        # Inline rows take their organization from the form; checked like the parent.
        # The whole change runs in one transaction, so a refusal here writes nothing.
        for inline_form in formset.forms:
            if inline_form.has_changed() and organization_id_of(inline_form.instance) is not None:
                self._refuse_unless_administered(request, inline_form.instance)
        super().save_formset(request, form, formset, change)

    def delete_model(self, request, obj):
        self._refuse_unless_administered(request, obj)
        super().delete_model(request, obj)

    def delete_queryset(self, request, queryset):
        # `delete_selected` already works on `get_queryset`; narrowed again so an
        # override of the action cannot widen it.
        super().delete_queryset(request, self._scoped(request, queryset))


class TenantInline(TenantScopingMixin, admin.TabularInline):
    """Inlines inherit the parent's scope; their own foreign keys are scoped too.

    The permission hooks of an inline receive the parent object.
    """

    extra = 0

    def has_view_permission(self, request, obj=None):
        return self._may_touch(request, obj)

    def has_add_permission(self, request, obj=None):
        return self._may_touch(request, obj)

    def has_change_permission(self, request, obj=None):
        return self._may_touch(request, obj)

    def has_delete_permission(self, request, obj=None):
        return self._may_touch(request, obj)
