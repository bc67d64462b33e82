"""Writes for the taxonomy (events themselves are written by events/ingest.py)."""
import logging

from django.db import transaction
from django.db.models import F

from events.models import AllowedValue, FieldRule, MetadataKey, Taxonomy
from events.taxonomy import default_taxonomy
from organizations.models import Organization

logger = logging.getLogger(__name__)


@transaction.atomic
def taxonomy_install(*, organization: Organization, spec: dict) -> Taxonomy:
    """Replaces the organization's taxonomy rows with `spec` (the JSON form)."""
    taxonomy, _ = Taxonomy.objects.update_or_create(
        organization=organization,
        defaults={"metadata_enforcement": spec["metadata"]["enforcement"],
                  "unknown_metadata_keys": spec["metadata"]["unknown_keys"]},
    )
    FieldRule.objects.filter(organization=organization).delete()
    MetadataKey.objects.filter(organization=organization).delete()
    for field, rule in spec["fields"].items():
        field_rule = FieldRule.objects.create(
            organization=organization, taxonomy=taxonomy, field=field, presence=rule["presence"],
            enforcement=rule["enforcement"], convention=rule.get("convention") or "",
        )
        AllowedValue.objects.bulk_create(
            AllowedValue(organization=organization, rule=field_rule, value=value["value"],
                         description=value.get("description", ""), aliases=value.get("aliases", []))
            for value in rule.get("values", [])
        )
    MetadataKey.objects.bulk_create(
        MetadataKey(organization=organization, taxonomy=taxonomy, key=key["key"], type=key["type"],
                    description=key.get("description", ""), aliases=key.get("aliases", []),
                    minimum=key.get("minimum"), choices=key.get("choices") or [])
        for key in spec["metadata"]["keys"]
    )
    taxonomy_touch(organization=organization)
    return taxonomy


def taxonomy_install_default(*, organization: Organization) -> Taxonomy:
    return taxonomy_install(organization=organization, spec=default_taxonomy())


def taxonomy_touch(*, organization: Organization) -> None:
    """Marks the taxonomy changed: every process recompiles on its next request."""
    Organization.objects.filter(pk=organization.pk).update(taxonomy_version=F("taxonomy_version") + 1)
    logger.info("taxonomy.changed", extra={"organization_id": organization.pk})
