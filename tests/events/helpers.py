"""Events for tests."""
import uuid
from datetime import UTC, datetime, timedelta


def an_event(*, keep_nulls: bool = False, **fields) -> dict:
    """A valid event the default taxonomy accepts without a warning, with `fields` over it.

    A field given as None is left out, unless `keep_nulls` sends it as JSON null.
    """
    event = {
        "id": f"evt_{uuid.uuid4().hex[:16]}",
        "timestamp": (datetime.now(UTC) - timedelta(hours=1)).isoformat(),
        "cost": "0.0012", "charge": "0.002", "environment": "production", "provider": "openai",
        "application": "assistant", "action": "completion", "userId": "user_1", "traces": ["trace_1"],
        "metadata": {"model": "gpt-4o-mini"},
    }
    event.update(fields)
    if keep_nulls:
        return event
    return {name: value for name, value in event.items() if value is not None}
