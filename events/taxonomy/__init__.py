"""Taxonomy rules for events, in plain Python with no Django import, so ingest,
validation, the admin and the health report share one implementation and tests
need no database.

A taxonomy is JSON-serializable data (DEFAULT_TAXONOMY shows the shape, and
GET /api/v1/taxonomy serves it). compile_taxonomy() validates it once and builds
lookup tables; CompiledTaxonomy.check() then runs once per event on the hot path.
"""
from .check import CACHE_SIZE, CompiledTaxonomy, Verdict, compile_taxonomy
from .defaults import DEFAULT_TAXONOMY, default_taxonomy
from .naming import closest, is_snake_case, is_tag_slug, suggest_snake_case, suggest_tag_slug
from .spec import (CONVENTIONS, ENFORCEMENTS, FIELD_NAMES, LIST_FIELDS, METADATA_TYPES, PRESENCES,
                   STRING_FIELDS, UNKNOWN_KEY_POLICIES, normalize_spec)

__all__ = [
    "CACHE_SIZE", "CONVENTIONS", "DEFAULT_TAXONOMY", "ENFORCEMENTS", "FIELD_NAMES", "LIST_FIELDS",
    "METADATA_TYPES", "PRESENCES", "STRING_FIELDS", "UNKNOWN_KEY_POLICIES", "CompiledTaxonomy", "Verdict",
    "closest", "compile_taxonomy", "default_taxonomy", "is_snake_case", "is_tag_slug", "normalize_spec",
    "suggest_snake_case", "suggest_tag_slug",
]
