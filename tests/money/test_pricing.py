"""Costs computed from tokens: the genai-prices catalog, the organization's own prices
before it, at the event's timestamp; no price known rejects with a way out."""
from datetime import UTC, datetime
from decimal import Decimal

import genai_prices
import pytest

from tests.events.helpers import an_event
from tests.factories import make_api_key, make_organization, make_project
from tests.money.helpers import EVENTS, add_price, add_rate, send, stored

WHEN = "2026-11-10T12:00:00Z"


def tokens_event(event_id: str, model: str, provider: str = "openai", *, timestamp: str = WHEN, **metadata) -> dict:
    metadata = {"model": model, "inputTokens": 1000, "outputTokens": 500, **metadata}
    return an_event(id=event_id, cost=None, provider=provider, timestamp=timestamp, metadata=metadata)


def catalog(model: str, provider: str, **usage) -> Decimal:
    """The oracle: the catalog asked directly, as a user of genai-prices would."""
    usage = {"input_tokens": 1000, "output_tokens": 500, **usage}
    return genai_prices.calc_price(genai_prices.Usage(**usage), model, provider_id=provider,
                                   genai_request_timestamp=datetime(2026, 11, 10, 12, tzinfo=UTC)).total_price


@pytest.mark.parametrize(("provider", "catalog_provider", "model"), [
    ("openai", "openai", "gpt-4o-mini"), ("openai", "openai", "gpt-4.1-mini"),
    ("anthropic", "anthropic", "claude-sonnet-4-5"), ("google", "google", "gemini-2.5-flash"),
    ("mistral", "mistral", "mistral-large-latest"), ("xai", "x-ai", "grok-3"),
    ("deepseek", "deepseek", "deepseek-chat"), ("groq", "groq", "llama-3.3-70b-versatile"),
])
def test_a_cost_is_computed_from_the_catalog_for_provider_model_pairs(api_as, ingest_key, organization, provider,
                                                                       catalog_provider, model):
    body = send(api_as(ingest_key), tokens_event("e", model, provider))
    assert (body["accepted"], body["rejected"]) == (1, 0), body
    row = stored(organization, "e")
    expected = catalog(model, catalog_provider)
    assert expected > 0
    assert (row.cost, row.cost_reporting, row.cost_source) == (expected, expected, "computed")
    assert row.price_ref.startswith(f"genai-prices {genai_prices.__version__}: {catalog_provider}/")


def test_the_catalog_price_counts_cached_input_tokens_at_their_own_price(api_as, ingest_key, organization, read_key):
    send(api_as(ingest_key), tokens_event("cached", "gpt-4o-mini", cacheReadTokens=800),
         tokens_event("plain", "gpt-4o-mini"))
    cached, plain = stored(organization, "cached"), stored(organization, "plain")
    assert cached.cost == catalog("gpt-4o-mini", "openai", cache_read_tokens=800)
    assert cached.cost < plain.cost  # cache reads are cheaper than fresh input
    [listed_cached, listed_plain] = sorted(api_as(read_key).get(EVENTS).json()["results"], key=lambda r: r["id"])
    assert (listed_cached["cost_source"], listed_cached["price_ref"]) == ("computed", cached.price_ref)


def test_an_override_beats_the_catalog_from_its_valid_from_on(api_as, ingest_key, organization):
    add_price(organization, "gpt-4o-mini", "1", "2", valid_from="2026-11-10T00:00:00Z", cache_read="0.5")
    body = send(api_as(ingest_key),
                tokens_event("before", "gpt-4o-mini", timestamp="2026-11-09T23:59:59Z"),
                tokens_event("from", "gpt-4o-mini", timestamp="2026-11-10T00:00:00Z"),
                tokens_event("cached", "gpt-4o-mini", cacheReadTokens=400))
    assert body["accepted"] == 3
    before = stored(organization, "before")
    assert before.price_ref.startswith("genai-prices")
    # (1000 x 1 + 500 x 2) / 1e6, and (600 x 1 + 400 x 0.5 + 500 x 2) / 1e6
    assert stored(organization, "from").cost == Decimal("0.002")
    assert stored(organization, "from").price_ref.startswith("override #")
    assert stored(organization, "cached").cost == Decimal("0.0018")


def test_the_most_specific_override_wins(api_as, ingest_key, organization):
    add_price(organization, "gpt-4o*", "3", "3", provider="")  # any provider, a pattern
    add_price(organization, "gpt-4o*", "2", "2")  # openai, the same pattern
    add_price(organization, "gpt-4o-mini", "1", "1", provider="")  # an exact name beats both patterns
    send(api_as(ingest_key), tokens_event("exact", "GPT-4o-mini"), tokens_event("pattern", "gpt-4o-2024-08-06"),
         tokens_event("any", "gpt-4o-2024-08-06", provider="azure"), tokens_event("catalog", "gpt-4.1-mini"))
    assert stored(organization, "exact").cost == Decimal("0.0015")
    assert stored(organization, "pattern").cost == Decimal("0.003")
    assert stored(organization, "any").cost == Decimal("0.0045")
    assert stored(organization, "catalog").cost == catalog("gpt-4.1-mini", "openai")


def test_no_cost_and_no_price_known_is_rejected_naming_the_model(api_as, ingest_key, organization):
    response = api_as(ingest_key).post(EVENTS, data=tokens_event("x", "koala-llm-7b", "self_hosted"),
                                       content_type="application/json")
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "invalid"
    [message] = error["details"]["fields"]["cost"]
    assert "'koala-llm-7b' of provider 'self_hosted'" in message
    assert "send cost, or add the model's price in the admin (Organizations > Model prices)" in message
    # Once the organization prices it, the same event is accepted.
    add_price(organization, "koala-llm-*", "0.1", "0.2", provider="self_hosted")
    body = send(api_as(ingest_key), tokens_event("x", "koala-llm-7b", "self_hosted"))
    assert body["accepted"] == 1 and stored(organization, "x").cost == Decimal("0.0002")


@pytest.mark.parametrize(("metadata", "field", "message"), [
    ({"model": "gpt-4o-mini"}, "cost", "is required"),
    ({"inputTokens": 10}, "cost", "is required"),
    ({"model": "gpt-4o-mini", "inputTokens": 10, "cacheReadTokens": 11}, "metadata.cacheReadTokens",
     "more cached tokens than inputTokens"),
    ({"model": "gpt-4o-mini", "inputTokens": 10, "cacheWriteTokens": "5"}, "metadata.cacheWriteTokens",
     "whole number of tokens"),
])
def test_what_cannot_be_priced_is_rejected(api_as, ingest_key, organization, metadata, field, message):
    body = send(api_as(ingest_key), an_event(id="bad", cost=None, metadata=metadata), an_event(id="good"))
    assert (body["accepted"], body["rejected"]) == (1, 1)
    [error] = body["errors"]
    assert list(error["fields"]) == [field] and message in error["fields"][field][0]


def test_a_retry_after_a_price_change_is_a_duplicate_not_a_conflict(api_as, ingest_key, organization):
    event = tokens_event("retried", "gpt-4o-mini")
    send(api_as(ingest_key), event)
    add_price(organization, "gpt-4o-mini", "9", "9")
    body = send(api_as(ingest_key), event)
    assert (body["accepted"], body["duplicates"], body["rejected"]) == (0, 1, 0)
    assert stored(organization, "retried").cost == catalog("gpt-4o-mini", "openai")


def test_a_price_in_another_currency_needs_a_rate_into_the_events_currency(api_as, db):
    organization = make_organization(currency="EUR")
    key = make_api_key(organization=organization, project=make_project(organization=organization), scopes="ingest")
    body = send(api_as(key), tokens_event("early", "gpt-4o-mini"))
    assert body["rejected"] == 1
    assert body["errors"][0]["fields"]["cost"] == [
        "cannot be computed in EUR: the price is in USD and there is no exchange rate for USD -> EUR at "
        "2026-11-10T12:00:00Z; add that rate in the admin, or send cost"]
    add_rate(organization, "USD", "0.9", "2026-01-01T00:00:00Z")
    send(api_as(key), tokens_event("later", "gpt-4o-mini"))
    row = stored(organization, "later")
    expected = catalog("gpt-4o-mini", "openai") * Decimal("0.9")
    assert (row.currency, row.cost, row.cost_reporting) == ("EUR", expected, expected)


def test_one_organizations_prices_never_apply_to_another(api_as, ingest_key, organization, other_organization):
    add_price(other_organization, "gpt-4o-mini", "100", "100")
    add_price(other_organization, "koala-llm-7b", "1", "1", provider="self_hosted")
    body = send(api_as(ingest_key), tokens_event("mine", "gpt-4o-mini"),
                tokens_event("unknown", "koala-llm-7b", "self_hosted"))
    assert (body["accepted"], body["rejected"]) == (1, 1)
    assert stored(organization, "mine").cost == catalog("gpt-4o-mini", "openai")
    other_key = make_api_key(organization=other_organization,
                             project=make_project(organization=other_organization), scopes="ingest")
    send(api_as(other_key), tokens_event("theirs", "gpt-4o-mini"))
    assert stored(other_organization, "theirs").cost == Decimal("0.15")
