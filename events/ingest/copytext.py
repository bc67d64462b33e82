"""Rows in PostgreSQL's COPY text format, built as strings.

psycopg's `write_row` adapts every value in Python (arrays element by element) and
cost about 80 us per event; formatting the few types ingestion writes ourselves
costs a few. Format: columns separated by tabs, `\\N` for NULL, backslash escapes
for backslash, tab, newline and carriage return; arrays as `{"a","b"}` literals.
"""
from datetime import datetime
from decimal import Decimal

NULL = "\\N"
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def copy_text(value: str) -> str:
    """A text value, escaped for COPY (the common case needs no escaping and is not copied)."""
    if "\\" in value or "\t" in value or "\n" in value or "\r" in value:
        return value.translate(_COPY_ESCAPES)
    return value


def copy_optional_text(value: str | None) -> str:
    return NULL if value is None else copy_text(value)


def copy_decimal(value: Decimal | None) -> str:
    return NULL if value is None else str(value)


def copy_int(value: int | None) -> str:
    return NULL if value is None else str(value)


def copy_timestamp(value: datetime) -> str:
    return value.isoformat()


def array_literal(items) -> str:
    """`["a", 'b"c']` -> `{"a","b\\"c"}`: a PostgreSQL array literal of text.

    Also how batch-wide arrays travel as query parameters: one string is far cheaper
    for psycopg to send than a Python list it adapts element by element.
    """
    if not items:
        return "{}"
    joined = '","'.join(items)
    # Items without quotes or backslashes (nearly all) need no escaping: one join and two scans in C.
    if "\\" not in joined and joined.count('"') == 2 * (len(items) - 1):
        return '{"' + joined + '"}'
    quoted = []
    for item in items:
        if "\\" in item or '"' in item:
            item = item.replace("\\", "\\\\").replace('"', '\\"')
        quoted.append(item)
    return '{"' + '","'.join(quoted) + '"}' if quoted else "{}"


def bytea_array_literal(items) -> str:
    if not items:
        return "{}"
    return '{"\\\\x' + '","\\\\x'.join(map(bytes.hex, items)) + '"}'


def copy_text_array(items) -> str:
    """An array literal, escaped for COPY."""
    return copy_text(array_literal(items)) if items else "{}"
