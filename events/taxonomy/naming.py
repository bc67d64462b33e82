"""Naming conventions and fuzzy matching, shared by check() and the health report."""
from __future__ import annotations

import difflib
import re
import unicodedata
from typing import Any, Iterable

_SNAKE = re.compile(r"[a-z][a-z0-9]*(?:_[a-z0-9]+)*")
_SLUG = re.compile(r"[a-z0-9][a-z0-9_:-]*")
# Event-handler prefixes: the name describes the code path, not what happened.
_SNAKE_CODE_PREFIX = re.compile(r"(?:handle|on|do)_")
_CODE_PREFIX = re.compile(r"(?:[Hh]andle|[Oo]n|[Dd]o)(?=[A-Z_])")
_CODE_HINT = re.compile(r"[A-Z.()]")
_PARENS = re.compile(r"\([^()]*\)")
_NON_ALNUM = re.compile(r"[^A-Za-z0-9]+")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_NON_SLUG = re.compile(r"[^a-z0-9_:-]+")

SNAKE_CASE_TEXT = "lower snake_case words, 2-64 chars"
TAG_SLUG_TEXT = "lower-case slugs [a-z0-9][a-z0-9_:-]*, up to 32 chars"


def _ascii(text: str) -> str:
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")


def is_snake_case(name: str) -> bool:
    """True when `name` satisfies the snake_case convention (code-ish prefixes fail)."""
    return 2 <= len(name) <= 64 and _SNAKE.fullmatch(name) is not None and not _SNAKE_CODE_PREFIX.match(name)


def is_tag_slug(name: str) -> bool:
    """True when `name` satisfies the tag_slug convention."""
    return len(name) <= 32 and _SLUG.fullmatch(name) is not None


def looks_like_code(name: str) -> bool:
    """camelCase, dots, parentheses or an event-handler prefix."""
    return _CODE_HINT.search(name) is not None or _CODE_PREFIX.match(name) is not None \
        or _SNAKE_CODE_PREFIX.match(name) is not None


def suggest_snake_case(name: str) -> str:
    """The lower snake_case form of a code-like name: `handleInvoicePreview()` ->
    `invoice_preview`. May return a string that still breaks the convention (empty,
    one character, leading digit); callers check before suggesting it."""
    text = _ascii(name)
    previous = None
    while previous != text:
        previous, text = text, _PARENS.sub("", text)
    text = _NON_ALNUM.sub("_", text).strip("_")
    while (match := _CODE_PREFIX.match(text)) and text[match.end():].strip("_"):
        text = text[match.end():].lstrip("_")
    text = _CAMEL.sub("_", text).lower()
    return re.sub("_+", "_", text).strip("_")[:64].rstrip("_")


def suggest_tag_slug(name: str) -> str:
    """The tag_slug form of `name` (lowercased, other characters as `_`); may be empty."""
    text = _NON_SLUG.sub("_", _ascii(name).lower())
    return text.lstrip("_:-")[:32].rstrip("_:-")


def _loose(text: str) -> str:
    return text.lower().replace("_", "").replace("-", "").replace(" ", "")


def closest(value: str, candidates: Iterable[str], *, cutoff: float = 0.8) -> str | None:
    """The candidate `value` most resembles, or None. Both sides are compared
    lowercased without `_`, `-` and spaces; equal forms win at once, otherwise the
    best difflib ratio >= cutoff (first candidate on ties)."""
    target = _loose(value)
    if not target:
        return None
    matcher = difflib.SequenceMatcher(autojunk=False)
    matcher.set_seq2(target)  # seq2 is the side difflib preprocesses, so reuse it
    best, best_ratio = None, 0.0
    for candidate in candidates:
        loose = _loose(candidate)
        if loose == target:
            return candidate
        matcher.set_seq1(loose)
        floor = max(cutoff, best_ratio)
        if matcher.real_quick_ratio() < floor or matcher.quick_ratio() < floor:
            continue
        ratio = matcher.ratio()
        if ratio >= cutoff and ratio > best_ratio:
            best, best_ratio = candidate, ratio
    return best


def show(value: Any, limit: int = 80) -> str:
    text = str(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
