"""Budgets in the admin: live status in the list, alert history on the change page,
scoped to the organizations a person administers."""
from django import forms
from django.contrib import admin
from django.db.models import Max
from django.utils import timezone
from django.utils.html import format_html

from budgets.models import Budget, BudgetAlert, DigestDelivery, DigestSubscription
from budgets.selectors import budget_standings
from budgets.services import budget_fields_check
from koala.admin import TenantAdmin, TenantInline
from koala.exceptions import KoalaError
from koala.money import money_display
from organizations.models import Membership


class BudgetForm(forms.ModelForm):
    recipient_roles = forms.MultipleChoiceField(choices=Membership.Role.choices, required=False,
                                                widget=forms.CheckboxSelectMultiple,
                                                help_text="Members with these roles also receive the alerts.")

    class Meta:
        model = Budget
        fields = ["organization", "project", "name", "amount", "period", "thresholds", "filters", "recipients",
                  "recipient_roles", "notify_forecast", "notify_spike", "active"]

    def clean(self):
        cleaned = super().clean()
        organization, project = cleaned.get("organization"), cleaned.get("project")
        if organization is not None and project is not None and project.organization_id != organization.pk:
            self.add_error("project", "This project belongs to another organization.")
        for name in ("amount", "thresholds", "filters"):
            if cleaned.get(name) is None:
                continue
            try:
                cleaned[name] = budget_fields_check({name: cleaned[name]})[name]
            except KoalaError as error:
                self.add_error(name, error.message.split(": ", 1)[-1])
        return cleaned


class BudgetAlertInline(TenantInline):
    model = BudgetAlert
    verbose_name_plural = "alert history"
    fields = readonly_fields = ["kind", "threshold", "period_start", "triggered_at", "spent_display", "sent_at",
                                "attempts", "last_error"]
    ordering = ["-triggered_at"]
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.display(description="spent when triggered")
    def spent_display(self, alert: BudgetAlert) -> str:
        return money_display(alert.spent, alert.organization.reporting_currency)

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("organization")


@admin.register(Budget)
class BudgetAdmin(TenantAdmin):
    form = BudgetForm
    inlines = [BudgetAlertInline]
    list_display = ["name", "project", "period", "amount_display", "spent", "percent_bar", "forecast",
                    "last_alert", "active"]
    list_filter = ["period", "active", "project"]
    search_fields = ["name"]
    # The annotation below groups rows, and Django drops Meta.ordering from grouped queries.
    ordering = ["organization", "name", "id"]

    def get_queryset(self, request):
        return (super().get_queryset(request).select_related("organization", "project")
                .annotate(last_alert_at=Max("alerts__triggered_at")))

    def get_changelist_instance(self, request):
        changelist = super().get_changelist_instance(request)
        # One statement for the whole page's live status, not one per row.
        for standing in budget_standings(budgets=list(changelist.result_list), now=timezone.now()):
            standing.budget.standing = standing
        return changelist

    def _currency(self, budget: Budget) -> str:
        return budget.organization.reporting_currency

    @admin.display(description="amount", ordering="amount")
    def amount_display(self, budget: Budget) -> str:
        return money_display(budget.amount, self._currency(budget))

    @admin.display(description="spent")
    def spent(self, budget: Budget) -> str:
        standing = getattr(budget, "standing", None)
        return money_display(standing.spent, self._currency(budget)) if standing else "—"

    @admin.display(description="percent")
    def percent_bar(self, budget: Budget) -> str:
        standing = getattr(budget, "standing", None)
        if standing is None:
            return "—"
        percent = float(standing.percent)
        color = "#2e7d32" if percent < 80 else "#f9a825" if percent < 100 else "#c62828"
        return format_html(
            '<div style="width:120px;background:#eee;border-radius:3px;display:inline-block;vertical-align:middle">'
            '<div style="width:{}%;background:{};height:10px;border-radius:3px"></div></div> {}%',
            f"{min(percent, 100):.0f}", color, f"{percent:.0f}")

    @admin.display(description="forecast")
    def forecast(self, budget: Budget) -> str:
        standing = getattr(budget, "standing", None)
        return money_display(standing.forecast, self._currency(budget)) if standing else "—"

    @admin.display(description="last alert", ordering="last_alert_at")
    def last_alert(self, budget: Budget) -> str:
        moment = getattr(budget, "last_alert_at", None)
        return timezone.localtime(moment).strftime("%Y-%m-%d %H:%M") if moment else "—"


class DigestSubscriptionForm(forms.ModelForm):
    class Meta:
        model = DigestSubscription
        fields = ["organization", "email", "saved_queries", "active"]

    def clean(self):
        cleaned = super().clean()
        organization = cleaned.get("organization")
        foreign = [saved_query for saved_query in cleaned.get("saved_queries") or []
                   if organization is not None and saved_query.organization_id != organization.pk]
        if foreign:
            self.add_error("saved_queries", "Choose saved queries of this organization only.")
        return cleaned


class DigestDeliveryInline(TenantInline):
    model = DigestDelivery
    verbose_name_plural = "digests sent"
    fields = readonly_fields = ["week_start", "claimed_at", "sent_at", "attempts", "last_error"]
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(DigestSubscription)
class DigestSubscriptionAdmin(TenantAdmin):
    form = DigestSubscriptionForm
    inlines = [DigestDeliveryInline]
    list_display = ["email", "organization", "active", "last_sent"]
    list_filter = ["active"]
    search_fields = ["email"]
    filter_horizontal = ["saved_queries"]
    ordering = ["organization", "email", "id"]  # see BudgetAdmin.ordering

    def get_queryset(self, request):
        return (super().get_queryset(request).select_related("organization")
                .annotate(last_sent_at=Max("deliveries__sent_at")))

    @admin.display(description="last sent", ordering="last_sent_at")
    def last_sent(self, subscription: DigestSubscription) -> str:
        moment = getattr(subscription, "last_sent_at", None)
        return timezone.localtime(moment).strftime("%Y-%m-%d %H:%M") if moment else "—"
