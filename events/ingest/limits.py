"""What the contract allows in an event and a request, and the encoders that measure it."""
from datetime import timedelta
from decimal import Context, Decimal

import msgspec

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
EXACT = Context(prec=MAX_INTEGER_DIGITS + MAX_FRACTION_DIGITS + 2)
SMALLEST_UNIT = Decimal(1).scaleb(-MAX_FRACTION_DIGITS)
# Metadata numbers are stored in jsonb, whose numeric overflows past ~1e131072, and
# would be rendered digit by digit on the way out: 1e100000 is 9 bytes in, 100 KB out.
MAX_METADATA_EXPONENT = 1000
# Python refuses to convert integers longer than this from text (CVE-2020-10735).
MAX_INT_DIGITS = 4300

EVENT_FIELDS = frozenset({
    "id", "timestamp", "project", "cost", "charge", "currency", "environment", "provider", "application",
    "action", "userId", "tags", "traces", "metadata",
})
# `received_at` is left to the column's default, the transaction's start (see events
# migration 0003): the rollup fold depends on it.
COPY_COLUMNS = (
    "organization_id", "project_id", "client_id", "timestamp", "cost", "charge", "currency",
    "cost_reporting", "charge_reporting", "environment", "provider", "application", "action", "user_id", "tags",
    "traces", "metadata", "model", "latency_ms", "input_tokens", "output_tokens", "status", "error_type", "flags",
    "exchange_rate", "cost_source", "price_ref",
)

json_decoder = msgspec.json.Decoder(float_hook=Decimal)
# Decimals go out as JSON numbers, so stored metadata keeps the types the client sent.
json_encoder = msgspec.json.Encoder(decimal_format="number")
sorted_json_encoder = msgspec.json.Encoder(decimal_format="number", order="sorted")


def nonfinite_as_text(value):
    if isinstance(value, NonFinite):
        return value.text
    raise NotImplementedError


# Measures an event as sent, NaN and all, before anything else looks at it.
sizing_encoder = msgspec.json.Encoder(decimal_format="number", enc_hook=nonfinite_as_text)


class NonFinite:
    """Stands for NaN or Infinity, which JSON cannot carry but some clients send."""

    __slots__ = ("text",)

    def __init__(self, text: str):
        self.text = text


