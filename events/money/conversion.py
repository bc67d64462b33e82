"""Exchange rates in force at a moment, and the one conversion every writer uses.

Ingestion converts each event in Python; the conversion task converts pending
events in SQL. Both round the product to numeric(38, 18)'s 18 places half away
from zero (PostgreSQL's `round()`, and `ROUND_HALF_UP` on amounts >= 0), so an
event converted late carries exactly the amounts it would have had on time.
"""
import threading
from bisect import bisect_right
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal

from koala.money import EXACT
from organizations.models import ExchangeRate, Organization

SMALLEST_UNIT = Decimal(1).scaleb(-18)
# numeric(38, 18) holds 20 digits before the point.
LIMIT = Decimal(10) ** 20
UNCONVERTED_FLAG = "currency.unconverted"


class ConversionOverflow(ValueError):
    """The converted amount does not fit numeric(38, 18)."""


def convert_amount(amount: Decimal | None, rate: Decimal) -> Decimal | None:
    """`amount` x `rate`, exact, rounded half up to 18 places; raises ConversionOverflow."""
    if amount is None:
        return None
    converted = EXACT.multiply(amount, rate).quantize(SMALLEST_UNIT, rounding=ROUND_HALF_UP, context=EXACT)
    if converted >= LIMIT:
        raise ConversionOverflow(f"{amount} x {rate}")
    return converted


def no_rate_message(base: str, quote: str, when: datetime) -> str:
    return f"no exchange rate for {base} -> {quote} at {when.isoformat().replace('+00:00', 'Z')}"


@dataclass
class RateTable:
    """An organization's rates into its reporting currency, by base currency."""

    quote: str
    # {base: ([valid_from, ...] ascending, [rate, ...])}
    by_base: dict[str, tuple[list[datetime], list[Decimal]]] = field(default_factory=dict)

    def rate_at(self, base: str, when: datetime) -> Decimal | None:
        """The rate whose `valid_from` is the latest at or before `when` (not the latest overall)."""
        if base == self.quote:
            return Decimal(1)
        entry = self.by_base.get(base)
        if entry is None:
            return None
        starts, rates = entry
        position = bisect_right(starts, when)
        return rates[position - 1] if position else None


def rate_table_load(*, organization: Organization) -> RateTable:
    """Straight from the database (services use this; the hot path uses `rate_table_compiled`)."""
    table = RateTable(quote=organization.reporting_currency)
    rows = (ExchangeRate.objects.filter(organization=organization, quote=organization.reporting_currency)
            .order_by("base", "valid_from").values_list("base", "valid_from", "rate"))
    for base, valid_from, rate in rows:
        starts, rates = table.by_base.setdefault(base, ([], []))
        starts.append(valid_from)
        rates.append(rate)
    return table


# {organization id: (money version, table)}, like events.selectors.taxonomy_compiled:
# the version arrives with the API key lookup, so a change shows on the next request.
_cache: dict[int, tuple[int, RateTable]] = {}
_lock = threading.Lock()


def rate_table_compiled(*, organization: Organization) -> RateTable:
    cached = _cache.get(organization.pk)
    if cached is not None and cached[0] == organization.money_version and \
            cached[1].quote == organization.reporting_currency:
        return cached[1]
    with _lock:
        table = rate_table_load(organization=organization)
        _cache[organization.pk] = (organization.money_version, table)
    return table


@dataclass(frozen=True)
class Reporting:
    cost: Decimal | None
    charge: Decimal | None
    rate: Decimal | None  # None when the currency is the reporting one, or no rate is known

    @property
    def converted(self) -> bool:
        return self.cost is not None


def reporting_amounts(*, cost: Decimal, charge: Decimal | None, currency: str, table: RateTable,
                      when: datetime) -> Reporting:
    """The amounts reports sum; unconverted (cost None) when no rate is in force at `when`.

    Raises ConversionOverflow when a converted amount would not fit the column.
    """
    if currency == table.quote:
        return Reporting(cost, charge, None)
    rate = table.rate_at(currency, when)
    if rate is None:
        return Reporting(None, None, None)
    return Reporting(convert_amount(cost, rate), convert_amount(charge, rate), rate)
