"""Checking one event against a compiled taxonomy: the ingest hot path."""
from __future__ import annotations

import copy
import math
from decimal import Decimal
from typing import Any, Mapping

from .naming import (SNAKE_CASE_TEXT, TAG_SLUG_TEXT, closest, is_snake_case, is_tag_slug, looks_like_code,
                     show, suggest_snake_case, suggest_tag_slug)
from .spec import LIST_FIELDS, STRING_FIELDS, normalize_spec

# Values repeat across events, so verdicts are memoized; clearing a full cache
# keeps memory bounded against clients that send endless distinct values.
CACHE_SIZE = 4096

_OK = object()
_SINGULAR = {"userId": "user id", "traces": "trace id", "tags": "tag"}
_RECOMMENDED = {
    "environment": "an environment", "provider": "a provider", "application": "an application",
    "action": "an action", "userId": "a user id (userId)", "traces": "trace ids", "tags": "tags",
}
# Exact types accepted without further thought; anything else (bool for integer,
# float or Decimal that may be NaN, subclasses) goes through _type_ok().
_EXACT_TYPES = {"string": (str,), "integer": (int,), "number": (int,), "boolean": (bool,),
                "object": (dict,), "array": (list,)}
_ARTICLE = {"integer": "an", "object": "an", "array": "an"}


class Verdict:
    """What check() found. `values`: normalized fields that changed (apply them
    before storing). `errors`/`warnings`: {field: [message]}, metadata problems
    under "metadata.<key>". `flags`: rule codes "<field>.<kind>" for counting,
    one per (field, kind), covering errors and flags but not plain rewrites."""

    __slots__ = ("values", "errors", "warnings", "flags")

    def __init__(self, values: dict, errors: dict, warnings: dict, flags: tuple):
        self.values, self.errors, self.warnings, self.flags = values, errors, warnings, flags

    @property
    def ok(self) -> bool:
        """False when the event must be rejected with taxonomy_violation."""
        return not self.errors

    def __repr__(self) -> str:
        return (f"Verdict(values={self.values!r}, errors={self.errors!r}, "
                f"warnings={self.warnings!r}, flags={self.flags!r})")


class _FieldRule:
    """Precomputed rule for one field; a problem is (field, is_error, code, message)."""

    __slots__ = ("name", "missing", "judge", "cache", "canonical", "lookup", "allowed", "convention",
                 "is_error")

    def __init__(self, name: str, rule: dict):
        self.name = name
        self.is_error = rule["enforcement"] == "reject"
        self.canonical = frozenset(v["value"] for v in rule["values"])
        self.lookup = {s.lower(): v["value"] for v in rule["values"] for s in (v["value"], *v["aliases"])}
        self.allowed = ", ".join(sorted(self.canonical))
        self.convention = rule["convention"]
        self.cache: dict = {}
        self.judge = self._judge if (self.canonical or self.convention) else None
        self.missing = self._missing(rule["presence"])

    def _missing(self, presence: str):
        name = self.name
        if presence == "optional":
            return None
        if presence == "recommended":  # never a rejection, whatever the enforcement
            text = ("missing: margin cannot be computed without charge" if name == "charge"
                    else f"missing: the taxonomy recommends {_RECOMMENDED[name]}")
            return (name, False, f"{name}.missing", text)
        text = f"missing: {name} is required"
        if self.canonical:
            text += f" (allowed: {self.allowed})"
        elif self.convention:
            text += f" ({SNAKE_CASE_TEXT if self.convention == 'snake_case' else TAG_SLUG_TEXT})"
        elif name == "charge":
            text += " (margin cannot be computed without it)"
        return (name, self.is_error, f"{name}.missing", text)

    def _judge(self, value: str):
        verdict = self._verdict(value)
        if len(self.cache) >= CACHE_SIZE:
            self.cache.clear()
        self.cache[value] = verdict
        return verdict

    def _verdict(self, value: str):
        """_OK, or (replacement or None, problem)."""
        name, singular = self.name, _SINGULAR.get(self.name, self.name)
        if self.canonical:
            if value in self.canonical:
                return _OK
            found = self.lookup.get(value.lower())
            if found is not None:
                return (found, (name, False, None, f"'{show(value)}' normalized to '{found}'"))
            verb = "an allowed" if self.is_error else "a known"
            label = "allowed" if self.is_error else "known"
            return (None, (name, self.is_error, f"{name}.unknown",
                           f"'{show(value)}' is not {verb} {singular} ({label}: {self.allowed})"))
        if self.convention == "snake_case":
            if is_snake_case(value):
                return _OK
            intro = "reads like code" if looks_like_code(value) else f"is not a valid {singular} name"
            text = f"'{show(value)}' {intro}: {singular} names are {SNAKE_CASE_TEXT}"
            suggestion = suggest_snake_case(value)
            valid = is_snake_case(suggestion)
        else:
            if is_tag_slug(value):
                return _OK
            text = f"'{show(value)}' is not a valid {singular}: {singular}s are {TAG_SLUG_TEXT}"
            suggestion = suggest_tag_slug(value)
            valid = is_tag_slug(suggestion) and suggestion != ""
        if valid and suggestion != value:
            text += f" (try '{suggestion}')"
        return (None, (name, self.is_error, f"{name}.convention", text))


class _MetaKey:
    __slots__ = ("key", "field", "type", "exact_types", "minimum", "choices", "choice_lookup", "allowed")

    def __init__(self, spec: dict):
        self.key, self.type, self.minimum = spec["key"], spec["type"], spec["minimum"]
        self.field = f"metadata.{self.key}"
        self.exact_types = _EXACT_TYPES[self.type]
        choices = spec["choices"] or ()
        self.choices = frozenset(choices)
        self.choice_lookup = {c.lower(): c for c in choices if isinstance(c, str)}
        self.allowed = ", ".join(sorted(str(c) for c in choices))


def _type_ok(type_: str, value: Any) -> bool:
    if isinstance(value, bool):
        return type_ == "boolean"
    if type_ == "number":
        return isinstance(value, (int, float, Decimal)) and _finite(value)
    return isinstance(value, {"string": str, "integer": int, "boolean": bool, "object": dict,
                              "array": (list, tuple)}[type_])


def _finite(value) -> bool:
    return value.is_finite() if isinstance(value, Decimal) else math.isfinite(value)


def _describe(value: Any) -> str:
    if isinstance(value, str):
        return f"the string '{show(value)}'"
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    if isinstance(value, (dict, list, tuple)):
        return "an object" if isinstance(value, dict) else "an array"
    return show(value)


def _meta_value(mk: _MetaKey, value: Any, is_error: bool):
    """_OK, or (replacement or None, problem) for a registered key's value."""
    if type(value) not in mk.exact_types:
        if not _type_ok(mk.type, value):
            text = f"{mk.key} must be {_ARTICLE.get(mk.type, 'a')} {mk.type} (got {_describe(value)})"
            # The bound keeps int() cheap on absurd exponents like Decimal("1E+999999").
            if (mk.type == "integer" and isinstance(value, (float, Decimal)) and _finite(value)
                    and abs(value) < 1e18 and value == int(value)):
                text = f"{mk.key} must be an integer (got {value}: send {int(value)} without a decimal point)"
            return (None, (mk.field, is_error, "metadata.type", text))
    if mk.minimum is not None and value < mk.minimum:
        return (None, (mk.field, is_error, "metadata.range", f"{mk.key} must be at least {mk.minimum} (got {value})"))
    if mk.choices and value not in mk.choices:
        found = mk.choice_lookup.get(value.lower()) if isinstance(value, str) else None
        if found is not None:
            return (found, (mk.field, False, None, f"'{show(value)}' normalized to '{found}'"))
        return (None, (mk.field, is_error, "metadata.choice",
                       f"'{show(value)}' is not an allowed {mk.key} (allowed: {mk.allowed})"))
    return _OK


class CompiledTaxonomy:
    """A validated taxonomy with its lookup tables. Build it once per taxonomy
    version (compile_taxonomy) and share it; check() is safe across threads since
    its caches only ever hold deterministic verdicts."""

    __slots__ = ("_spec", "_string_rules", "_list_rules", "_charge_missing", "_meta_keys", "_meta_aliases",
                 "_meta_is_error", "_unknown_policy", "_unknown_cache", "_similar_to")

    def __init__(self, spec: dict):
        """`spec` must come from normalize_spec(); use compile_taxonomy()."""
        self._spec = spec
        rules = {name: _FieldRule(name, rule) for name, rule in spec["fields"].items()}
        # Fields with nothing to check cost nothing on the hot path.
        self._string_rules = tuple((r.name, r.missing, r.cache, r.judge) for r in map(rules.get, STRING_FIELDS)
                                   if r.judge or r.missing)
        self._list_rules = tuple((r.name, r.missing, r.cache, r.judge) for r in map(rules.get, LIST_FIELDS)
                                 if r.judge or r.missing)
        self._charge_missing = rules["charge"].missing
        meta = spec["metadata"]
        self._meta_keys = {k["key"]: _MetaKey(k) for k in meta["keys"]}
        self._meta_aliases = {a: k["key"] for k in meta["keys"] for a in k["aliases"]}
        self._meta_is_error = meta["enforcement"] == "reject"
        self._unknown_policy = meta["unknown_keys"]
        self._unknown_cache: dict = {}
        self._similar_to = (*self._meta_keys, *self._meta_aliases)

    def to_json(self) -> dict:
        """The normalized spec (every setting spelled out), for GET /api/v1/taxonomy."""
        return copy.deepcopy(self._spec)

    def check(self, event: Mapping[str, Any]) -> Verdict:
        """Check one event whose values already have the contract's types. Never
        mutates `event`; a missing field may be absent, None or empty."""
        get = event.get
        problems: list = []
        values: dict = {}
        for name, missing, cache, judge in self._string_rules:
            value = get(name)
            if not value:
                if missing is not None:
                    problems.append(missing)
            elif judge is not None:
                verdict = cache.get(value) or judge(value)
                if verdict is not _OK:
                    if verdict[0] is not None:
                        values[name] = verdict[0]
                    problems.append(verdict[1])
        for name, missing, cache, judge in self._list_rules:
            items = get(name)
            if not items:
                if missing is not None:
                    problems.append(missing)
            elif judge is not None:
                fixed = None
                for i, item in enumerate(items):
                    verdict = cache.get(item) or judge(item)
                    if verdict is not _OK:
                        if verdict[0] is not None:
                            fixed = fixed or list(items)
                            fixed[i] = verdict[0]
                        problems.append(verdict[1])
                if fixed is not None:
                    values[name] = fixed
        if self._charge_missing is not None and get("charge") is None:
            problems.append(self._charge_missing)
        metadata = get("metadata")
        if metadata and not self._metadata_clean(metadata):
            fixed = self._check_metadata(metadata, problems)
            if fixed is not None:
                values["metadata"] = fixed
        if not problems:
            return Verdict(values, {}, {}, ())
        return _collect(values, problems)

    def _metadata_clean(self, metadata: Mapping[str, Any]) -> bool:
        """Fast pass: True when no key needs a rewrite or a message, which is
        nearly every event; otherwise _check_metadata() redoes it in full."""
        keys, unknown_cache, allow = self._meta_keys, self._unknown_cache, self._unknown_policy == "allow"
        for key, value in metadata.items():
            mk = keys.get(key)
            if mk is None:
                if allow or (key not in self._meta_aliases and unknown_cache.get(key, _OK) is None):
                    continue
                return False
            # exact_types are hashable and comparable, so `<` and `in` cannot raise here.
            if (type(value) not in mk.exact_types or (mk.minimum is not None and value < mk.minimum)
                    or (mk.choices and value not in mk.choices)):
                return False
        return True

    def _check_metadata(self, metadata: Mapping[str, Any], problems: list) -> dict | None:
        """Appends to `problems`; returns the rewritten metadata if anything changed."""
        keys, aliases, is_error = self._meta_keys, self._meta_aliases, self._meta_is_error
        out: dict = {}
        renamed: dict = {}  # canonical key -> the alias it came from
        changed = False
        for key, value in metadata.items():
            mk = keys.get(key)
            if mk is None:
                canonical = aliases.get(key)
                if canonical is None:
                    problem = self._unknown_key(key)
                    if problem is not None:
                        problems.append(problem)
                    out[key] = value
                    continue
                changed = True
                mk = keys[canonical]
                if canonical in metadata or canonical in renamed:
                    kept = renamed.get(canonical, canonical)
                    problems.append((mk.field, False, None, f"both '{key}' and '{kept}' given: kept '{kept}'"))
                    continue
                problems.append((mk.field, False, None, f"'{key}' normalized to '{canonical}'"))
                renamed[canonical] = key
                key = canonical
            verdict = _meta_value(mk, value, is_error)
            if verdict is not _OK:
                if verdict[0] is not None:
                    value, changed = verdict[0], True
                problems.append(verdict[1])
            out[key] = value
        return out if changed else None

    def _unknown_key(self, key: str):
        policy = self._unknown_policy
        if policy == "allow":
            return None
        problem = self._unknown_cache.get(key, _OK)
        if problem is not _OK:
            return problem
        similar = closest(key, self._similar_to)
        if similar is not None:
            similar = self._meta_aliases.get(similar, similar)
        field = f"metadata.{show(key, 64)}"
        if policy == "flag_similar":
            problem = similar and (field, False, "metadata.unknown_key",
                                   f"unknown key '{show(key)}' looks like '{similar}'")
        else:
            hint = f" (did you mean '{similar}'?)" if similar else ""
            problem = (field, policy == "reject", "metadata.unknown_key",
                       f"unknown key '{show(key)}' is not in the taxonomy{hint}")
        if len(self._unknown_cache) >= CACHE_SIZE:
            self._unknown_cache.clear()
        self._unknown_cache[key] = problem or None
        return problem or None


def _collect(values: dict, problems: list) -> Verdict:
    errors: dict = {}
    warnings: dict = {}
    flags: list = []
    for field, is_error, code, text in problems:
        target = errors if is_error else warnings
        messages = target.get(field)
        if messages is None:
            target[field] = [text]
        elif text not in messages:
            messages.append(text)
        if code is not None and code not in flags:
            flags.append(code)
    # A rejected field keeps no rewrite, so a normalization never hides an error.
    for field in errors:
        values.pop(field.partition(".")[0], None)
    return Verdict(values, errors, warnings, tuple(flags))


def compile_taxonomy(spec: Mapping[str, Any]) -> CompiledTaxonomy:
    """Validate `spec` (raising ValueError with a sentence saying what is wrong)
    and build its lookup tables."""
    return CompiledTaxonomy(normalize_spec(spec))
