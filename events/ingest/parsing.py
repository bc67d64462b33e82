"""Turning a request body into a list of raw events, or refusing the whole body."""
import json
from decimal import Decimal

import msgspec

from events.ingest.limits import MAX_BATCH, MAX_BODY_BYTES, MAX_INT_DIGITS, NonFinite, json_decoder


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
        document = json_decoder.decode(raw)
    except msgspec.DecodeError:
        document = parse_lenient(raw)
    except RecursionError:
        raise BodyError(400, "invalid_json", "The body is nested too deeply to parse.") from None
    if not isinstance(document, dict):
        raise BodyError(400, "invalid_request", "The body must be an event object or {\"events\": [...]}.")
    if "events" not in document:
        return [document], True
    events = document["events"]
    if len(document) > 1:
        extra = sorted(printable(key) for key in document if key != "events")
        raise BodyError(400, "invalid_request", f"A batch body holds only 'events'; unexpected {', '.join(extra)}.")
    if not isinstance(events, list):
        raise BodyError(400, "invalid_request", "'events' must be a list of event objects.")
    if not events:
        raise BodyError(400, "invalid_request", "'events' is empty: send 1 to 1000 events.")
    if len(events) > MAX_BATCH:
        raise BodyError(400, "invalid_request", f"'events' holds {len(events)} events; send at most 1000 per request.")
    return events, False


def parse_int(text: str):
    # Python will not convert a longer integer; as a Decimal it still reaches the
    # checks that reject its event alone ("too large") instead of the whole body.
    return int(text) if len(text) <= MAX_INT_DIGITS else Decimal(text)


def parse_lenient(raw: bytes):
    """The slow path for bodies msgspec refuses: NaN/Infinity literals, huge integers."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BodyError(400, "invalid_json", "The body is not UTF-8 encoded JSON.") from None
    try:
        return json.loads(text, parse_float=Decimal, parse_int=parse_int, parse_constant=NonFinite)
    except (ValueError, RecursionError) as error:
        raise BodyError(400, "invalid_json", f"The body is not valid JSON: {error}.") from None


def printable(text: str, limit: int = 64) -> str:
    """`text` cut to `limit` characters, unpaired surrogates escaped, safe to echo in a response."""
    return text[:limit].encode("utf-8", "backslashreplace").decode("utf-8")


