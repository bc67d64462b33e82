"""Realistic AI-cost events for the ingestion benchmark.

What a real customer's SDK sends: 8 providers and 30 models with list prices,
3 environments, 10,000 end users (a few heavy ones), 50 actions, 8 applications,
tags, trace ids, metadata with the well-known keys, and the messiness the default
taxonomy has to deal with: environment aliases (`prod`, `stg`, `dev`,
`Production`), provider aliases (`claude`, `bedrock`), metadata aliases
(`latency_ms`, `prompt_tokens`, `completion_tokens`), extra metadata keys, a few
non-slug tags, and events without `charge`, `traces`, `application` or `userId`.
Every event is accepted under the default taxonomy (flagged, never rejected).

Batches are built once as JSON bytes with a fixed-width placeholder for each
event id (`BodyTemplate`); `stamp()` splices in fresh random ids, so each request
carries new events without re-encoding 1000 events (about 0.2 ms for a 1000-event
body, outside the timed request).
"""
from __future__ import annotations

import os
import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import accumulate, chain

import msgspec

ID_PREFIX = "evt_"
ID_HEX = 32
ID_SLOT = "#" * ID_HEX  # stands for the random part of an id in a template

from events.demo import (ACTIONS, APPLICATIONS, BAD_TAGS, ENVIRONMENT_ALIASES, ENVIRONMENTS,  # noqa: E402
                         ERROR_TYPES, MODELS, PROVIDER_ALIASES, PROVIDER_WEIGHTS, REGIONS, TAGS)

USERS = 10_000

_encoder = msgspec.json.Encoder(decimal_format="number")
_Q10 = Decimal("0.0000000001")
_Q6 = Decimal("0.000001")
_MILLION = Decimal(1_000_000)


class EventGenerator:
    """Deterministic for a seed: the same seed gives the same events (ids aside)."""

    def __init__(self, seed: int, now: datetime | None = None):
        self.random = random.Random(seed)
        self.now = now or datetime.now(UTC)
        self.providers = list(PROVIDER_WEIGHTS)
        self.provider_weights = list(PROVIDER_WEIGHTS.values())
        self.env_names = [name for name, _ in ENVIRONMENTS]
        self.env_weights = [weight for _, weight in ENVIRONMENTS]
        self.app_names = [name for name, _ in APPLICATIONS]
        self.app_weights = [weight for _, weight in APPLICATIONS]
        # A few heavy users, a long tail: a Pareto-ish weight per user.
        rng = random.Random(seed ^ 0x5EED)
        self.user_cum_weights = list(accumulate(1.0 / (rank + 1) ** 0.8 for rank in range(USERS)))
        self.user_ids = [f"user_{n:05d}" for n in rng.sample(range(USERS), USERS)]
        self.prices = {model: (Decimal(pin), Decimal(pout)) for models in MODELS.values() for model, pin, pout in models}

    def event(self, event_id: str | None = None, timestamp: datetime | None = None) -> dict:
        r = self.random
        provider = r.choices(self.providers, self.provider_weights)[0]
        model = r.choice(MODELS[provider])[0]
        price_in, price_out = self.prices[model]
        embedding = price_out == 0
        input_tokens = int(r.lognormvariate(6.5, 1.0)) + 1
        output_tokens = 0 if embedding else int(r.lognormvariate(5.0, 0.9)) + 1
        status = "error" if r.random() < 0.03 else "success"
        if status == "error":
            output_tokens = 0
        cost = ((input_tokens * price_in + output_tokens * price_out) / _MILLION).quantize(_Q10)
        latency = int(r.lognormvariate(6.6, 0.7)) + (0 if embedding else output_tokens * 12)
        timestamp = timestamp or self.now - timedelta(seconds=r.random() * 300)

        environment = r.choices(self.env_names, self.env_weights)[0]
        if r.random() < 0.07:
            environment = r.choice(ENVIRONMENT_ALIASES[environment])
        provider_sent = r.choice(PROVIDER_ALIASES[provider]) if r.random() < 0.03 else provider

        event = {
            "id": event_id if event_id is not None else ID_PREFIX + "%032x" % r.getrandbits(128),
            "timestamp": timestamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{timestamp.microsecond // 1000:03d}Z",
            "cost": str(cost) if r.random() < 0.1 else cost,
            "environment": environment,
            "provider": provider_sent,
            "action": r.choice(ACTIONS),
        }
        roll = r.random()
        if roll < 0.85:  # what the customer was charged: a markup; 15% send no charge at all
            markup = Decimal(r.choice(["1.2", "1.5", "2", "2.5", "3"]))
            event["charge"] = (cost * markup).quantize(_Q6) if r.random() < 0.97 else 0
        elif roll < 0.88:
            event["charge"] = None
        if r.random() < 0.97:
            event["application"] = r.choices(self.app_names, self.app_weights)[0]
        if r.random() < 0.98:
            event["userId"] = r.choices(self.user_ids, cum_weights=self.user_cum_weights)[0]
        if r.random() < 0.9:
            event["traces"] = ["%032x" % r.getrandbits(128) for _ in range(r.choice((1, 1, 1, 2, 3)))]
        tag_count = r.choice((0, 0, 1, 1, 2, 3))
        if tag_count:
            tags = r.sample(TAGS, tag_count)
            if r.random() < 0.02:
                tags[0] = r.choice(BAD_TAGS)
            event["tags"] = tags
        event["metadata"] = self._metadata(model, latency, input_tokens, output_tokens, status)
        return event

    def _metadata(self, model: str, latency: int, input_tokens: int, output_tokens: int, status: str) -> dict:
        r = self.random
        metadata = {"model": model}
        roll = r.random()
        if roll < 0.05:  # an older SDK: snake_case names, normalized by the taxonomy
            metadata.update({"latency_ms": latency, "input_tokens": input_tokens, "output_tokens": output_tokens})
        elif roll < 0.08:  # OpenAI's own names
            metadata.update({"latencyMs": latency, "prompt_tokens": input_tokens, "completion_tokens": output_tokens})
        else:
            metadata.update({"latencyMs": latency, "inputTokens": input_tokens, "outputTokens": output_tokens})
        metadata["status"] = status
        if status == "error":
            metadata["errorType"] = r.choice(ERROR_TYPES)
        if r.random() < 0.3:
            metadata["region"] = r.choice(REGIONS)
        if r.random() < 0.2:
            metadata["temperature"] = Decimal(r.choice(["0", "0.2", "0.7", "1"]))
        if r.random() < 0.1:
            metadata["prompt"] = {"template": f"{r.choice(ACTIONS)}_v{r.randint(1, 9)}", "version": r.randint(1, 40)}
        if r.random() < 0.005:
            metadata["latncyMs"] = latency  # a typo of a registered key: flagged as "looks like latencyMs"
        return metadata

    def batch(self, size: int, *, placeholder_ids: bool = False) -> list[dict]:
        slot = ID_PREFIX + ID_SLOT if placeholder_ids else None
        return [self.event(slot) for _ in range(size)]


class BodyTemplate:
    """A `{"events": [...]}` body with a slot for each event id."""

    __slots__ = ("segments", "count", "size")

    def __init__(self, events: list[dict]):
        body = _encoder.encode({"events": events})
        self.segments = body.split(ID_SLOT.encode())
        self.count = len(self.segments) - 1
        self.size = len(body)
        if self.count != len(events):
            raise ValueError("every event needs exactly one id slot")

    def stamp(self) -> bytes:
        """The body with fresh random ids (uuid4-like: random positions in the key index)."""
        hexed = os.urandom(16 * self.count).hex().encode()
        ids = [hexed[i:i + ID_HEX] for i in range(0, len(hexed), ID_HEX)]
        segments = self.segments
        return segments[0] + b"".join(chain.from_iterable(zip(ids, segments[1:])))


def body_templates(seed: int, count: int, size: int, now: datetime | None = None) -> list[BodyTemplate]:
    generator = EventGenerator(seed, now)
    return [BodyTemplate(generator.batch(size, placeholder_ids=True)) for _ in range(count)]
