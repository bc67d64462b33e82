"""Validation of a taxonomy spec: admins edit it by hand, so every mistake is
caught when it is saved, with a sentence naming where it is, never at ingest."""
from __future__ import annotations

import math

from .naming import is_snake_case, is_tag_slug

STRING_FIELDS = ("environment", "provider", "application", "action", "userId")
LIST_FIELDS = ("traces", "tags")
FIELD_NAMES = STRING_FIELDS + ("charge",) + LIST_FIELDS
PRESENCES = ("required", "recommended", "optional")
ENFORCEMENTS = ("reject", "flag")
CONVENTIONS = (None, "snake_case", "tag_slug")
METADATA_TYPES = ("string", "integer", "number", "boolean", "object", "array")
UNKNOWN_KEY_POLICIES = ("allow", "flag_similar", "flag", "reject")

_CONVENTION_CHECKS = {"snake_case": is_snake_case, "tag_slug": is_tag_slug}
_FIELD_DEFAULTS = {"presence": "optional", "enforcement": "flag", "values": [], "convention": None}
_VALUE_DEFAULTS = {"description": "", "aliases": []}
_KEY_DEFAULTS = {"description": "", "aliases": [], "minimum": None, "choices": None}
_METADATA_DEFAULTS = {"keys": [], "enforcement": "reject", "unknown_keys": "allow"}


def _fail(message: str):
    raise ValueError(message)


def _listing(items) -> str:
    return ", ".join(str(item) if item is not None else "null" for item in items)


def _settings(obj, where: str, allowed: dict, required: tuple = ()) -> dict:
    """obj with defaults filled in; unknown settings fail, so typos are not ignored."""
    if not isinstance(obj, dict):
        _fail(f"{where} must be an object, not {type(obj).__name__}")
    for name in obj:
        if name not in allowed and name not in required:
            _fail(f"{where} has an unknown setting '{name}' (allowed: {_listing(sorted([*required, *allowed]))})")
    for name in required:
        if name not in obj:
            _fail(f"{where} needs '{name}'")
    return {**{name: obj[name] for name in required},
            **{name: obj.get(name, default) for name, default in allowed.items()}}


def _choice(value, where: str, options: tuple):
    if value not in options or isinstance(value, bool):
        _fail(f"{where} is {value!r}; allowed: {_listing(options)}")
    return value


def _name(value, where: str, limit: int = 64) -> str:
    if not isinstance(value, str) or not value or len(value) > limit or value != value.strip():
        _fail(f"{where} must be a non-empty string of at most {limit} characters without surrounding spaces, "
              f"not {value!r}")
    return value


def _string_list(value, where: str) -> list:
    if not isinstance(value, list):
        _fail(f"{where} must be a list of strings")
    return [_name(item, f"{where}[{i}]") for i, item in enumerate(value)]


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def normalize_spec(spec) -> dict:
    """A validated copy of `spec` with every setting spelled out. Raises ValueError."""
    top = _settings(spec, "the taxonomy", {"fields": {}, "metadata": {}})
    fields = top["fields"]
    if not isinstance(fields, dict):
        _fail("fields must be an object mapping field names to rules")
    for name in fields:
        if name not in FIELD_NAMES:
            _fail(f"fields has an unknown field '{name}' (allowed: {_listing(FIELD_NAMES)})")
    return {
        "fields": {name: _field_rule(name, fields.get(name, {})) for name in FIELD_NAMES},
        "metadata": _metadata_rules(top["metadata"]),
    }


def _field_rule(name: str, rule) -> dict:
    where = f"fields.{name}"
    rule = _settings(rule, where, _FIELD_DEFAULTS)
    _choice(rule["presence"], f"{where}.presence", PRESENCES)
    _choice(rule["enforcement"], f"{where}.enforcement", ENFORCEMENTS)
    convention = _choice(rule["convention"], f"{where}.convention", CONVENTIONS)
    if not isinstance(rule["values"], list):
        _fail(f"{where}.values must be a list")
    if name == "charge" and (rule["values"] or convention):
        _fail("fields.charge cannot have values or a convention: a charge is an amount, not a name")
    seen: dict[str, str] = {}
    values = []
    for i, entry in enumerate(rule["values"]):
        at = f"{where}.values[{i}]"
        # A bare string is accepted as shorthand for {"value": ...}.
        entry = _settings({"value": entry} if isinstance(entry, str) else entry, at, _VALUE_DEFAULTS, ("value",))
        value = _name(entry["value"], f"{at}.value")
        if convention and not _CONVENTION_CHECKS[convention](value):
            _fail(f"{at}.value '{value}' breaks the field's own {convention} convention")
        if not isinstance(entry["description"], str):
            _fail(f"{at}.description must be a string")
        aliases = _string_list(entry["aliases"], f"{at}.aliases")
        # Matching is case-insensitive, so two spellings differing only in case collide.
        for spelling in (value, *aliases):
            if spelling.lower() in seen:
                _fail(f"{where}: '{spelling}' is listed more than once, ignoring case "
                      f"(already used by '{seen[spelling.lower()]}')")
            seen[spelling.lower()] = value
        values.append({"value": value, "description": entry["description"], "aliases": aliases})
    return {**rule, "values": values}


def _metadata_rules(meta) -> dict:
    meta = _settings(meta, "metadata", _METADATA_DEFAULTS)
    _choice(meta["enforcement"], "metadata.enforcement", ENFORCEMENTS)
    _choice(meta["unknown_keys"], "metadata.unknown_keys", UNKNOWN_KEY_POLICIES)
    if not isinstance(meta["keys"], list):
        _fail("metadata.keys must be a list")
    seen: dict[str, str] = {}
    keys = []
    for i, entry in enumerate(meta["keys"]):
        at = f"metadata.keys[{i}]"
        entry = _settings(entry, at, _KEY_DEFAULTS, ("key", "type"))
        key = _name(entry["key"], f"{at}.key")
        type_ = _choice(entry["type"], f"{at}.type", METADATA_TYPES)
        if not isinstance(entry["description"], str):
            _fail(f"{at}.description must be a string")
        aliases = _string_list(entry["aliases"], f"{at}.aliases")
        # Keys are matched exactly (a near miss is flagged, not rewritten), so only
        # exact duplicates are ambiguous.
        for spelling in (key, *aliases):
            if spelling in seen:
                _fail(f"metadata.keys: '{spelling}' is listed more than once (already used by '{seen[spelling]}')")
            seen[spelling] = key
        minimum, choices = entry["minimum"], entry["choices"]
        if minimum is not None and (type_ not in ("integer", "number") or not _number(minimum)):
            _fail(f"{at}.minimum must be a finite number, and only integer and number keys take one")
        if choices is not None:
            choices = _choices(choices, type_, f"{at}.choices")
        keys.append({"key": key, "type": type_, "description": entry["description"], "aliases": aliases,
                     "minimum": minimum, "choices": choices})
    return {"keys": keys, "enforcement": meta["enforcement"], "unknown_keys": meta["unknown_keys"]}


def _choices(choices, type_: str, where: str) -> list:
    if type_ not in ("string", "integer", "number"):
        _fail(f"{where}: only string, integer and number keys take choices")
    if not isinstance(choices, list) or not choices:
        _fail(f"{where} must be a non-empty list")
    for choice in choices:
        ok = (isinstance(choice, str) if type_ == "string"
              else isinstance(choice, int) and not isinstance(choice, bool) if type_ == "integer"
              else _number(choice))
        if not ok:
            _fail(f"{where}: {choice!r} is not of type {type_}")
    folded = [c.lower() if isinstance(c, str) else c for c in choices]
    if len(set(folded)) != len(folded):
        _fail(f"{where} lists a value more than once (ignoring case)")
    return list(choices)
