"""Sending events and setting rates and prices for the money tests."""
from datetime import UTC, datetime
from decimal import Decimal

import msgspec

from events.models import Event
from events.money.services import money_touch
from organizations.models import ExchangeRate, ModelPrice, Organization

EVENTS = "/api/v1/events"
_encode = msgspec.json.Encoder(decimal_format="number").encode


def send(client, *events):
    response = client.post(EVENTS, data=_encode({"events": list(events)}), content_type="application/json")
    assert response.status_code in (200, 207), response.content[:1000]
    return response.json()


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def add_rate(organization: Organization, base: str, rate: str, valid_from: str) -> ExchangeRate:
    """A rate as the admin saves it (the version bump included, so ingestion sees it)."""
    row = ExchangeRate.objects.create(organization=organization, base=base, quote=organization.reporting_currency,
                                      rate=Decimal(rate), valid_from=at(valid_from))
    money_touch(organization=organization)
    return row


def add_price(organization: Organization, model: str, input_price: str, output_price: str, *,
              provider: str = "openai", valid_from: str = "2020-01-01T00:00:00Z", currency: str = "USD",
              cache_read: str | None = None) -> ModelPrice:
    row = ModelPrice.objects.create(
        organization=organization, provider=provider, model=model, currency=currency,
        input_per_million=Decimal(input_price), output_per_million=Decimal(output_price),
        cache_read_per_million=Decimal(cache_read) if cache_read is not None else None, valid_from=at(valid_from))
    money_touch(organization=organization)
    return row


def stored(organization: Organization, client_id: str) -> Event:
    return Event.objects.get(organization=organization, client_id=client_id)
