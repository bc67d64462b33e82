from datetime import timedelta

from django import forms
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Q
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.html import format_html

from events.money import services as money_services
from events.selectors import event_list
from koala.admin import TenantAdmin, TenantInline
from koala.exceptions import KoalaError
from organizations import services
from organizations.currencies import CURRENCY_CODES
from organizations.models import ApiKey, ExchangeRate, Membership, ModelPrice, Organization, Project


class OrganizationForm(forms.ModelForm):
    class Meta:
        model = Organization
        fields = ["name", "slug", "reporting_currency", "timezone"]

    def clean_reporting_currency(self):
        code = self.cleaned_data["reporting_currency"].strip().upper()
        if code not in CURRENCY_CODES:
            raise ValidationError(f"'{code}' is not an ISO 4217 currency code (for example USD, EUR, JPY).")
        current = self.instance.reporting_currency if self.instance.pk else None
        if current and code != current and event_list(organization=self.instance).exists():
            # Stored events, rollups, budgets and alerts hold amounts in the current
            # currency; switching would add two currencies together in every report.
            raise ValidationError(
                f"The reporting currency cannot change from {current} to {code}: this organization already has "
                f"events whose amounts are counted in {current}. Create a new organization for {code} reporting.")
        return code

    def clean_timezone(self):
        try:
            return services.validate_timezone(self.cleaned_data["timezone"].strip())
        except KoalaError as error:
            raise ValidationError(error.message) from None


class ProjectInline(TenantInline):
    model = Project
    fields = ["name", "slug"]


@admin.register(Organization)
class OrganizationAdmin(TenantAdmin):
    form = OrganizationForm
    list_display = ["name", "slug", "reporting_currency", "timezone", "created_at"]
    search_fields = ["name", "slug"]
    inlines = [ProjectInline]

    # An organization admin manages their organization; creating and deleting
    # whole organizations is for platform operators (superusers, `create_org`).
    def has_add_permission(self, request) -> bool:
        return request.user.is_superuser

    def has_delete_permission(self, request, obj=None) -> bool:
        return request.user.is_superuser

    def get_readonly_fields(self, request, obj=None):
        return [] if request.user.is_superuser else ["slug"]

    def save_model(self, request, obj, form, change):
        if not change:
            # Through the service, so a new organization gets its default taxonomy and saved queries.
            created = services.organization_create(
                name=obj.name, slug=obj.slug, currency=obj.reporting_currency, timezone_name=obj.timezone)
            obj.pk, obj.created_at = created.pk, created.created_at
            obj._state.adding = False
            return
        super().save_model(request, obj, form, change)


@admin.register(Project)
class ProjectAdmin(TenantAdmin):
    list_display = ["name", "slug", "organization", "created_at"]
    list_filter = ["organization"]
    search_fields = ["name", "slug"]
    fields = ["organization", "name", "slug"]
    # A platform operator's list of organizations can be long; the raw-id lookup
    # (scoped like every list) also serves organization admins with one or two.
    raw_id_fields = ["organization"]


class MembershipForm(forms.ModelForm):
    email = forms.EmailField(help_text="Their sign-in; a login is created when they have none.")
    password = forms.CharField(required=False, widget=forms.PasswordInput(render_value=False),
                               help_text="Only for a new login; someone who already has one keeps theirs.")

    class Meta:
        model = Membership
        fields = ["organization", "role"]

    def clean(self):
        cleaned = super().clean()
        email, password = cleaned.get("email"), cleaned.get("password")
        # The service ignores a password for an existing login (anything else would let
        # an admin take over another organization's owner); say so rather than drop it.
        if email and password and _login_exists(email):
            self.add_error("password", "This person already has a login; leave the password empty. "
                                       "Only they can change their password.")
        return cleaned


def _login_exists(email: str) -> bool:
    """Whether `membership_add` would find an existing login for `email`."""
    email = email.strip()
    User = get_user_model()
    return User.objects.filter(Q(email__iexact=email) | Q(username__iexact=email)).exists()


class AddedByServiceMixin:
    """For admins whose `save_form` creates the row through a service on add.

    The service has written the row by then and the form was never saved, so the
    add path must neither save it again nor call the form's `save_m2m`.
    """

    def save_model(self, request, obj, form, change):
        if change:
            super().save_model(request, obj, form, change)

    def save_related(self, request, form, formsets, change):
        if change:
            super().save_related(request, form, formsets, change)


@admin.register(Membership)
class MembershipAdmin(AddedByServiceMixin, TenantAdmin):
    list_display = ["member_email", "organization", "role", "created_at"]
    list_filter = ["organization", "role"]
    search_fields = ["user__email", "user__username"]
    autocomplete_fields = ["organization"]
    form = MembershipForm

    @admin.display(description="Email", ordering="user__email")
    def member_email(self, membership: Membership) -> str:
        return membership.user.email or membership.user.username

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is not None:
            # The person is fixed once added; only the role changes.
            kwargs["form"] = forms.ModelForm
            kwargs["fields"] = ["role"]
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fields(self, request, obj=None):
        return ["role"] if obj is not None else ["organization", "email", "password", "role"]

    def save_form(self, request, form, change):
        if change:
            return super().save_form(request, form, change)
        organization = form.cleaned_data["organization"]
        if not request.user.is_superuser and organization.pk not in self._organization_ids(request):
            raise PermissionDenied("You do not administer that organization.")
        return services.membership_add(
            organization=organization, email=form.cleaned_data["email"], role=form.cleaned_data["role"],
            password=form.cleaned_data.get("password") or None,
        )



class ApiKeyCreateForm(forms.ModelForm):
    scopes = forms.MultipleChoiceField(choices=ApiKey.Scope.choices, widget=forms.CheckboxSelectMultiple,
                                       initial=["ingest"])

    class Meta:
        model = ApiKey
        fields = ["organization", "project", "name", "scopes"]

    def clean(self):
        cleaned = super().clean()
        organization, project = cleaned.get("organization"), cleaned.get("project")
        if organization and project and project.organization_id != organization.pk:
            self.add_error("project", "That project belongs to another organization.")
        return cleaned


@admin.register(ApiKey)
class ApiKeyAdmin(AddedByServiceMixin, TenantAdmin):
    list_display = ["name", "shown_prefix", "organization", "project", "scopes", "created_at", "last_used_at",
                    "revoked"]
    list_filter = ["organization", "project"]
    search_fields = ["name", "prefix"]
    autocomplete_fields = ["organization", "project"]
    actions = ["revoke_selected"]
    readonly_fields = ["shown_prefix", "organization", "project", "scopes", "created_at", "last_used_at",
                       "revoked_at"]

    @admin.display(description="Key")
    def shown_prefix(self, api_key: ApiKey) -> str:
        return f"tk_{api_key.prefix}_…"

    @admin.display(description="Revoked", boolean=True)
    def revoked(self, api_key: ApiKey) -> bool:
        return api_key.is_revoked

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            kwargs["form"] = ApiKeyCreateForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["organization", "project", "name", "scopes"]
        return ["name", *self.readonly_fields]

    def get_readonly_fields(self, request, obj=None):
        return [] if obj is None else self.readonly_fields

    def save_form(self, request, form, change):
        if change:
            return super().save_form(request, form, change)
        data = form.cleaned_data
        if not request.user.is_superuser and data["organization"].pk not in self._organization_ids(request):
            raise PermissionDenied("You do not administer that organization.")
        api_key, plaintext = services.api_key_create(
            organization=data["organization"], project=data.get("project"), scopes=data["scopes"],
            name=data.get("name", ""), created_by=request.user,
        )
        api_key.plaintext_once = plaintext
        return api_key


    def response_add(self, request, obj, post_url_continue=None):
        """Shows the secret on this one page; it is not stored and cannot be shown again."""
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "api_key": obj,
            "plaintext": obj.plaintext_once,
            "title": "Copy your new API key",
        }
        response = TemplateResponse(request, "admin/organizations/apikey/created.html", context)
        response["Cache-Control"] = "no-store"
        return response

    @admin.action(description="Revoke selected keys")
    def revoke_selected(self, request, queryset):
        count = 0
        for api_key in queryset.filter(revoked_at__isnull=True):
            services.api_key_revoke(api_key=api_key)
            count += 1
        self.message_user(request, format_html("Revoked {} key(s); they stop working on their next request.", count),
                          messages.SUCCESS)


class ExchangeRateForm(forms.ModelForm):
    class Meta:
        model = ExchangeRate
        fields = ["organization", "base", "rate", "valid_from"]

    def clean_base(self):
        code = self.cleaned_data["base"].strip().upper()
        if code not in CURRENCY_CODES:
            raise ValidationError(f"'{code}' is not an ISO 4217 currency code (for example EUR, GBP, JPY).")
        return code

    def clean(self):
        cleaned = super().clean()
        organization, base, valid_from = (cleaned.get("organization"), cleaned.get("base"),
                                          cleaned.get("valid_from"))
        if organization is None or base is None:
            return cleaned
        if base == organization.reporting_currency:
            self.add_error("base", f"{base} is the reporting currency itself; rates convert other currencies into it.")
        elif valid_from is not None and ExchangeRate.objects.filter(
                organization=organization, base=base, quote=organization.reporting_currency,
                valid_from=valid_from).exclude(pk=self.instance.pk).exists():
            # The unique constraint names `quote`, which the form does not show, so Django
            # would not check it and the save would fail.
            self.add_error("valid_from", f"A {base} rate from this moment already exists; correct that one instead.")
        return cleaned


@admin.register(ExchangeRate)
class ExchangeRateAdmin(TenantAdmin):
    """Rates into the reporting currency. Saving or deleting one converts the stored
    events it applies to in the background (pending ones first of all)."""

    form = ExchangeRateForm
    list_display = ["base", "quote", "rate", "valid_from", "organization", "updated_at"]
    list_filter = ["organization", "base"]
    search_fields = ["base"]
    date_hierarchy = "valid_from"
    raw_id_fields = ["organization"]

    def save_model(self, request, obj, form, change):
        since = obj.valid_from
        if change and form.initial["valid_from"] < since:
            since = form.initial["valid_from"]  # moved later: events in between change rate too
        obj.quote = obj.organization.reporting_currency
        super().save_model(request, obj, form, change)
        money_services.exchange_rates_changed(organization=obj.organization, base=obj.base, since=since)
        if change and form.initial["base"] != obj.base:  # the former currency lost this rate
            money_services.exchange_rates_changed(organization=obj.organization, base=form.initial["base"],
                                                  since=form.initial["valid_from"])

    def delete_model(self, request, obj):
        super().delete_model(request, obj)
        money_services.exchange_rates_changed(organization=obj.organization, base=obj.base, since=obj.valid_from)

    def delete_queryset(self, request, queryset):
        changed = list(self._scoped(request, queryset).select_related("organization"))
        super().delete_queryset(request, queryset)
        for rate in changed:
            money_services.exchange_rates_changed(organization=rate.organization, base=rate.base,
                                                  since=rate.valid_from)


class ModelPriceForm(forms.ModelForm):
    class Meta:
        model = ModelPrice
        fields = ["organization", "provider", "model", "currency", "input_per_million", "output_per_million",
                  "cache_read_per_million", "cache_write_per_million", "valid_from"]

    def clean_currency(self):
        code = self.cleaned_data["currency"].strip().upper()
        if code not in CURRENCY_CODES:
            raise ValidationError(f"'{code}' is not an ISO 4217 currency code (for example USD, EUR).")
        return code

    def clean_provider(self):
        return self.cleaned_data["provider"].strip().lower()

    def clean_model(self):
        return self.cleaned_data["model"].strip().lower()


@admin.register(ModelPrice)
class ModelPriceAdmin(TenantAdmin):
    """The organization's own prices per million tokens; they beat the genai-prices
    catalog for events sent without a cost. New events use a saved price at once;
    "Recompute costs" re-prices the events already stored."""

    form = ModelPriceForm
    list_display = ["provider_shown", "model", "currency", "input_per_million", "output_per_million",
                    "cache_read_per_million", "cache_write_per_million", "valid_from", "organization"]
    list_filter = ["organization", "provider", "currency"]
    search_fields = ["model", "provider"]
    raw_id_fields = ["organization"]
    actions = ["recompute_costs"]

    @admin.display(description="Provider", ordering="provider")
    def provider_shown(self, price: ModelPrice) -> str:
        return price.provider or "any"

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        money_services.money_touch(organization=obj.organization)

    def delete_model(self, request, obj):
        super().delete_model(request, obj)
        money_services.money_touch(organization=obj.organization)

    def delete_queryset(self, request, queryset):
        organizations = {price.organization for price in self._scoped(request, queryset).select_related("organization")}
        super().delete_queryset(request, queryset)
        for organization in organizations:
            money_services.money_touch(organization=organization)

    @admin.action(description="Recompute costs computed from tokens, from these prices' dates on")
    def recompute_costs(self, request, queryset):
        # From the earliest selected price to the latest moment an event may carry (24 h ahead).
        until = timezone.now() + timedelta(days=2)
        by_organization: dict = {}
        for price in self._scoped(request, queryset).select_related("organization"):
            since = by_organization.get(price.organization, price.valid_from)
            by_organization[price.organization] = min(since, price.valid_from)
        for organization, since in by_organization.items():
            result = money_services.event_costs_reprice(organization=organization, since=since, until=until)
            self.message_user(request, format_html(
                "{}: {} event(s) with a computed cost since {}, {} changed, {} without a price (left unchanged). "
                "Costs sent by clients are never changed.", organization.name, result.examined,
                since.isoformat(), result.changed, result.unpriced), messages.SUCCESS)
