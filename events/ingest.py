"""The ingestion fast path: parse, validate, enforce the taxonomy, write once.

A batch costs a fixed number of queries whatever its size: one INSERT ... ON
CONFLICT into the idempotency table (which decides new / duplicate), one SELECT
for the ids that were already there (duplicate vs id_conflict), and one COPY of
the new rows into the partitioned event table, all in one transaction. Events are
checked in plain Python against rules compiled once per organization.
"""
import hashlib
import json
import logging
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_DOWN, Context, Decimal, InvalidOperation

import msgspec
import psycopg.errors
from django.db import OperationalError, connection, transaction

from events.partitions import ensure_partitions, forget_known_partitions
from events.selectors import taxonomy_compiled
from events.taxonomy import closest
from organizations.currencies import CURRENCY_CODES
from organizations.models import ApiKey, Organization

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 5 * 1024 * 1024
MAX_BATCH = 1000
MAX_EVENT_BYTES = 32 * 1024
MAX_METADATA_BYTES = 16 * 1024
MAX_METADATA_DEPTH = 5
MAX_LIST_ITEMS = 20
FUTURE_TOLERANCE = timedelta(hours=24)
# numeric(38, 18): 20 digits before the point, 18 after.
MAX_INTEGER_DIGITS = 20
MAX_FRACTION_DIGITS = 18
MAX_BIGINT = 2**63 - 1
# Decimal arithmetic rounds to the context's precision (28 digits by default), which
# would silently change a 38-digit amount; this context is wide enough to be exact.
_EXACT = Context(prec=MAX_INTEGER_DIGITS + MAX_FRACTION_DIGITS + 2)
_SCALE = Decimal(1).scaleb(-MAX_FRACTION_DIGITS)
# Metadata numbers are stored in jsonb, whose numeric overflows past ~1e131072, and
# would be rendered digit by digit on the way out: 1e100000 is 9 bytes in, 100 KB out.
MAX_METADATA_EXPONENT = 1000
# Python refuses to convert integers longer than this from text (CVE-2020-10735).
MAX_INT_DIGITS = 4300

EVENT_FIELDS = frozenset({
    "id", "timestamp", "project", "cost", "charge", "currency", "environment", "provider", "application",
    "action", "userId", "tags", "traces", "metadata",
})
STRING_LIMITS = {"environment": 64, "provider": 64, "application": 64, "action": 64, "userId": 128}
COPY_COLUMNS = (
    "organization_id", "project_id", "client_id", "timestamp", "received_at", "cost", "charge", "currency",
    "cost_reporting", "charge_reporting", "environment", "provider", "application", "action", "user_id", "tags",
    "traces", "metadata", "model", "latency_ms", "input_tokens", "output_tokens", "status", "error_type", "flags",
)

_decoder = msgspec.json.Decoder(float_hook=Decimal)
# Decimals go out as JSON numbers, so stored metadata keeps the types the client sent.
_encoder = msgspec.json.Encoder(decimal_format="number")
_sorted_encoder = msgspec.json.Encoder(decimal_format="number", order="sorted")


def _nonfinite_as_text(value):
    if isinstance(value, NonFinite):
        return value.text
    raise NotImplementedError


# Measures an event as sent, NaN and all, before anything else looks at it.
_sizing_encoder = msgspec.json.Encoder(decimal_format="number", enc_hook=_nonfinite_as_text)


class NonFinite:
    """Stands for NaN or Infinity, which JSON cannot carry but some clients send."""

    __slots__ = ("text",)

    def __init__(self, text: str):
        self.text = text


class BodyError(Exception):
    """The whole request is refused; nothing is stored."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def parse_body(raw: bytes) -> tuple[list, bool]:
    """The raw events of a body (one event object or `{"events": [...]}`) and whether it was one.

    JSON numbers become Decimal, never float. NaN and Infinity are accepted by the
    parser and rejected later for their event alone.
    """
    if len(raw) > MAX_BODY_BYTES:
        raise BodyError(413, "payload_too_large", "The body is larger than 5 MiB; send smaller batches.")
    try:
        document = _decoder.decode(raw)
    except msgspec.DecodeError:
        document = _parse_lenient(raw)
    except RecursionError:
        raise BodyError(400, "invalid_json", "The body is nested too deeply to parse.") from None
    if not isinstance(document, dict):
        raise BodyError(400, "invalid_request", "The body must be an event object or {\"events\": [...]}.")
    if "events" not in document:
        return [document], True
    events = document["events"]
    if len(document) > 1:
        extra = sorted(_printable(key) for key in document if key != "events")
        raise BodyError(400, "invalid_request", f"A batch body holds only 'events'; unexpected {', '.join(extra)}.")
    if not isinstance(events, list):
        raise BodyError(400, "invalid_request", "'events' must be a list of event objects.")
    if not events:
        raise BodyError(400, "invalid_request", "'events' is empty: send 1 to 1000 events.")
    if len(events) > MAX_BATCH:
        raise BodyError(400, "invalid_request", f"'events' holds {len(events)} events; send at most 1000 per request.")
    return events, False


def _parse_int(text: str):
    # Python will not convert a longer integer; as a Decimal it still reaches the
    # checks that reject its event alone ("too large") instead of the whole body.
    return int(text) if len(text) <= MAX_INT_DIGITS else Decimal(text)


def _parse_lenient(raw: bytes):
    """The slow path for bodies msgspec refuses: NaN/Infinity literals, huge integers."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BodyError(400, "invalid_json", "The body is not UTF-8 encoded JSON.") from None
    try:
        return json.loads(text, parse_float=Decimal, parse_int=_parse_int, parse_constant=NonFinite)
    except (ValueError, RecursionError) as error:
        raise BodyError(400, "invalid_json", f"The body is not valid JSON: {error}.") from None


def _printable(text: str, limit: int = 64) -> str:
    """`text` cut to `limit` characters, unpaired surrogates escaped, safe to echo in a response."""
    return text[:limit].encode("utf-8", "backslashreplace").decode("utf-8")


@dataclass
class EventProblem(Exception):
    code: str
    fields: dict = field(default_factory=dict)

    def message(self) -> str:
        name, messages = next(iter(self.fields.items()))
        return f"{name}: {messages[0]}"


def _invalid(name: str, message: str) -> EventProblem:
    return EventProblem("invalid", {name: [message]})


def _amount(name: str, value, *, nullable: bool) -> Decimal | None:
    if value is None:
        if nullable:
            return None
        raise _invalid(name, "is required: what the call cost you, a decimal >= 0")
    if isinstance(value, bool) or not isinstance(value, (int, Decimal, str)):
        if isinstance(value, NonFinite):
            raise _invalid(name, f"{value.text} is not an amount")
        raise _invalid(name, f"must be a decimal number or a decimal string, not {type(value).__name__}")
    if isinstance(value, str):
        try:
            value = Decimal(value.strip())
        except InvalidOperation:
            raise _invalid(name, f"'{value[:40]}' is not a decimal amount") from None
    elif isinstance(value, int):
        if abs(value) >= 10**MAX_INTEGER_DIGITS:
            raise _invalid(name, "is too large: at most 20 digits before the decimal point")
        value = Decimal(value)
    if not value.is_finite():
        raise _invalid(name, f"{value} is not an amount")
    if value < 0:
        raise _invalid(name, f"must be >= 0, not {_printable(str(value), 40)}")
    if not value:
        return Decimal(0)  # 0E+100 and -0 are plain zero, not "too large"
    if value.adjusted() >= MAX_INTEGER_DIGITS:
        raise _invalid(name, "is too large: at most 20 digits before the decimal point")
    if value.as_tuple().exponent < -MAX_FRACTION_DIGITS:
        # Trailing zeros beyond the scale are harmless; real digits would be lost.
        # Comparisons are exact, and the value now fits the exact context.
        scaled = value.quantize(_SCALE, rounding=ROUND_DOWN, context=_EXACT)
        if scaled != value:
            raise _invalid(name, "has more than 18 decimal places")
        value = scaled
    return value


def _text(name: str, value, limit: int) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise _invalid(name, f"must be a string, not {_type_name(value)}")
    if not value:
        raise _invalid(name, f"must be 1-{limit} characters, not empty (leave it out instead)")
    if len(value) > limit:
        raise _invalid(name, f"is {len(value)} characters long; at most {limit}")
    if "\x00" in value:
        raise _invalid(name, "contains a NUL character")
    return value


def _string_list(name: str, value, item_limit: int) -> list:
    if value is None:
        return []
    if not isinstance(value, list):
        raise _invalid(name, f"must be a list of strings, not {_type_name(value)}")
    if len(value) > MAX_LIST_ITEMS:
        raise _invalid(name, f"holds {len(value)} items; at most {MAX_LIST_ITEMS}")
    for item in value:
        if not isinstance(item, str):
            raise _invalid(name, f"must hold only strings, not {_type_name(item)}")
        if not item or len(item) > item_limit:
            raise _invalid(name, f"items must be 1-{item_limit} characters ('{item[:40]}' is {len(item)})")
        if "\x00" in item:
            raise _invalid(name, "an item contains a NUL character")
    return value


def _type_name(value) -> str:
    if isinstance(value, NonFinite):
        return value.text
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", int: "a number",
            Decimal: "a number", type(None): "null"}.get(type(value), type(value).__name__)


def _check_json_value(value, depth: int, path: str) -> None:
    """Metadata must be storable as jsonb: finite numbers, no NUL, at most 5 levels."""
    # `depth` counts containers, metadata itself being 1: five levels are allowed.
    if isinstance(value, dict):
        if depth > MAX_METADATA_DEPTH:
            raise _invalid("metadata", f"is nested more than {MAX_METADATA_DEPTH} levels deep (at {path})")
        for key, item in value.items():
            if "\x00" in key:
                raise _invalid("metadata", "a key contains a NUL character")
            # No surrogate can reach here: prepare_event() rejects them while sizing the event.
            _check_json_value(item, depth + 1, f"{path}.{key}")
    elif isinstance(value, list):
        if depth > MAX_METADATA_DEPTH:
            raise _invalid("metadata", f"is nested more than {MAX_METADATA_DEPTH} levels deep (at {path})")
        for item in value:
            _check_json_value(item, depth + 1, path + "[]")
    elif isinstance(value, str):
        if "\x00" in value:
            raise _invalid("metadata", f"{path} contains a NUL character")
    elif isinstance(value, NonFinite):
        raise _invalid("metadata", f"{path} is {value.text}, which JSON cannot store")
    elif isinstance(value, Decimal):
        if not value.is_finite():
            raise _invalid("metadata", f"{path} is not a finite number")
        if value and not -MAX_METADATA_EXPONENT <= value.adjusted() <= MAX_METADATA_EXPONENT:
            raise _invalid("metadata", f"{path} is out of range: numbers must lie within 1e-1000 to 1e1000")
        if value.as_tuple().exponent < -MAX_METADATA_EXPONENT:
            raise _invalid("metadata", f"{path} is out of range: at most 1000 decimal places")


def _timestamp(value, now: datetime) -> datetime:
    if value is None:
        return now
    if not isinstance(value, str):
        raise _invalid("timestamp", f"must be an RFC 3339 string, not {_type_name(value)}")
    if len(value) < 16 or value[10] not in "Tt ":
        raise _invalid("timestamp", f"'{_printable(value, 40)}' is not an RFC 3339 timestamp "
                                    "(2026-11-01T12:00:00Z)")
    try:
        parsed = datetime.fromisoformat(value)
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)  # the contract: no offset means UTC
        else:
            parsed = parsed.astimezone(UTC)  # OverflowError past year 9999 or before year 1
    except (ValueError, OverflowError):
        raise _invalid("timestamp", f"'{_printable(value, 40)}' is not an RFC 3339 timestamp "
                                    "(2026-11-01T12:00:00Z)") from None
    if parsed.year < 2000:
        raise _invalid("timestamp", f"{value} is before 2000; send the time the call happened")
    if parsed - now > FUTURE_TOLERANCE:
        raise _invalid("timestamp", f"{value} is more than 24 hours in the future")
    return parsed


def _int_or_none(value):
    if isinstance(value, int) and not isinstance(value, bool) and -MAX_BIGINT <= value <= MAX_BIGINT:
        return value
    return None


def _str_or_none(value, limit: int):
    return value[:limit] if isinstance(value, str) else None


@dataclass
class Context:
    organization: Organization
    api_key: ApiKey
    projects_by_slug: dict
    now: datetime


@dataclass
class Outcome:
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    errors: list = field(default_factory=list)
    warnings: list = field(default_factory=list)

    def as_json(self) -> dict:
        return {"accepted": self.accepted, "duplicates": self.duplicates, "rejected": self.rejected,
                "errors": self.errors, "warnings": self.warnings}


def _unknown_fields_message(unknown: list[str]) -> dict:
    fields = {}
    for name in unknown:
        guess = closest(name, EVENT_FIELDS)
        hint = f" (did you mean '{guess}'?)" if guess else ""
        fields[name[:64]] = [f"is not an event field{hint}"]
    return fields


def prepare_event(raw, index: int, context: Context, taxonomy) -> tuple:
    """Validates one raw event; returns (row, project_id, client_id, digest, timestamp, warnings).

    Raises EventProblem for an event that must be rejected.
    """
    if not isinstance(raw, dict):
        raise EventProblem("invalid", {"event": [f"must be a JSON object, not {_type_name(raw)}"]})
    try:
        size = len(_sizing_encoder.encode(raw))
    except UnicodeEncodeError:
        # JSON's \ud800 escapes can smuggle in unpaired surrogates, which are not text:
        # PostgreSQL cannot store them, and no message may echo them. Encoding the
        # event is needed for its size anyway, so catching them here costs nothing.
        raise EventProblem("invalid", {_surrogate_field(raw): [
            "contains an unpaired UTF-16 surrogate (a \\ud800-\\udfff escape), which is not text"]}) from None
    unknown = [name for name in raw if name not in EVENT_FIELDS]
    if unknown:
        raise EventProblem("invalid", _unknown_fields_message(unknown))
    if size > MAX_EVENT_BYTES:
        raise EventProblem("too_large", {"event": [f"is {size} bytes serialized; at most 32 KiB"]})
    get = raw.get
    client_id = _text("id", get("id"), 128)
    organization = context.organization
    project_slug = get("project")
    if context.api_key.project_id is not None:
        project = context.api_key.project
        if project_slug is not None and project_slug != project.slug:
            raise _invalid("project", f"this key sends events for '{project.slug}' only, not '{project_slug}'")
    elif project_slug is None:
        raise _invalid("project", "is required with an organization key: name the project's slug")
    else:
        if not isinstance(project_slug, str):
            raise _invalid("project", f"must be a project slug string, not {_type_name(project_slug)}")
        project = context.projects_by_slug.get(project_slug)
        if project is None:
            known = ", ".join(sorted(context.projects_by_slug)[:10])
            raise _invalid("project", f"'{project_slug[:64]}' is not a project of this organization (known: {known})")
    timestamp = _timestamp(get("timestamp"), context.now)
    cost = _amount("cost", get("cost"), nullable=False)
    charge = _amount("charge", get("charge"), nullable=True)
    currency = get("currency")
    if currency is None:  # absent or null, like every optional field
        currency = organization.reporting_currency
    if not isinstance(currency, str) or currency not in CURRENCY_CODES:
        raise _invalid("currency", f"'{str(currency)[:12]}' is not an ISO 4217 currency code (USD, EUR, ...)")
    if currency != organization.reporting_currency:
        raise _invalid("currency", f"{currency} cannot be converted yet: send amounts in "
                                   f"{organization.reporting_currency}, the organization's reporting currency")
    strings = {name: _text(name, get(name), limit) for name, limit in STRING_LIMITS.items()}
    tags = _string_list("tags", get("tags"), 64)
    traces = _string_list("traces", get("traces"), 128)
    metadata = get("metadata")
    if metadata is None:
        metadata = {}
    elif not isinstance(metadata, dict):
        raise _invalid("metadata", f"must be an object, not {_type_name(metadata)}")
    elif metadata:
        _check_json_value(metadata, 1, "metadata")
        size = len(_encoder.encode(metadata))
        if size > MAX_METADATA_BYTES:
            raise _invalid("metadata", f"is {size} bytes serialized; at most 16 KiB")

    checked = {**strings, "tags": tags, "traces": traces, "charge": charge, "metadata": metadata}
    verdict = taxonomy.check(checked)
    if verdict.errors:
        raise EventProblem("taxonomy_violation", verdict.errors)
    if verdict.values:
        checked.update(verdict.values)
    metadata = checked["metadata"]
    if client_id is None:
        client_id = f"evt_{uuid.uuid4().hex}"
        digest = None
    else:
        digest = _content_digest(raw, cost, charge)
    row = (
        organization.pk, project.pk, client_id, timestamp, context.now, cost, charge, currency, cost, charge,
        checked["environment"], checked["provider"], checked["application"], checked["action"], checked["userId"],
        checked["tags"], checked["traces"], _encoder.encode(metadata).decode(),
        _str_or_none(metadata.get("model"), 200), _int_or_none(metadata.get("latencyMs")),
        _int_or_none(metadata.get("inputTokens")), _int_or_none(metadata.get("outputTokens")),
        _str_or_none(metadata.get("status"), 16), _str_or_none(metadata.get("errorType"), 200),
        list(verdict.flags),
    )
    return row, project.pk, client_id, digest, timestamp, verdict.warnings


def _surrogate_field(raw: dict) -> str:
    """The field of `raw` holding an unpaired surrogate ("event" when it is in a field name)."""
    for name, value in raw.items():
        try:
            name.encode("utf-8")
        except UnicodeEncodeError:
            return "event"
        try:
            _sizing_encoder.encode(value)
        except UnicodeEncodeError:
            return name if name in EVENT_FIELDS else "event"
    return "event"


def _content_digest(raw: dict, cost: Decimal, charge: Decimal | None) -> bytes:
    """A digest of the event as sent: 142, "142" and 142.0 are the same amount, a field
    sent as null is the same as one left out, and so is `project`, which the key holds."""
    canonical = dict(raw)
    for name, value in raw.items():  # `is None`, not `None in values()`: that calls every __eq__
        if value is None:
            del canonical[name]
    canonical.pop("project", None)
    # The exact context: amounts have up to 38 digits, the default context keeps 28.
    canonical["cost"] = str(cost.normalize(_EXACT))
    if charge is not None:
        canonical["charge"] = str(charge.normalize(_EXACT))
    return hashlib.blake2b(_sorted_encoder.encode(canonical), digest_size=16).digest()


def _error_entry(index: int, raw, code: str, fields: dict, message: str) -> dict:
    client_id = raw.get("id") if isinstance(raw, dict) else None
    return {"index": index, "id": client_id if isinstance(client_id, str) else None, "code": code,
            "message": message, "fields": fields}


@dataclass
class Prepared:
    index: int
    row: tuple
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


def _prepare_batch(events: list, context: Context, outcome: Outcome) -> tuple[list[Prepared], list[Repeat]]:
    """Validates every event; rejected ones go to `outcome`, in-batch repeats to the second list."""
    taxonomy = taxonomy_compiled(organization=context.organization)
    prepared: list[Prepared] = []
    repeats: list[Repeat] = []
    seen: set[tuple[int, str]] = set()
    for index, raw in enumerate(events):
        try:
            row, project_id, client_id, digest, timestamp, warnings = prepare_event(raw, index, context, taxonomy)
        except EventProblem as problem:
            outcome.rejected += 1
            outcome.errors.append(_error_entry(index, raw, problem.code, problem.fields, problem.message()))
            continue
        if digest is not None:
            if (project_id, client_id) in seen:
                # Judged once the batch knows what its first occurrence became (_settle_repeats).
                repeats.append(Repeat(index, project_id, client_id, digest))
                continue
            seen.add((project_id, client_id))
        prepared.append(Prepared(index, row, project_id, client_id, digest, timestamp, warnings))
    return prepared, repeats


def _judge_repeat(index: int, client_id: str, same_content: bool, outcome: Outcome) -> None:
    if same_content:
        outcome.duplicates += 1
        return
    outcome.rejected += 1
    message = "id: an event with this id and different content is already stored; it was left unchanged"
    outcome.errors.append(_error_entry(index, {"id": client_id}, "id_conflict",
                                       {"id": ["already used for an event with different content"]}, message))


def _settle_repeats(settled: dict, repeats: list[Repeat], outcome: Outcome) -> None:
    """Judges in-batch repeats against what their id holds once the batch is stored.

    That is the first occurrence when it was stored, but the earlier event when the
    first occurrence was itself a repeat: a later copy of a conflicting event is a
    conflict too, not a duplicate of something that was never stored.
    """
    for repeat in repeats:
        _judge_repeat(repeat.index, repeat.client_id,
                      settled.get((repeat.project_id, repeat.client_id)) == repeat.digest, outcome)


_CLAIM_KEYS = """
INSERT INTO events_eventkey (organization_id, project_id, client_id, content_hash, "timestamp")
SELECT %s, claim.* FROM unnest(%s::bigint[], %s::text[], %s::bytea[], %s::timestamptz[]) AS claim
ON CONFLICT DO NOTHING
RETURNING project_id, client_id
"""
_STORED_KEYS = """
SELECT k.project_id, k.client_id, k.content_hash
FROM events_eventkey k
JOIN unnest(%s::bigint[], %s::text[]) AS wanted(project_id, client_id) USING (project_id, client_id)
WHERE k.organization_id = %s
"""
_COPY_EVENTS = "COPY events_event ({}) FROM STDIN".format(", ".join(f'"{name}"' for name in COPY_COLUMNS))


def _stored_digests(cursor, organization_id: int, keyed: list[Prepared]) -> dict:
    if not keyed:
        return {}
    cursor.execute(_STORED_KEYS, [[p.project_id for p in keyed], [p.client_id for p in keyed], organization_id])
    return {(project_id, client_id): bytes(digest) for project_id, client_id, digest in cursor.fetchall()}


def _write(cursor, organization_id: int, prepared: list[Prepared], repeats: list[Repeat],
           outcome: Outcome) -> list[Prepared]:
    """Claims the client ids, sorts out repeats of stored events, COPYs the rest.

    Keys are claimed in a fixed order so concurrent batches with the same ids wait
    for each other instead of deadlocking; the loser sees the winner's rows.
    """
    keyed = sorted((p for p in prepared if p.digest is not None), key=lambda p: (p.project_id, p.client_id))
    claimed: set = set()
    if keyed:
        cursor.execute(_CLAIM_KEYS, [
            organization_id, [p.project_id for p in keyed], [p.client_id for p in keyed],
            [p.digest for p in keyed], [p.timestamp for p in keyed],
        ])
        claimed = set(cursor.fetchall())
    unclaimed = [p for p in keyed if (p.project_id, p.client_id) not in claimed]
    stored = _stored_digests(cursor, organization_id, unclaimed)
    for item in unclaimed:
        _judge_repeat(item.index, item.client_id, stored.get((item.project_id, item.client_id)) == item.digest,
                      outcome)
    if repeats:
        settled = {(p.project_id, p.client_id): p.digest for p in keyed}
        settled.update(stored)
        _settle_repeats(settled, repeats, outcome)
    fresh = [p for p in prepared if p.digest is None or (p.project_id, p.client_id) in claimed]
    if fresh:
        with cursor.copy(_COPY_EVENTS) as copy:
            for item in fresh:
                copy.write_row(item.row)
    return fresh


def _check_stored(cursor, organization_id: int, prepared: list[Prepared], repeats: list[Repeat],
                  outcome: Outcome) -> list[Prepared]:
    """The dry run's view of repeats: what a real send would call duplicates or conflicts."""
    keyed = [p for p in prepared if p.digest is not None]
    stored = _stored_digests(cursor, organization_id, keyed)
    fresh = []
    for item in prepared:
        digest = stored.get((item.project_id, item.client_id))
        if item.digest is not None and digest is not None:
            _judge_repeat(item.index, item.client_id, digest == item.digest, outcome)
        else:
            fresh.append(item)
    if repeats:
        settled = {(p.project_id, p.client_id): p.digest for p in keyed}
        settled.update(stored)
        _settle_repeats(settled, repeats, outcome)
    return fresh


def event_ingest_batch(*, raw_body: bytes, api_key: ApiKey, dry_run: bool = False) -> tuple[int, dict]:
    """Validates and (unless `dry_run`) stores a request's events.

    Returns the HTTP status (200, 207, or 422 for a single rejected event) and the
    contract's response body. Rows stored == `accepted`, always.
    """
    events, single = parse_body(raw_body)
    organization = api_key.organization
    projects_by_slug = {}
    if api_key.project_id is None:
        projects_by_slug = {project.slug: project for project in organization.projects.all()}
    context = Context(organization=organization, api_key=api_key, projects_by_slug=projects_by_slug,
                      now=datetime.now(UTC))
    outcome = Outcome()
    prepared, repeats = _prepare_batch(events, context, outcome)
    if prepared:
        if dry_run:
            with connection.cursor() as cursor:
                fresh = _check_stored(cursor, organization.pk, prepared, repeats, outcome)
        else:
            fresh = _store(organization.pk, prepared, repeats, outcome)
        outcome.accepted = len(fresh)
        outcome.warnings = [
            {"index": item.index, "id": item.client_id, "fields": item.warnings} for item in fresh if item.warnings
        ]
    outcome.errors.sort(key=lambda error: error["index"])
    if outcome.rejected == 0:
        status = 200
    elif single:
        status = 422
    else:
        status = 207
    logger.info("events.ingested", extra={
        "organization_id": organization.pk, "accepted": outcome.accepted, "duplicates": outcome.duplicates,
        "rejected": outcome.rejected, "dry_run": dry_run,
    })
    body = outcome.as_json()
    if status == 422:
        # Every non-2xx answer carries the contract's error object; the counts stay
        # alongside so a client reads a single send like a batch of one.
        [error] = outcome.errors
        body["error"] = {"code": error["code"], "message": error["message"], "details": {"fields": error["fields"]}}
    return status, body


DEADLOCK_RETRIES = 3


def _missing_partition(error: Exception) -> bool:
    return (isinstance(error, psycopg.errors.CheckViolation)
            and (error.diag.message_primary or "").startswith("no partition of relation"))


def _store(organization_id: int, prepared: list[Prepared], repeats: list[Repeat], outcome: Outcome) -> list[Prepared]:
    months = {(item.timestamp.year, item.timestamp.month) for item in prepared}
    ensure_partitions(months)
    looked_again = False
    for attempt in range(DEADLOCK_RETRIES + 1):
        trial = Outcome()
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                fresh = _write(cursor, organization_id, prepared, repeats, trial)
        except OperationalError as error:
            if isinstance(error.__cause__, psycopg.errors.DeadlockDetected) and attempt + 1 < DEADLOCK_RETRIES:
                logger.warning("events.ingest_deadlock_retry", extra={"organization_id": organization_id})
                continue
            raise
        except psycopg.errors.CheckViolation as error:
            # The process remembers the partitions it has seen, and one may be gone since:
            # dropped by retention, or created inside a transaction that was rolled back.
            # Nothing was written (the transaction rolled back); look again once and retry.
            if not _missing_partition(error) or looked_again:
                raise
            looked_again = True
            logger.warning("events.partition_cache_stale", extra={"organization_id": organization_id})
            forget_known_partitions()
            ensure_partitions(months)
            continue
        outcome.duplicates += trial.duplicates
        outcome.rejected += trial.rejected
        outcome.errors.extend(trial.errors)
        return fresh
    raise AssertionError("unreachable")
