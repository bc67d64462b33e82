"""Reads: the organization's compiled taxonomy and the event list."""
import threading

from django.db.models import QuerySet

from events.models import AllowedValue, Event, FieldRule, MetadataKey, Taxonomy
from events.taxonomy import CompiledTaxonomy, compile_taxonomy, default_taxonomy
from koala.exceptions import KoalaError
from organizations.models import ApiKey, Organization

# {organization id: (taxonomy version, compiled)}; the version arrives with the
# API key lookup, so a process notices an admin's change on its next request.
_compiled_cache: dict[int, tuple[int, CompiledTaxonomy]] = {}
_compile_lock = threading.Lock()


def taxonomy_spec(*, organization: Organization) -> dict:
    """The organization's taxonomy in its JSON form (what GET /api/v1/taxonomy serves)."""
    taxonomy = Taxonomy.objects.filter(organization=organization).first()
    if taxonomy is None:
        return default_taxonomy()
    values_by_rule: dict[int, list] = {}
    for value in AllowedValue.objects.filter(organization=organization).order_by("rule_id", "value"):
        values_by_rule.setdefault(value.rule_id, []).append(
            {"value": value.value, "description": value.description, "aliases": list(value.aliases)})
    fields = {
        rule.field: {
            "presence": rule.presence, "enforcement": rule.enforcement,
            "values": values_by_rule.get(rule.pk, []), "convention": rule.convention or None,
        }
        for rule in FieldRule.objects.filter(organization=organization)
    }
    # A field without a row is optional and unchecked.
    for field in FieldRule.Field.values:
        fields.setdefault(field, {"presence": "optional", "enforcement": "flag", "values": [], "convention": None})
    keys = [
        {"key": key.key, "type": key.type, "description": key.description, "aliases": list(key.aliases),
         "minimum": key.minimum, "choices": list(key.choices) or None}
        for key in MetadataKey.objects.filter(organization=organization).order_by("key")
    ]
    return {
        "fields": fields,
        "metadata": {"keys": keys, "enforcement": taxonomy.metadata_enforcement,
                     "unknown_keys": taxonomy.unknown_metadata_keys},
    }


def taxonomy_compiled(*, organization: Organization) -> CompiledTaxonomy:
    """The compiled rules for `organization`, rebuilt only when its version changed."""
    cached = _compiled_cache.get(organization.pk)
    if cached is not None and cached[0] == organization.taxonomy_version:
        return cached[1]
    with _compile_lock:
        try:
            compiled = compile_taxonomy(taxonomy_spec(organization=organization))
        except ValueError as error:
            # The admin refuses invalid rules; this guards against rows edited by hand.
            raise KoalaError("unavailable", f"The organization's taxonomy is invalid ({error}); an organization "
                             "admin must correct it in the admin.", status=503, headers={"Retry-After": "60"}) from None
        _compiled_cache[organization.pk] = (organization.taxonomy_version, compiled)
    return compiled


def event_list(*, organization: Organization, api_key: ApiKey | None = None) -> QuerySet[Event]:
    """Events of `organization` (a project key: of its project), newest first."""
    events = Event.objects.filter(organization=organization)
    if api_key is not None and api_key.project_id is not None:
        events = events.filter(project_id=api_key.project_id)
    return events.select_related("project", "organization").order_by("-timestamp", "-seq")
