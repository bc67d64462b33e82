"""Checks of one event's fields against the contract's types and limits."""
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import ROUND_DOWN, Decimal, InvalidOperation

from events.ingest.limits import (EXACT, SMALLEST_UNIT, EVENT_FIELDS, FUTURE_TOLERANCE, MAX_BIGINT, MAX_FRACTION_DIGITS,
                                  MAX_INTEGER_DIGITS, MAX_LIST_ITEMS, MAX_METADATA_DEPTH, MAX_METADATA_EXPONENT,
                                  NonFinite, sizing_encoder)
from events.ingest.parsing import printable
from events.taxonomy import closest


@dataclass
class EventProblem(Exception):
    code: str
    fields: dict = field(default_factory=dict)

    def message(self) -> str:
        name, messages = next(iter(self.fields.items()))
        return f"{name}: {messages[0]}"


_ZERO = Decimal(0)
_TOO_LARGE = Decimal(10) ** MAX_INTEGER_DIGITS


def invalid(name: str, message: str) -> EventProblem:
    return EventProblem("invalid", {name: [message]})


def exact_amount_text(value) -> str | None:
    """str(value) when amount_field() would return `value` itself, else None.

    The common case, for the hot path: a positive JSON number that fits numeric(38, 18)
    as sent. One chained comparison says not NaN (is_finite), > 0 and under 10**20
    digits; the text that the row needs anyway says the scale: without an exponent,
    str() shows -exponent digits after the point (none when the exponent is 0).
    """
    if type(value) is Decimal and value.is_finite() and _ZERO < value < _TOO_LARGE:
        text = str(value)
        if "E" not in text and len(text) - text.find(".") <= MAX_FRACTION_DIGITS + 1:
            return text
    return None


def amount_field(name: str, value, *, nullable: bool) -> Decimal | None:
    if value is None:
        if nullable:
            return None
        raise invalid(name, "is required: what the call cost you, a decimal >= 0")
    if isinstance(value, bool) or not isinstance(value, (int, Decimal, str)):
        if isinstance(value, NonFinite):
            raise invalid(name, f"{value.text} is not an amount")
        raise invalid(name, f"must be a decimal number or a decimal string, not {type(value).__name__}")
    if isinstance(value, str):
        try:
            value = Decimal(value.strip())
        except InvalidOperation:
            raise invalid(name, f"'{value[:40]}' is not a decimal amount") from None
    elif isinstance(value, int):
        if abs(value) >= 10**MAX_INTEGER_DIGITS:
            raise invalid(name, "is too large: at most 20 digits before the decimal point")
        value = Decimal(value)
    if not value.is_finite():
        raise invalid(name, f"{value} is not an amount")
    if value < 0:
        raise invalid(name, f"must be >= 0, not {printable(str(value), 40)}")
    if not value:
        return Decimal(0)  # 0E+100 and -0 are plain zero, not "too large"
    if value.adjusted() >= MAX_INTEGER_DIGITS:
        raise invalid(name, "is too large: at most 20 digits before the decimal point")
    if value.as_tuple().exponent < -MAX_FRACTION_DIGITS:
        # Trailing zeros beyond the scale are harmless; real digits would be lost.
        # Comparisons are exact, and the value now fits the exact context.
        scaled = value.quantize(SMALLEST_UNIT, rounding=ROUND_DOWN, context=EXACT)
        if scaled != value:
            raise invalid(name, "has more than 18 decimal places")
        value = scaled
    return value


def text_field(name: str, value, limit: int) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise invalid(name, f"must be a string, not {type_name(value)}")
    if not value:
        raise invalid(name, f"must be 1-{limit} characters, not empty (leave it out instead)")
    if len(value) > limit:
        raise invalid(name, f"is {len(value)} characters long; at most {limit}")
    if "\x00" in value:
        raise invalid(name, "contains a NUL character")
    return value


def string_list_field(name: str, value, item_limit: int) -> list:
    if value is None:
        return []
    if not isinstance(value, list):
        raise invalid(name, f"must be a list of strings, not {type_name(value)}")
    if len(value) > MAX_LIST_ITEMS:
        raise invalid(name, f"holds {len(value)} items; at most {MAX_LIST_ITEMS}")
    for item in value:
        if not isinstance(item, str):
            raise invalid(name, f"must hold only strings, not {type_name(item)}")
        if not item or len(item) > item_limit:
            raise invalid(name, f"items must be 1-{item_limit} characters ('{item[:40]}' is {len(item)})")
        if "\x00" in item:
            raise invalid(name, "an item contains a NUL character")
    return value


def type_name(value) -> str:
    if isinstance(value, NonFinite):
        return value.text
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", int: "a number",
            Decimal: "a number", type(None): "null"}.get(type(value), type(value).__name__)


def json_value_storable(value, depth: int) -> bool:
    """The fast pass of check_json_value: True when nothing in `value` needs a message."""
    kind = type(value)
    if kind is str:
        return "\x00" not in value
    if kind is dict:
        if depth > MAX_METADATA_DEPTH:
            return False
        for key, item in value.items():
            if "\x00" in key:
                return False
            item_kind = type(item)
            if item_kind is str:
                if "\x00" in item:
                    return False
            elif item_kind is not int and item_kind is not bool and item is not None:
                if not json_value_storable(item, depth + 1):
                    return False
        return True
    if kind is list:
        if depth > MAX_METADATA_DEPTH:
            return False
        return all(json_value_storable(item, depth + 1) for item in value)
    if kind is int or kind is bool or value is None:
        return True
    if kind is Decimal:
        return (value.is_finite() and (not value or -MAX_METADATA_EXPONENT <= value.adjusted() <= MAX_METADATA_EXPONENT)
                and value.as_tuple().exponent >= -MAX_METADATA_EXPONENT)
    return False


def check_json_value(value, depth: int, path: str) -> None:
    """Metadata must be storable as jsonb: finite numbers, no NUL, at most 5 levels."""
    # `depth` counts containers, metadata itself being 1: five levels are allowed.
    if isinstance(value, dict):
        if depth > MAX_METADATA_DEPTH:
            raise invalid("metadata", f"is nested more than {MAX_METADATA_DEPTH} levels deep (at {path})")
        for key, item in value.items():
            if "\x00" in key:
                raise invalid("metadata", "a key contains a NUL character")
            # No surrogate can reach here: prepare_event() rejects them while sizing the event.
            check_json_value(item, depth + 1, f"{path}.{key}")
    elif isinstance(value, list):
        if depth > MAX_METADATA_DEPTH:
            raise invalid("metadata", f"is nested more than {MAX_METADATA_DEPTH} levels deep (at {path})")
        for item in value:
            check_json_value(item, depth + 1, path + "[]")
    elif isinstance(value, str):
        if "\x00" in value:
            raise invalid("metadata", f"{path} contains a NUL character")
    elif isinstance(value, NonFinite):
        raise invalid("metadata", f"{path} is {value.text}, which JSON cannot store")
    elif isinstance(value, Decimal):
        if not value.is_finite():
            raise invalid("metadata", f"{path} is not a finite number")
        if value and not -MAX_METADATA_EXPONENT <= value.adjusted() <= MAX_METADATA_EXPONENT:
            raise invalid("metadata", f"{path} is out of range: numbers must lie within 1e-1000 to 1e1000")
        if value.as_tuple().exponent < -MAX_METADATA_EXPONENT:
            raise invalid("metadata", f"{path} is out of range: at most 1000 decimal places")


def timestamp_field(value, now: datetime) -> datetime:
    if value is None:
        return now
    if not isinstance(value, str):
        raise invalid("timestamp", f"must be an RFC 3339 string, not {type_name(value)}")
    if len(value) < 16 or value[10] not in "Tt ":
        raise invalid("timestamp", f"'{printable(value, 40)}' is not an RFC 3339 timestamp "
                                    "(2026-11-01T12:00:00Z)")
    try:
        parsed = datetime.fromisoformat(value)
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)  # the contract: no offset means UTC
        else:
            parsed = parsed.astimezone(UTC)  # OverflowError past year 9999 or before year 1
    except (ValueError, OverflowError):
        raise invalid("timestamp", f"'{printable(value, 40)}' is not an RFC 3339 timestamp "
                                    "(2026-11-01T12:00:00Z)") from None
    if parsed.year < 2000:
        raise invalid("timestamp", f"{value} is before 2000; send the time the call happened")
    if parsed - now > FUTURE_TOLERANCE:
        raise invalid("timestamp", f"{value} is more than 24 hours in the future")
    return parsed


def int_or_none(value):
    if isinstance(value, int) and not isinstance(value, bool) and -MAX_BIGINT <= value <= MAX_BIGINT:
        return value
    return None


def str_or_none(value, limit: int):
    return value[:limit] if isinstance(value, str) else None


def unknown_fields_message(unknown: list[str]) -> dict:
    fields = {}
    for name in unknown:
        guess = closest(name, EVENT_FIELDS)
        hint = f" (did you mean '{guess}'?)" if guess else ""
        fields[name[:64]] = [f"is not an event field{hint}"]
    return fields


def surrogate_field(raw: dict) -> str:
    """The field of `raw` holding an unpaired surrogate ("event" when it is in a field name)."""
    for name, value in raw.items():
        try:
            name.encode("utf-8")
        except UnicodeEncodeError:
            return "event"
        try:
            sizing_encoder.encode(value)
        except UnicodeEncodeError:
            return name if name in EVENT_FIELDS else "event"
    return "event"


