"""Budgets and the alerts they raise.

An alert row is the claim that makes an email happen exactly once: it is inserted
under a unique constraint (organization, budget, kind, period start, threshold)
before anything is sent, so however many workers evaluate at once, one wins.
"""
from django.contrib.postgres.fields import ArrayField
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q

from organizations.models import Membership, Organization, Project

MONEY = {"max_digits": 38, "decimal_places": 18}
DEFAULT_THRESHOLDS = (50, 80, 100)
FILTER_FIELDS = ("environment", "provider", "application", "action", "model", "tags")


def default_thresholds() -> list[int]:
    return list(DEFAULT_THRESHOLDS)


class Budget(models.Model):
    class Period(models.TextChoices):
        DAY = "day", "day"
        WEEK = "week", "week (from Monday)"
        MONTH = "month", "month"
        QUARTER = "quarter", "quarter"

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="budgets")
    project = models.ForeignKey(Project, on_delete=models.CASCADE, null=True, blank=True, related_name="budgets",
                                help_text="Empty: the whole organization.")
    name = models.CharField(max_length=200)
    amount = models.DecimalField(**MONEY, help_text="In the organization's reporting currency; counts cost.")
    period = models.CharField(max_length=8, choices=Period.choices, default=Period.MONTH)
    thresholds = ArrayField(models.PositiveSmallIntegerField(validators=[MinValueValidator(1),
                                                                         MaxValueValidator(1000)]),
                            default=default_thresholds, help_text="Percent of the amount, e.g. 50,80,100.")
    # {"environment": ["production"], "provider": [...], "tags": [...]}: lists of any-of values.
    filters = models.JSONField(default=dict, blank=True,
                               help_text='e.g. {"environment": ["production"], "tags": ["premium"]}')
    recipients = ArrayField(models.EmailField(), default=list, blank=True,
                            help_text="Email addresses, comma-separated.")
    recipient_roles = ArrayField(models.CharField(max_length=16, choices=Membership.Role.choices), default=list,
                                 blank=True, help_text="Members with these roles also receive the alerts.")
    notify_forecast = models.BooleanField(default=True, help_text="Warn when the period is forecast to overrun.")
    notify_spike = models.BooleanField(default=True, help_text="Warn when an hour's spend jumps far above usual.")
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["organization", "name"]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="budget_amount_positive"),
            models.CheckConstraint(condition=Q(period__in=["day", "week", "month", "quarter"]),
                                   name="budget_period_known"),
        ]
        indexes = [models.Index(fields=["organization", "active"], name="budget_org_active")]

    def __str__(self) -> str:
        return self.name


class BudgetAlert(models.Model):
    class Kind(models.TextChoices):
        THRESHOLD = "threshold", "threshold"
        FORECAST = "forecast", "forecast"
        SPIKE = "spike", "spike"

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    budget = models.ForeignKey(Budget, on_delete=models.CASCADE, related_name="alerts")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    # The budget period's start; for a spike, the start of the (UTC) hour it is about.
    period_start = models.DateTimeField()
    period_end = models.DateTimeField()
    # The percent crossed (threshold alerts); 0 for forecast and spike alerts.
    threshold = models.PositiveSmallIntegerField(default=0)
    triggered_at = models.DateTimeField()
    # What the evaluation saw when it claimed the alert (the email shows these).
    spent = models.DecimalField(**MONEY)
    amount = models.DecimalField(**MONEY)
    forecast = models.DecimalField(**MONEY, null=True, blank=True)
    detail = models.JSONField(default=dict, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)

    class Meta:
        ordering = ["organization", "-triggered_at"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "budget", "kind", "period_start", "threshold"],
                                    name="budgetalert_once_per_period"),
        ]
        indexes = [
            models.Index(fields=["organization", "next_attempt_at"], condition=Q(sent_at__isnull=True),
                         name="budgetalert_org_unsent"),
        ]

    def __str__(self) -> str:
        what = f"{self.threshold}%" if self.kind == self.Kind.THRESHOLD else self.kind
        return f"{self.budget_id}: {what} from {self.period_start:%Y-%m-%d %H:%M}"

    @property
    def message_id(self) -> str:
        # Deterministic: a resend after a crash carries the same id, so mail systems
        # that deduplicate on Message-ID show it once.
        return f"<budget-alert-{self.pk}-{self.kind}-{self.threshold}@trackingkoala>"


class BudgetSpendSnapshot(models.Model):
    """A budget's spend in one period over the events received before `watermark` (the
    rollups' watermark when it was computed). The sweep adds the events received since,
    so a minute's sweep reads each organization's newest events, not its whole period.

    Valid while the period, the budget's definition (`budget_updated_at`) and its age
    (budgets.services.SNAPSHOT_MAX_AGE) hold; amounts changed after the fact (a late
    exchange rate) show once it is recomputed.
    """

    budget = models.OneToOneField(Budget, on_delete=models.CASCADE, primary_key=True, related_name="snapshot")
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    period_start = models.DateTimeField()
    budget_updated_at = models.DateTimeField()
    watermark = models.DateTimeField()
    spent = models.DecimalField(**MONEY)
    computed_at = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["organization"], name="budgetsnapshot_org")]

    def __str__(self) -> str:
        return f"{self.budget_id} from {self.period_start:%Y-%m-%d}: {self.spent}"


class DigestSubscription(models.Model):
    """A weekly email (Monday 08:00 in the organization's zone) with the results of chosen
    saved queries over the past week, each compared with the week before."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="digest_subscriptions")
    email = models.EmailField()
    saved_queries = models.ManyToManyField("queries.SavedQuery", related_name="+")
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["organization", "email"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "email"], name="digestsubscription_once_per_email"),
        ]

    def __str__(self) -> str:
        return self.email


class DigestDelivery(models.Model):
    """The claim of one week's digest for one subscription, taken before it is sent."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    subscription = models.ForeignKey(DigestSubscription, on_delete=models.CASCADE, related_name="deliveries")
    week_start = models.DateField(help_text="The local Monday the digest was due.")
    claimed_at = models.DateTimeField()
    sent_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    last_error = models.TextField(blank=True)

    class Meta:
        ordering = ["organization", "-week_start"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "subscription", "week_start"],
                                    name="digestdelivery_once_per_week"),
        ]

    def __str__(self) -> str:
        return f"{self.subscription_id} for {self.week_start}"

    @property
    def message_id(self) -> str:
        return f"<budget-digest-{self.pk}@trackingkoala>"
