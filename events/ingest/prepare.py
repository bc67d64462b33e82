"""One event from raw JSON to a row ready for COPY: validated, normalized, digested."""
import hashlib
import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from events.ingest.copytext import NULL, copy_decimal, copy_int, copy_optional_text, copy_text, copy_text_array
from events.ingest.fields import (EventProblem, amount_field, check_json_value, invalid, int_or_none, json_value_storable, str_or_none,
                                  string_list_field, surrogate_field, text_field, timestamp_field, type_name,
                                  unknown_fields_message)
from events.ingest.limits import (EXACT, EVENT_FIELDS, MAX_EVENT_BYTES, MAX_METADATA_BYTES, json_encoder,
                                  sizing_encoder, sorted_json_encoder)
from events.ingest.outcome import Outcome, error_entry
from events.money.conversion import (UNCONVERTED_FLAG, ConversionOverflow, RateTable, no_rate_message,
                                     rate_table_compiled, reporting_amounts)
from events.money.pricing import PriceBook, UsageProblem, cost_in_currency, price_book_compiled, usage_from_metadata
from events.selectors import taxonomy_compiled
from organizations.currencies import CURRENCY_CODES
from organizations.models import ApiKey, Organization


@dataclass
class Context:
    organization: Organization
    api_key: ApiKey
    projects_by_slug: dict
    now: datetime
    # Column texts shared by every row of the batch, formatted once.
    organization_text: str = ""
    # Compiled on first need: a batch in the reporting currency with costs sent needs neither.
    _rates: RateTable | None = None
    _prices: PriceBook | None = None

    def __post_init__(self):
        self.organization_text = str(self.organization.pk)

    @property
    def rates(self) -> RateTable:
        if self._rates is None:
            self._rates = rate_table_compiled(organization=self.organization)
        return self._rates

    @property
    def prices(self) -> PriceBook:
        if self._prices is None:
            self._prices = price_book_compiled(organization=self.organization)
        return self._prices


def prepare_event(raw, index: int, context: Context, taxonomy) -> tuple:
    """Validates one raw event; returns (COPY line, project_id, client_id, digest, timestamp, warnings).

    Raises EventProblem for an event that must be rejected.
    """
    if not isinstance(raw, dict):
        raise EventProblem("invalid", {"event": [f"must be a JSON object, not {type_name(raw)}"]})
    try:
        size = len(sizing_encoder.encode(raw))
    except UnicodeEncodeError:
        # JSON's \ud800 escapes can smuggle in unpaired surrogates, which are not text:
        # PostgreSQL cannot store them, and no message may echo them. Encoding the
        # event is needed for its size anyway, so catching them here costs nothing.
        raise EventProblem("invalid", {surrogate_field(raw): [
            "contains an unpaired UTF-16 surrogate (a \\ud800-\\udfff escape), which is not text"]}) from None
    unknown = [name for name in raw if name not in EVENT_FIELDS]
    if unknown:
        raise EventProblem("invalid", unknown_fields_message(unknown))
    if size > MAX_EVENT_BYTES:
        raise EventProblem("too_large", {"event": [f"is {size} bytes serialized; at most 32 KiB"]})
    get = raw.get
    client_id = text_field("id", get("id"), 128)
    organization = context.organization
    project_slug = get("project")
    if context.api_key.project_id is not None:
        project = context.api_key.project
        if project_slug is not None and project_slug != project.slug:
            raise invalid("project", f"this key sends events for '{project.slug}' only, not '{project_slug}'")
    elif project_slug is None:
        raise invalid("project", "is required with an organization key: name the project's slug")
    else:
        if not isinstance(project_slug, str):
            raise invalid("project", f"must be a project slug string, not {type_name(project_slug)}")
        project = context.projects_by_slug.get(project_slug)
        if project is None:
            known = ", ".join(sorted(context.projects_by_slug)[:10])
            raise invalid("project", f"'{project_slug[:64]}' is not a project of this organization (known: {known})")
    timestamp = timestamp_field(get("timestamp"), context.now)
    sent_cost = amount_field("cost", get("cost"), nullable=True)
    charge = amount_field("charge", get("charge"), nullable=True)
    currency = get("currency")
    if currency is None:  # absent or null, like every optional field
        currency = organization.reporting_currency
    if not isinstance(currency, str) or currency not in CURRENCY_CODES:
        raise invalid("currency", f"'{str(currency)[:12]}' is not an ISO 4217 currency code (USD, EUR, ...)")
    # Spelled out rather than looped: this runs for every event.
    checked = {
        "environment": text_field("environment", get("environment"), 64),
        "provider": text_field("provider", get("provider"), 64),
        "application": text_field("application", get("application"), 64),
        "action": text_field("action", get("action"), 64),
        "userId": text_field("userId", get("userId"), 128),
        "tags": string_list_field("tags", get("tags"), 64),
        "traces": string_list_field("traces", get("traces"), 128),
        "charge": charge,
    }
    metadata = get("metadata")
    metadata_json = b"{}"
    if metadata is None:
        metadata = {}
    elif not isinstance(metadata, dict):
        raise invalid("metadata", f"must be an object, not {type_name(metadata)}")
    elif metadata:
        if not json_value_storable(metadata, 1):
            check_json_value(metadata, 1, "metadata")  # the slow walk that names the offending path
            raise invalid("metadata", "holds a value PostgreSQL cannot store as JSON")
        metadata_json = json_encoder.encode(metadata)
        if len(metadata_json) > MAX_METADATA_BYTES:
            raise invalid("metadata", f"is {len(metadata_json)} bytes serialized; at most 16 KiB")

    checked["metadata"] = metadata
    verdict = taxonomy.check(checked)
    if verdict.errors:
        raise EventProblem("taxonomy_violation", verdict.errors)
    if verdict.values:
        checked.update(verdict.values)
        if "metadata" in verdict.values:
            metadata = checked["metadata"]
            metadata_json = json_encoder.encode(metadata)
    warnings, flags = verdict.warnings, verdict.flags
    if sent_cost is None:
        cost, price_ref = computed_cost(metadata, checked["provider"], currency, timestamp, context)
    else:
        cost, price_ref = sent_cost, None
    if currency == organization.reporting_currency:  # the common case, without a lookup
        cost_reporting, charge_reporting, rate_text = str(cost), copy_decimal(charge), NULL
    else:
        try:
            reporting = reporting_amounts(cost=cost, charge=charge, currency=currency, table=context.rates,
                                          when=timestamp)
        except ConversionOverflow:
            raise invalid("cost", f"is too large once converted to {organization.reporting_currency}") from None
        cost_reporting, charge_reporting = copy_decimal(reporting.cost), copy_decimal(reporting.charge)
        rate_text = copy_decimal(reporting.rate)
        if not reporting.converted:
            # Stored and counted as unconverted; converted when a rate is added (events.money.services).
            warnings = {**warnings, "currency": [no_rate_message(currency, organization.reporting_currency,
                                                                 timestamp)]}
            flags = (*flags, UNCONVERTED_FLAG)
    if client_id is None:
        client_id = f"evt_{uuid.uuid4().hex}"
        digest = None
    else:
        # What was sent, not what was computed: a retry after a price change is still a duplicate.
        digest = content_digest(raw, sent_cost, charge)
    line = "\t".join((
        context.organization_text, str(project.pk), copy_text(client_id), timestamp.isoformat(),
        str(cost), copy_decimal(charge), currency, cost_reporting, charge_reporting,
        copy_optional_text(checked["environment"]), copy_optional_text(checked["provider"]),
        copy_optional_text(checked["application"]), copy_optional_text(checked["action"]),
        copy_optional_text(checked["userId"]), copy_text_array(checked["tags"]), copy_text_array(checked["traces"]),
        copy_text(metadata_json.decode()),
        copy_optional_text(str_or_none(metadata.get("model"), 200)), copy_int(int_or_none(metadata.get("latencyMs"))),
        copy_int(int_or_none(metadata.get("inputTokens"))), copy_int(int_or_none(metadata.get("outputTokens"))),
        copy_optional_text(str_or_none(metadata.get("status"), 16)),
        copy_optional_text(str_or_none(metadata.get("errorType"), 200)), copy_text_array(flags),
        rate_text, "client" if price_ref is None else "computed", copy_optional_text(price_ref),
    )) + "\n"
    return line, project.pk, client_id, digest, timestamp, warnings


def computed_cost(metadata: dict, provider: str | None, currency: str, timestamp: datetime,
                  context: Context) -> tuple[Decimal, str]:
    """The cost of an event sent without one, from its model and tokens; (cost, price reference)."""
    try:
        usage = usage_from_metadata(metadata)
    except UsageProblem as problem:
        raise invalid(f"metadata.{problem.key}", problem.message) from None
    if usage is None:
        raise invalid("cost", "is required: what the call cost you, a decimal >= 0 (or send metadata.model with "
                              "inputTokens and outputTokens to have it computed from the model's price)")
    model, counts = usage
    price = context.prices.price(provider=provider, model=model, usage=counts, when=timestamp)
    if price is None:
        named = f"'{model[:100]}'" + (f" of provider '{provider}'" if provider else "")
        raise invalid("cost", f"is missing and no price is known for model {named}: send cost, or add the "
                              "model's price in the admin (Organizations > Model prices)")
    try:
        amount = cost_in_currency(price=price, currency=currency, table=context.rates, when=timestamp)
    except UsageProblem as problem:
        raise invalid(problem.key, problem.message) from None
    return amount, price.ref


def content_digest(raw: dict, cost: Decimal | None, charge: Decimal | None) -> bytes:
    """A digest of the event as sent: 142, "142" and 142.0 are the same amount, a field
    sent as null is the same as one left out, and so is `project`, which the key holds."""
    canonical = dict(raw)
    for name, value in raw.items():  # `is None`, not `None in values()`: that calls every __eq__
        if value is None:
            del canonical[name]
    canonical.pop("project", None)
    # The exact context: amounts have up to 38 digits, the default context keeps 28.
    if cost is not None:
        canonical["cost"] = str(cost.normalize(EXACT))
    if charge is not None:
        canonical["charge"] = str(charge.normalize(EXACT))
    return hashlib.blake2b(sorted_json_encoder.encode(canonical), digest_size=16).digest()


@dataclass
class Prepared:
    index: int
    line: str
    project_id: int
    client_id: str
    digest: bytes | None
    timestamp: datetime
    warnings: dict


@dataclass
class Repeat:
    """A later occurrence of an id already seen in the same batch."""

    index: int
    project_id: int
    client_id: str
    digest: bytes


def prepare_batch(events: list, context: Context, outcome: Outcome) -> tuple[list[Prepared], list[Repeat]]:
    """Validates every event; rejected ones go to `outcome`, in-batch repeats to the second list."""
    taxonomy = taxonomy_compiled(organization=context.organization)
    prepared: list[Prepared] = []
    repeats: list[Repeat] = []
    seen: set[tuple[int, str]] = set()
    for index, raw in enumerate(events):
        try:
            line, project_id, client_id, digest, timestamp, warnings = prepare_event(raw, index, context, taxonomy)
        except EventProblem as problem:
            outcome.rejected += 1
            outcome.errors.append(error_entry(index, raw, problem.code, problem.fields, problem.message()))
            continue
        if digest is not None:
            if (project_id, client_id) in seen:
                # Judged once the batch knows what its first occurrence became (settle_repeats).
                repeats.append(Repeat(index, project_id, client_id, digest))
                continue
            seen.add((project_id, client_id))
        prepared.append(Prepared(index, line, project_id, client_id, digest, timestamp, warnings))
    return prepared, repeats


