"""Micro-benchmark of CompiledTaxonomy.check(): `python -m events.taxonomy`."""
from __future__ import annotations

import random
import time
from decimal import Decimal


def _bench(n: int = 100_000) -> float:
    """Prints and returns microseconds per event over `n` realistic events
    (mostly clean, some aliases, bad actions, unknown metadata keys)."""
    from events.taxonomy import DEFAULT_TAXONOMY, compile_taxonomy

    taxonomy = compile_taxonomy(DEFAULT_TAXONOMY)
    rng = random.Random(7)
    environments = ["production"] * 8 + ["prod", "staging", "dev"]
    providers = ["openai"] * 5 + ["anthropic", "google", "azure-openai", "Bedrock", "acme"]
    actions = ["completion"] * 5 + ["invoice_previewed", "summarize", "handleInvoicePreview()"]
    events = []
    for i in range(n):
        metadata = {"model": "gpt-4o-mini", "latencyMs": rng.randrange(2000), "inputTokens": rng.randrange(4000),
                    "outputTokens": rng.randrange(800), "status": "success"}
        if i % 10 == 0:
            metadata["prompt_tokens"] = metadata.pop("inputTokens")
        if i % 25 == 0:
            metadata["latencyMS"] = 1
        events.append({
            "environment": rng.choice(environments), "provider": rng.choice(providers),
            "application": "assistant", "action": rng.choice(actions), "userId": f"user_{i % 500}",
            "charge": Decimal("0.002") if i % 4 else None, "traces": [f"trace_{i}"],
            "tags": ["premium", "eu"] if i % 3 else [], "metadata": metadata,
        })
    check = taxonomy.check
    for event in events[:1000]:  # warm the caches, as a long-running worker has them
        check(event)
    start = time.perf_counter()
    for event in events:
        check(event)
    per_event = (time.perf_counter() - start) / n * 1e6
    print(f"{per_event:.2f} us/event over {n} events")
    return per_event


if __name__ == "__main__":
    _bench()
