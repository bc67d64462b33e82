"""Stored events and the organization's taxonomy rules.

`events_event` is range-partitioned by month on `timestamp`, which Django's schema
editor cannot express: migration 0001 creates it in SQL and the model is unmanaged.
Idempotency spans partitions through `EventKey`, a plain table keyed by
(organization, project, client id).
"""
from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.db.models import Q

from organizations.models import Organization, Project

MONEY = {"max_digits": 38, "decimal_places": 18}


class Event(models.Model):
    # A surrogate from a sequence; the public id is `client_id`.
    seq = models.BigIntegerField(primary_key=True)
    organization = models.ForeignKey(Organization, on_delete=models.DO_NOTHING, related_name="+")
    project = models.ForeignKey(Project, on_delete=models.DO_NOTHING, related_name="+")
    client_id = models.CharField(max_length=128)
    timestamp = models.DateTimeField()
    received_at = models.DateTimeField()
    cost = models.DecimalField(**MONEY)
    charge = models.DecimalField(null=True, **MONEY)
    currency = models.CharField(max_length=3)
    # Amounts in the organization's reporting currency: what reports and budgets sum.
    # NULL while no exchange rate converts `currency` (the event is "unconverted").
    cost_reporting = models.DecimalField(null=True, **MONEY)
    charge_reporting = models.DecimalField(null=True, **MONEY)
    # Units of the reporting currency per unit of `currency`; NULL when they are the same or unconverted.
    exchange_rate = models.DecimalField(null=True, **MONEY)
    # "client": sent by the client, never changed; "computed": from tokens and `price_ref`.
    cost_source = models.CharField(max_length=8, default="client")
    price_ref = models.CharField(max_length=200, null=True)
    environment = models.CharField(max_length=64, null=True)
    provider = models.CharField(max_length=64, null=True)
    application = models.CharField(max_length=64, null=True)
    action = models.CharField(max_length=64, null=True)
    user_id = models.CharField(max_length=128, null=True)
    tags = ArrayField(models.CharField(max_length=64), default=list)
    traces = ArrayField(models.CharField(max_length=128), default=list)
    metadata = models.JSONField(default=dict)
    # Well-known metadata, promoted to typed columns for filters and reports.
    model = models.CharField(max_length=200, null=True)
    latency_ms = models.BigIntegerField(null=True)
    input_tokens = models.BigIntegerField(null=True)
    output_tokens = models.BigIntegerField(null=True)
    status = models.CharField(max_length=16, null=True)
    error_type = models.CharField(max_length=200, null=True)
    # Taxonomy rules this event was flagged under (e.g. "charge.missing"), for health reports.
    flags = ArrayField(models.CharField(max_length=64), default=list)

    class Meta:
        managed = False
        db_table = "events_event"

    def __str__(self) -> str:
        return f"{self.client_id} @ {self.timestamp:%Y-%m-%d %H:%M}"


class EventKey(models.Model):
    """One row per stored client id: the idempotency record that spans partitions.

    Its primary key is the uniqueness itself, so each event costs one index entry
    here; foreign keys are not enforced by the database on this hot table.
    """

    pk = models.CompositePrimaryKey("organization", "project", "client_id")
    organization = models.ForeignKey(Organization, on_delete=models.DO_NOTHING, related_name="+",
                                     db_constraint=False, db_index=False)
    project = models.ForeignKey(Project, on_delete=models.DO_NOTHING, related_name="+", db_constraint=False,
                                db_index=False)
    client_id = models.CharField(max_length=128)
    # A digest of the event as sent: equal digest = duplicate, different = id_conflict.
    content_hash = models.BinaryField(max_length=16)
    timestamp = models.DateTimeField()

    class Meta:
        db_table = "events_eventkey"


class Presence(models.TextChoices):
    REQUIRED = "required", "required"
    RECOMMENDED = "recommended", "recommended"
    OPTIONAL = "optional", "optional"


class Enforcement(models.TextChoices):
    REJECT = "reject", "reject the event"
    FLAG = "flag", "store and flag"


class Taxonomy(models.Model):
    """An organization's event language; one per organization."""

    class UnknownKeys(models.TextChoices):
        ALLOW = "allow", "store silently"
        FLAG_SIMILAR = "flag_similar", "store; flag when it resembles a registered key"
        FLAG = "flag", "store and flag every unknown key"
        REJECT = "reject", "reject the event"

    organization = models.OneToOneField(Organization, on_delete=models.CASCADE, related_name="taxonomy")
    metadata_enforcement = models.CharField(
        max_length=8, choices=Enforcement.choices, default=Enforcement.REJECT,
        help_text="What happens when a registered metadata key has the wrong type or value.")
    unknown_metadata_keys = models.CharField(max_length=16, choices=UnknownKeys.choices,
                                             default=UnknownKeys.FLAG_SIMILAR)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "taxonomies"

    def __str__(self) -> str:
        return f"Taxonomy of {self.organization}"


class FieldRule(models.Model):
    class Field(models.TextChoices):
        ENVIRONMENT = "environment"
        PROVIDER = "provider"
        APPLICATION = "application"
        ACTION = "action"
        USER_ID = "userId"
        CHARGE = "charge"
        TRACES = "traces"
        TAGS = "tags"

    class Convention(models.TextChoices):
        SNAKE_CASE = "snake_case", "lower snake_case words, 2-64 chars"
        TAG_SLUG = "tag_slug", "lower-case slug [a-z0-9][a-z0-9_:-]*, up to 32 chars"

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    taxonomy = models.ForeignKey(Taxonomy, on_delete=models.CASCADE, related_name="field_rules")
    field = models.CharField(max_length=16, choices=Field.choices)
    presence = models.CharField(max_length=16, choices=Presence.choices, default=Presence.OPTIONAL)
    enforcement = models.CharField(max_length=8, choices=Enforcement.choices, default=Enforcement.FLAG)
    convention = models.CharField(max_length=16, choices=Convention.choices, blank=True, default="")
    description = models.TextField(blank=True)

    class Meta:
        ordering = ["organization", "field"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "field"], name="fieldrule_unique_field_per_org"),
        ]

    def __str__(self) -> str:
        return f"{self.field}: {self.presence}, {self.enforcement}"


class AllowedValue(models.Model):
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    rule = models.ForeignKey(FieldRule, on_delete=models.CASCADE, related_name="allowed_values")
    value = models.CharField(max_length=64)
    description = models.CharField(max_length=200, blank=True)
    aliases = ArrayField(models.CharField(max_length=64), default=list, blank=True,
                         help_text="Other spellings rewritten to this value, comma-separated (prod, prd).")

    class Meta:
        ordering = ["organization", "rule", "value"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "rule", "value"], name="allowedvalue_unique_per_rule"),
        ]

    def __str__(self) -> str:
        return self.value


class MetadataKey(models.Model):
    class Type(models.TextChoices):
        STRING = "string"
        INTEGER = "integer"
        NUMBER = "number"
        BOOLEAN = "boolean"
        OBJECT = "object"
        ARRAY = "array"

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    taxonomy = models.ForeignKey(Taxonomy, on_delete=models.CASCADE, related_name="metadata_keys")
    key = models.CharField(max_length=64)
    type = models.CharField(max_length=8, choices=Type.choices, default=Type.STRING)
    description = models.CharField(max_length=200, blank=True)
    aliases = ArrayField(models.CharField(max_length=64), default=list, blank=True,
                         help_text="Other spellings rewritten to this key, comma-separated (latency_ms, latency).")
    minimum = models.BigIntegerField(null=True, blank=True)
    choices = ArrayField(models.CharField(max_length=64), default=list, blank=True,
                         help_text="If set, the only values allowed, comma-separated.")

    class Meta:
        ordering = ["organization", "key"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "key"], name="metadatakey_unique_key_per_org"),
            models.CheckConstraint(condition=Q(minimum__isnull=True) | Q(type__in=["integer", "number"]),
                                   name="metadatakey_minimum_only_for_numbers"),
        ]

    def __str__(self) -> str:
        return self.key
