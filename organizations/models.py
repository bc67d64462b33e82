from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.db.models import Q


class Organization(models.Model):
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=64, unique=True)
    reporting_currency = models.CharField(max_length=3, default="USD",
                                          help_text="ISO 4217 code every report and budget is in.")
    timezone = models.CharField(max_length=64, default="UTC",
                                help_text="IANA zone for days, weeks and budget periods.")
    # Bumped whenever a taxonomy rule changes; every process compares it with the
    # version it compiled, which arrives with the API key lookup at no extra query.
    taxonomy_version = models.PositiveIntegerField(default=1, editable=False)
    # The same for exchange rates and model prices (events/money/ compiles them per process).
    money_version = models.PositiveIntegerField(default=1, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(condition=Q(reporting_currency__regex=r"^[A-Z]{3}$"),
                                   name="organization_currency_iso4217"),
        ]

    def __str__(self) -> str:
        return self.name


class Membership(models.Model):
    class Role(models.TextChoices):
        OWNER = "owner", "Owner"
        ADMIN = "admin", "Admin"
        MEMBER = "member", "Member"
        VIEWER = "viewer", "Viewer"

    ADMIN_ROLES = (Role.OWNER, Role.ADMIN)

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.MEMBER)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["organization", "user__email"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "user"], name="membership_unique_user_per_org"),
        ]

    def __str__(self) -> str:
        return f"{self.user.email or self.user.username} ({self.get_role_display()})"


class Project(models.Model):
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="projects")
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["organization", "slug"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "slug"], name="project_unique_slug_per_org"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.slug})"


class ApiKey(models.Model):
    class Scope(models.TextChoices):
        INGEST = "ingest", "ingest: send events"
        READ = "read", "read: events, reports, taxonomy"
        MANAGE = "manage", "manage: budgets and saved queries"

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="api_keys")
    project = models.ForeignKey(Project, on_delete=models.CASCADE, null=True, blank=True, related_name="api_keys",
                                help_text="Empty: an organization key that sees every project.")
    name = models.CharField(max_length=200, blank=True)
    # The public part of the key (`tk_<prefix>_...`); it finds the row without a scan.
    prefix = models.CharField(max_length=16, unique=True, editable=False)
    # SHA-256 of the whole key. Keys carry 190 random bits, so a fast hash is safe
    # and keeps authentication to one indexed lookup (no KDF per request).
    key_hash = models.CharField(max_length=64, editable=False)
    scopes = ArrayField(models.CharField(max_length=16, choices=Scope.choices), default=list)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
                                   related_name="+", editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["organization", "-created_at"]
        indexes = [models.Index(fields=["organization", "project"], name="apikey_org_project")]
        constraints = [
            models.CheckConstraint(
                condition=Q(scopes__contained_by=["ingest", "read", "manage"]) & ~Q(scopes=[]),
                name="apikey_scopes_known_and_not_empty",
            ),
        ]

    def __str__(self) -> str:
        return f"tk_{self.prefix}_… {self.name}".strip()

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None

    @property
    def is_organization_key(self) -> bool:
        return self.project_id is None


RATE = {"max_digits": 38, "decimal_places": 18}


class ExchangeRate(models.Model):
    """One unit of `base` is worth `rate` units of `quote` (the reporting currency) from `valid_from` on.

    Rows are never overwritten by a newer rate: each one holds from its `valid_from`
    until the next row's, so the history converts old events with the rate of their day.
    """

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="exchange_rates")
    base = models.CharField(max_length=3, help_text="The currency events are sent in (ISO 4217, e.g. EUR).")
    quote = models.CharField(max_length=3, editable=False,
                             help_text="The organization's reporting currency, set when the rate is saved.")
    rate = models.DecimalField(**RATE, help_text="Units of the reporting currency one unit of the base buys; exact.")
    valid_from = models.DateTimeField(help_text="In force from this moment until the next rate of the pair.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["organization", "base", "-valid_from"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "base", "quote", "valid_from"],
                                    name="exchangerate_unique_pair_from"),
            models.CheckConstraint(condition=Q(rate__gt=0), name="exchangerate_rate_positive"),
            models.CheckConstraint(condition=~Q(base=models.F("quote")), name="exchangerate_distinct_pair"),
            models.CheckConstraint(condition=Q(base__regex=r"^[A-Z]{3}$") & Q(quote__regex=r"^[A-Z]{3}$"),
                                   name="exchangerate_currency_iso4217"),
        ]

    def __str__(self) -> str:
        return f"1 {self.base} = {self.rate.normalize()} {self.quote} from {self.valid_from:%Y-%m-%d %H:%M %Z}"


class ModelPrice(models.Model):
    """An organization's own price for a model, beating the genai-prices catalog.

    `model` is a model name or a pattern with `*` wildcards (`gpt-4o*`); an empty
    provider applies to every provider. Prices are per million tokens.
    """

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="model_prices")
    provider = models.CharField(max_length=64, blank=True,
                                help_text="The event's provider (canonical value, e.g. openai); empty: any provider.")
    model = models.CharField(max_length=200, help_text="Model name, or a pattern with * wildcards (gpt-4o*).")
    currency = models.CharField(max_length=3, default="USD", help_text="Currency of the prices below (ISO 4217).")
    input_per_million = models.DecimalField(**RATE, help_text="Price of one million input tokens.")
    output_per_million = models.DecimalField(**RATE, help_text="Price of one million output tokens.")
    cache_read_per_million = models.DecimalField(
        **RATE, null=True, blank=True,
        help_text="Price of one million input tokens read from cache; empty: the input price.")
    cache_write_per_million = models.DecimalField(
        **RATE, null=True, blank=True,
        help_text="Price of one million input tokens written to cache; empty: the input price.")
    valid_from = models.DateTimeField(
        help_text="Applies to events from this moment until a newer price of the same model.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["organization", "provider", "model", "-valid_from"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "provider", "model", "valid_from"],
                                    name="modelprice_unique_model_from"),
            models.CheckConstraint(
                condition=Q(input_per_million__gte=0) & Q(output_per_million__gte=0)
                & (Q(cache_read_per_million__isnull=True) | Q(cache_read_per_million__gte=0))
                & (Q(cache_write_per_million__isnull=True) | Q(cache_write_per_million__gte=0)),
                name="modelprice_prices_not_negative"),
            models.CheckConstraint(condition=Q(currency__regex=r"^[A-Z]{3}$"), name="modelprice_currency_iso4217"),
        ]

    def __str__(self) -> str:
        return f"{self.provider or '*'}/{self.model} from {self.valid_from:%Y-%m-%d}"
