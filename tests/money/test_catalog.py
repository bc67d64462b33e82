"""The catalog lookup agrees with genai-prices itself for every model it lists (our
shortcut for linear prices included), at 18 places."""
import random
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal

import genai_prices
from genai_prices.data import providers

from events.money.pricing import Usage, catalog_price

WHEN = datetime(2026, 11, 10, 12, tzinfo=UTC)


def test_every_catalog_model_is_priced_as_genai_prices_prices_it():
    rng = random.Random(6)
    compared = 0
    for provider in providers:
        for model in provider.models:
            input_tokens = rng.randint(0, 400_000)
            cache_read, cache_write = rng.randint(0, input_tokens // 2), rng.randint(0, input_tokens // 4)
            output_tokens = rng.randint(0, 60_000)
            try:
                expected = genai_prices.calc_price(
                    genai_prices.Usage(input_tokens=input_tokens, output_tokens=output_tokens,
                                       cache_read_tokens=cache_read or None, cache_write_tokens=cache_write or None),
                    model.id, provider_id=provider.id, genai_request_timestamp=WHEN).total_price
            except (LookupError, ValueError):
                expected = None
            price = catalog_price(provider=provider.id, model=model.id,
                                  usage=Usage(input_tokens, output_tokens, cache_read, cache_write), when=WHEN)
            if expected is None:
                assert price is None, (provider.id, model.id)
                continue
            assert price is not None, (provider.id, model.id)
            assert price.amount == expected.quantize(Decimal("1e-18"), rounding=ROUND_HALF_UP), (provider.id, model.id)
            assert price.currency == "USD" and price.ref.endswith(f"/{model.id}")
            compared += 1
    assert compared > 1000


def test_an_unknown_model_has_no_catalog_price():
    assert catalog_price(provider="openai", model="gpt-koala-9", usage=Usage(10, 10), when=WHEN) is None
    assert catalog_price(provider=None, model="koala-llm-7b", usage=Usage(10, 10), when=WHEN) is None
