"""The taxonomy in the admin: organization admins govern their event language here.

Every save is checked by compiling the would-be taxonomy first, so an admin sees
a form error instead of breaking ingestion, and bumps the organization's taxonomy
version so every web process applies the change on its next request.
"""
from django import forms
from django.contrib import admin

from events.models import AllowedValue, FieldRule, MetadataKey, Taxonomy
from events.selectors import taxonomy_spec
from events.services import taxonomy_touch
from events.taxonomy import compile_taxonomy
from koala.admin import TenantAdmin, TenantInline


def _compile_or_error(spec: dict) -> None:
    try:
        compile_taxonomy(spec)
    except ValueError as error:
        raise forms.ValidationError(f"This change would make the taxonomy invalid: {error}") from None


def _live_forms(formset):
    return [form for form in formset.forms
            if form.cleaned_data and not form.cleaned_data.get("DELETE", False)]


class AllowedValueFormSet(forms.BaseInlineFormSet):
    def clean(self):
        super().clean()
        rule = self.instance
        if not rule.organization_id or any(form.errors for form in self.forms):
            return
        spec = taxonomy_spec(organization=rule.organization)
        spec["fields"][rule.field] = {
            "presence": rule.presence, "enforcement": rule.enforcement, "convention": rule.convention or None,
            "values": [{"value": form.cleaned_data["value"], "description": form.cleaned_data.get("description", ""),
                        "aliases": list(form.cleaned_data.get("aliases") or [])} for form in _live_forms(self)],
        }
        _compile_or_error(spec)


class AllowedValueInline(TenantInline):
    model = AllowedValue
    formset = AllowedValueFormSet
    fields = ["value", "description", "aliases"]


class MetadataKeyFormSet(forms.BaseInlineFormSet):
    def clean(self):
        super().clean()
        taxonomy = self.instance
        if not taxonomy.organization_id or any(form.errors for form in self.forms):
            return
        spec = taxonomy_spec(organization=taxonomy.organization)
        spec["metadata"]["keys"] = [
            {"key": data["key"], "type": data["type"], "description": data.get("description", ""),
             "aliases": list(data.get("aliases") or []), "minimum": data.get("minimum"),
             "choices": list(data.get("choices") or []) or None}
            for data in (form.cleaned_data for form in _live_forms(self))
        ]
        spec["metadata"]["enforcement"] = taxonomy.metadata_enforcement
        spec["metadata"]["unknown_keys"] = taxonomy.unknown_metadata_keys
        _compile_or_error(spec)


class MetadataKeyInline(TenantInline):
    model = MetadataKey
    formset = MetadataKeyFormSet
    fields = ["key", "type", "description", "aliases", "minimum", "choices"]


class FieldRuleInline(TenantInline):
    model = FieldRule
    fields = ["field", "presence", "enforcement", "convention"]
    readonly_fields = ["field"]
    show_change_link = True
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False  # every field has its rule from the start; edit its values via the change link


class TaxonomyChangeMixin:
    """Stamps inline rows with the organization and tells every process about the change."""

    def save_formset(self, request, form, formset, change):
        for instance in formset.save(commit=False):
            instance.organization_id = form.instance.organization_id
            if hasattr(instance, "taxonomy_id") and not instance.taxonomy_id:
                instance.taxonomy_id = getattr(form.instance, "taxonomy_id", None) or form.instance.pk
            instance.save()
        for instance in formset.deleted_objects:
            instance.delete()
        formset.save_m2m()

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        # Inside the admin's transaction: processes see the new version with the new rows.
        taxonomy_touch(organization=form.instance.organization)


@admin.register(Taxonomy)
class TaxonomyAdmin(TaxonomyChangeMixin, TenantAdmin):
    list_display = ["organization", "metadata_enforcement", "unknown_metadata_keys", "updated_at"]
    list_filter = ["organization"]
    fields = ["organization", "metadata_enforcement", "unknown_metadata_keys"]
    inlines = [FieldRuleInline, MetadataKeyInline]

    def get_readonly_fields(self, request, obj=None):
        return ["organization"] if obj is not None else []

    # One taxonomy per organization, made when the organization is created.
    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class FieldRuleForm(forms.ModelForm):
    class Meta:
        model = FieldRule
        fields = ["presence", "enforcement", "convention", "description"]


@admin.register(FieldRule)
class FieldRuleAdmin(TaxonomyChangeMixin, TenantAdmin):
    form = FieldRuleForm
    list_display = ["field", "organization", "presence", "enforcement", "convention", "allowed_values"]
    list_filter = ["organization", "field", "presence", "enforcement"]
    readonly_fields = ["organization", "field"]
    fields = ["organization", "field", "presence", "enforcement", "convention", "description"]
    inlines = [AllowedValueInline]

    @admin.display(description="Allowed values")
    def allowed_values(self, rule: FieldRule) -> str:
        values = [value.value for value in rule.allowed_values.all()]
        return ", ".join(values) if values else "any"

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("allowed_values")

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
