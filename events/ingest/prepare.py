"""One event from raw JSON to a row ready for COPY: validated, normalized, digested."""
import hashlib
import re
import uuid
from dataclasses import dataclass
from functools import cached_property
from datetime import datetime
from decimal import Decimal

from events.ingest.copytext import NULL, array_literal, copy_decimal, copy_optional_text, copy_text
from events.ingest.fields import (EventProblem, amount_field, check_json_value, exact_amount_text, invalid,
                                  json_value_storable, string_list_field, surrogate_field, text_field,
                                  timestamp_field, type_name, unknown_fields_message)
from events.ingest.limits import (EXACT, EVENT_FIELDS, MAX_BIGINT, MAX_EVENT_BYTES, MAX_METADATA_BYTES,
                                  MAX_METADATA_DEPTH, MAX_METADATA_EXPONENT, json_encoder, sizing_encoder,
                                  sorted_json_encoder)
from events.ingest.outcome import Outcome, error_entry
from events.money.conversion import (UNCONVERTED_FLAG, ConversionOverflow, RateTable, no_rate_message,
                                     rate_table_compiled, reporting_amounts)
from events.money.pricing import PriceBook, UsageProblem, cost_in_currency, price_book_compiled, usage_from_metadata
from events.selectors import taxonomy_compiled
from organizations.currencies import CURRENCY_CODES
from organizations.models import ApiKey, Organization


# A timestamp sent like this (JavaScript's toISOString(), Python's isoformat() in UTC) goes to
# PostgreSQL as sent: it reads the same instant from it that datetime.fromisoformat() did
# (which has checked the date), and formatting a datetime costs more than this match.
_PLAIN_UTC_STAMP = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,6})?(?:Z|\+00:00)")
# Metadata encoded in at most this many bytes cannot hide a number fields.check_json_value()
# refuses without an exponent showing ("1E+1001"): written out without one, such a number
# has more digits than this (see metadata_encoded). Tied to the limit, so they move together.
_PLAIN_METADATA_BYTES = MAX_METADATA_EXPONENT


@dataclass
class Context:
    organization: Organization
    api_key: ApiKey
    projects_by_slug: dict
    now: datetime
    # Column texts shared by every row of the batch, formatted once.
    organization_text: str = ""
    # api_key.project_id, read once: a foreign key's attribute is a Python descriptor call.
    project_key: bool = False
    # Compiled on first need: a batch in the reporting currency with costs sent needs neither.
    _rates: RateTable | None = None
    _prices: PriceBook | None = None

    def __post_init__(self):
        self.organization_text = str(self.organization.pk)
        self.project_key = self.api_key.project_id is not None

    @cached_property
    def key_project(self) -> tuple:
        """(project, pk, pk as text) of a project key: Django's related descriptor and `pk`
        property are Python calls, too dear to run for every event."""
        project = self.api_key.project
        return project, project.pk, str(project.pk)

    @cached_property
    def projects(self) -> dict:
        """{slug: (project, pk, pk as text)} for an organization key."""
        return {slug: (project, project.pk, str(project.pk)) for slug, project in self.projects_by_slug.items()}

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


def prepare_event(raw, index: int, context: Context, taxonomy) -> "Prepared":
    """Validates one raw event; returns it as a row ready for COPY, with what the batch needs of it.

    Raises EventProblem for an event that must be rejected. The checks run in the order
    the contract's messages depend on (the first problem found is the one reported);
    the common case is spelled out inline, and anything unusual goes through the
    helpers of events.ingest.fields, which word the message.
    """
    if not isinstance(raw, dict):
        raise EventProblem("invalid", {"event": [f"must be a JSON object, not {type_name(raw)}"]})
    try:
        encoded = sizing_encoder.encode(raw)
    except UnicodeEncodeError:
        # JSON's \ud800 escapes can smuggle in unpaired surrogates, which are not text:
        # PostgreSQL cannot store them, and no message may echo them. Encoding the
        # event is needed for its size anyway, so catching them here costs nothing.
        raise EventProblem("invalid", {surrogate_field(raw): [
            "contains an unpaired UTF-16 surrogate (a \\ud800-\\udfff escape), which is not text"]}) from None
    if not raw.keys() <= EVENT_FIELDS:
        raise EventProblem("invalid", unknown_fields_message([name for name in raw if name not in EVENT_FIELDS]))
    if len(encoded) > MAX_EVENT_BYTES:
        raise EventProblem("too_large", {"event": [f"is {len(encoded)} bytes serialized; at most 32 KiB"]})
    get = raw.get
    client_id = get("id")
    if client_id is not None and not (type(client_id) is str and 0 < len(client_id) <= 128
                                      and "\x00" not in client_id):
        text_field("id", client_id, 128)  # raises, naming the problem
    organization = context.organization
    project_slug = get("project")
    if context.project_key:
        project, project_id, project_text = context.key_project
        if project_slug is not None and project_slug != project.slug:
            if not isinstance(project_slug, str):  # never echo a number's or object's repr
                raise invalid("project", f"must be a project slug string, not {type_name(project_slug)}")
            raise invalid("project", f"this key sends events for '{project.slug}' only, not '{project_slug[:64]}'")
    elif project_slug is None:
        raise invalid("project", "is required with an organization key: name the project's slug")
    else:
        if not isinstance(project_slug, str):
            raise invalid("project", f"must be a project slug string, not {type_name(project_slug)}")
        found = context.projects.get(project_slug)
        if found is None:
            known = ", ".join(sorted(context.projects_by_slug)[:10])
            raise invalid("project", f"'{project_slug[:64]}' is not a project of this organization (known: {known})")
        project, project_id, project_text = found
    client_stamp = get("timestamp")
    timestamp = timestamp_field(client_stamp, context.now)
    sent_cost = get("cost")
    cost_text = exact_amount_text(sent_cost)
    if cost_text is None:
        sent_cost = amount_field("cost", sent_cost, nullable=True)
    charge = get("charge")
    charge_text = exact_amount_text(charge)
    if charge_text is None:
        charge = amount_field("charge", charge, nullable=True)
        charge_text = NULL if charge is None else str(charge)
    currency = get("currency")
    if currency is None:  # absent or null, like every optional field
        currency = organization.reporting_currency
    if not isinstance(currency, str) or currency not in CURRENCY_CODES:
        raise invalid("currency", f"'{str(currency)[:12]}' is not an ISO 4217 currency code (USD, EUR, ...)")
    # Spelled out rather than looped: this runs for every event. A string that passes the
    # inline test is what text_field() would return; anything else goes there for its message.
    environment = get("environment")
    if environment is not None and not (type(environment) is str and 0 < len(environment) <= 64
                                        and "\x00" not in environment):
        text_field("environment", environment, 64)
    provider = get("provider")
    if provider is not None and not (type(provider) is str and 0 < len(provider) <= 64 and "\x00" not in provider):
        text_field("provider", provider, 64)
    application = get("application")
    if application is not None and not (type(application) is str and 0 < len(application) <= 64
                                        and "\x00" not in application):
        text_field("application", application, 64)
    action = get("action")
    if action is not None and not (type(action) is str and 0 < len(action) <= 64 and "\x00" not in action):
        text_field("action", action, 64)
    user_id = get("userId")
    if user_id is not None and not (type(user_id) is str and 0 < len(user_id) <= 128 and "\x00" not in user_id):
        text_field("userId", user_id, 128)
    tags = string_list_field("tags", get("tags"), 64)
    traces = string_list_field("traces", get("traces"), 128)
    metadata = get("metadata")
    metadata_json = b"{}"
    if metadata is None:
        metadata = {}
    elif not isinstance(metadata, dict):
        raise invalid("metadata", f"must be an object, not {type_name(metadata)}")
    elif metadata:
        metadata_json = metadata_encoded(metadata)
        if len(metadata_json) > MAX_METADATA_BYTES:
            raise invalid("metadata", f"is {len(metadata_json)} bytes serialized; at most 16 KiB")

    # The taxonomy reads the event as sent: every field it looks at is, once checked above,
    # what it would find in the checked values (a missing list and an empty one, a null
    # metadata and an empty one, are the same to it; charge is only tested for None).
    verdict = taxonomy.check(raw)
    if verdict.errors:
        raise EventProblem("taxonomy_violation", verdict.errors)
    values = verdict.values
    if values:
        environment = values.get("environment", environment)
        provider = values.get("provider", provider)
        application = values.get("application", application)
        action = values.get("action", action)
        user_id = values.get("userId", user_id)
        tags = values.get("tags", tags)
        traces = values.get("traces", traces)
        if "metadata" in values:
            metadata = values["metadata"]
            metadata_json = json_encoder.encode(metadata)
    warnings, flags = verdict.warnings, verdict.flags
    if sent_cost is None:
        cost, price_ref = computed_cost(metadata, provider, currency, timestamp, context)
        cost_text = str(cost)
    else:
        cost, price_ref = sent_cost, None
        if cost_text is None:
            cost_text = str(cost)
    cost_source = "client" if price_ref is None else "computed"
    if currency == organization.reporting_currency:  # the common case, without a lookup
        cost_reporting, charge_reporting, rate_text = cost_text, charge_text, NULL
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
        digest = content_digest(raw, sent_cost, charge, cost_text, charge_text, encoded)

    # The row. Numbers, timestamps, currency codes, rule codes and the cost source never need
    # COPY's escapes; the texts a client sent rarely do, so they are tested together once.
    model = metadata.get("model")
    model = model[:200] if type(model) is str else None
    status = metadata.get("status")
    status = status[:16] if type(status) is str else None
    error_type = metadata.get("errorType")
    error_type = error_type[:200] if type(error_type) is str else None
    tags_text = array_literal(tags) if tags else "{}"
    traces_text = array_literal(traces) if traces else "{}"
    metadata_text = metadata_json.decode()
    flags_text = array_literal(flags) if flags else "{}"
    probe = (f"{client_id}{environment}{provider}{application}{action}{user_id}{tags_text}{traces_text}"
             f"{metadata_text}{model}{status}{error_type}{flags_text}{price_ref}")
    if "\\" in probe or "\t" in probe or "\n" in probe or "\r" in probe:
        client_id_text, tags_text, traces_text, metadata_text, flags_text = (
            copy_text(client_id), copy_text(tags_text), copy_text(traces_text), copy_text(metadata_text),
            copy_text(flags_text))
        environment, provider, application, action, user_id, model, status, error_type, price_ref = (
            copy_optional_text(environment), copy_optional_text(provider), copy_optional_text(application),
            copy_optional_text(action), copy_optional_text(user_id), copy_optional_text(model),
            copy_optional_text(status), copy_optional_text(error_type), copy_optional_text(price_ref))
    else:
        client_id_text = client_id
        environment, provider, application, action, user_id, model, status, error_type, price_ref = (
            NULL if environment is None else environment, NULL if provider is None else provider,
            NULL if application is None else application, NULL if action is None else action,
            NULL if user_id is None else user_id, NULL if model is None else model,
            NULL if status is None else status, NULL if error_type is None else error_type,
            NULL if price_ref is None else price_ref)
    latency = metadata.get("latencyMs")
    input_tokens = metadata.get("inputTokens")
    output_tokens = metadata.get("outputTokens")
    stamp = client_stamp if type(client_stamp) is str and _PLAIN_UTC_STAMP.fullmatch(client_stamp) else \
        timestamp.isoformat()
    line = "\t".join((
        context.organization_text, project_text, client_id_text, stamp, cost_text, charge_text, currency,
        cost_reporting, charge_reporting, environment, provider, application, action, user_id, tags_text, traces_text,
        metadata_text, model,
        str(latency) if type(latency) is int and -MAX_BIGINT <= latency <= MAX_BIGINT else NULL,
        str(input_tokens) if type(input_tokens) is int and -MAX_BIGINT <= input_tokens <= MAX_BIGINT else NULL,
        str(output_tokens) if type(output_tokens) is int and -MAX_BIGINT <= output_tokens <= MAX_BIGINT else NULL,
        status, error_type, flags_text, rate_text, cost_source, price_ref,
    )) + "\n"
    return Prepared(index, line, project_id, client_id, digest, timestamp, stamp, warnings)


def metadata_encoded(metadata: dict) -> bytes:
    """`metadata` as stored (JSON), once it is known PostgreSQL can store it; raises EventProblem.

    What jsonb cannot hold (NUL characters, NaN, numbers past 1e1000, more than five
    levels) shows in the encoding of almost any metadata a client sends: no "\\u0000"
    escape, no exponent, a few containers, a short text. Only metadata that shows
    something of the kind, or that is long, is walked value by value.
    """
    try:
        encoded = json_encoder.encode(metadata)
    except TypeError:  # NaN or Infinity (NonFinite), which only the walk words
        encoded = None
    if (encoded is None or len(encoded) > _PLAIN_METADATA_BYTES or b"\\u0000" in encoded or b"E" in encoded
            or encoded.count(b"{") + encoded.count(b"[") > MAX_METADATA_DEPTH):
        if not json_value_storable(metadata, 1):
            check_json_value(metadata, 1, "metadata")  # the slow walk that names the offending path
            raise invalid("metadata", "holds a value PostgreSQL cannot store as JSON")
        if encoded is None:
            encoded = json_encoder.encode(metadata)
    return encoded


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


def content_digest(raw: dict, cost: Decimal | None, charge: Decimal | None, cost_text: str, charge_text: str,
                   encoded: bytes) -> bytes:
    """A digest of the event as sent: 142, "142" and 142.0 are the same amount, a field
    sent as null is the same as one left out, and so is `project`, which the key holds.

    `cost_text` and `charge_text` are str() of the amounts, `encoded` the event as
    sizing_encoder wrote it: without ":null" in it, no field is null.
    """
    if b":null" in encoded:
        canonical = {name: value for name, value in raw.items() if value is not None}
    else:
        canonical = raw.copy()  # the event itself is left as sent
    canonical.pop("project", None)
    if cost is not None:
        canonical["cost"] = canonical_amount(cost, cost_text)
    if charge is not None:
        canonical["charge"] = canonical_amount(charge, charge_text)
    return hashlib.blake2b(sorted_json_encoder.encode(canonical), digest_size=16).digest()


def canonical_amount(amount: Decimal, text: str) -> str:
    """str(amount.normalize()): one spelling per amount ("142", "142.0" -> "142")."""
    # Digits after a point, the last not a zero, no exponent: normalize() would change
    # nothing that str() shows (amounts have at most 38 digits, so it never rounds).
    if text[-1] != "0" and "." in text and "E" not in text:
        return text
    # The exact context: amounts have up to 38 digits, the default context keeps 28.
    return str(amount.normalize(EXACT))


@dataclass(slots=True)
class Prepared:
    index: int
    line: str
    project_id: int
    client_id: str
    digest: bytes | None
    timestamp: datetime
    # The timestamp as the row has it (timestamptz text): the key claim sends it too.
    stamp: str
    warnings: dict


@dataclass(slots=True)
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
            item = prepare_event(raw, index, context, taxonomy)
        except EventProblem as problem:
            outcome.rejected += 1
            outcome.errors.append(error_entry(index, raw, problem.code, problem.fields, problem.message()))
            continue
        if item.digest is not None:
            key = (item.project_id, item.client_id)
            if key in seen:
                # Judged once the batch knows what its first occurrence became (settle_repeats).
                repeats.append(Repeat(index, item.project_id, item.client_id, item.digest))
                continue
            seen.add(key)
        prepared.append(item)
    return prepared, repeats
