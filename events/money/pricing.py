"""The price of a call from its model and token counts.

An organization's own prices (`organizations.ModelPrice`, managed in the admin)
beat the genai-prices catalog, which ships its data and works offline. Both are
looked up at the event's timestamp: a price holds from its `valid_from` until the
next price of the same model. Amounts are exact Decimals rounded to the 18 places
the event table keeps.
"""
import fnmatch
import re
import threading
from bisect import bisect_right
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from importlib.metadata import version

import genai_prices
from genai_prices import data_snapshot

from events.money.conversion import ConversionOverflow, convert_amount, no_rate_message
from koala.money import EXACT
from organizations.models import ModelPrice, Organization

SMALLEST_UNIT = Decimal(1).scaleb(-18)
MILLION = Decimal(1_000_000)
CATALOG_VERSION = version("genai-prices")
# Metadata keys of the token counts (inputTokens includes the cached ones, as
# providers report it); the cache keys are optional.
CACHE_READ_KEY, CACHE_WRITE_KEY = "cacheReadTokens", "cacheWriteTokens"
# Our canonical provider names that the catalog spells differently.
CATALOG_PROVIDER_IDS = {"xai": "x-ai"}


class UsageProblem(ValueError):
    """Token counts that cannot be priced; the message names the metadata key."""

    def __init__(self, key: str, message: str):
        super().__init__(message)
        self.key, self.message = key, message


@dataclass(frozen=True)
class Usage:
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0


def _count(metadata: dict, key: str) -> int:
    value = metadata.get(key)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise UsageProblem(key, "must be a whole number of tokens >= 0 to compute the cost")
    if value >= 2**63:
        raise UsageProblem(key, "is too large")
    return value


def usage_from_metadata(metadata: dict) -> tuple[str, Usage] | None:
    """(model, usage) when `metadata` can be priced: a model and at least one token count.

    None when it cannot (no model, or no count); raises UsageProblem for bad counts.
    """
    model = metadata.get("model")
    if not isinstance(model, str) or not model or ("inputTokens" not in metadata and "outputTokens" not in metadata):
        return None
    usage = Usage(_count(metadata, "inputTokens"), _count(metadata, "outputTokens"),
                  _count(metadata, CACHE_READ_KEY), _count(metadata, CACHE_WRITE_KEY))
    if usage.cache_read_tokens + usage.cache_write_tokens > usage.input_tokens:
        raise UsageProblem(CACHE_READ_KEY if usage.cache_read_tokens else CACHE_WRITE_KEY,
                           "counts more cached tokens than inputTokens, which includes them")
    return model, usage


@dataclass(frozen=True)
class Price:
    amount: Decimal
    currency: str
    ref: str  # what the event records: which price produced its cost


def _exact(amount: Decimal) -> Decimal:
    return amount.quantize(SMALLEST_UNIT, rounding=ROUND_HALF_UP, context=EXACT)


def override_amount(row: ModelPrice, usage: Usage) -> Decimal:
    cache_read = row.cache_read_per_million if row.cache_read_per_million is not None else row.input_per_million
    cache_write = row.cache_write_per_million if row.cache_write_per_million is not None else row.input_per_million
    plain_input = usage.input_tokens - usage.cache_read_tokens - usage.cache_write_tokens
    total = EXACT.add(EXACT.add(EXACT.multiply(plain_input, row.input_per_million),
                                EXACT.multiply(usage.cache_read_tokens, cache_read)),
                      EXACT.add(EXACT.multiply(usage.cache_write_tokens, cache_write),
                                EXACT.multiply(usage.output_tokens, row.output_per_million)))
    return _exact(EXACT.divide(total, MILLION))


def catalog_price(*, provider: str | None, model: str, usage: Usage, when: datetime) -> Price | None:
    """The genai-prices price, or None when the catalog does not know the model.

    A provider the catalog does not know (self_hosted, a reseller) is left for the
    catalog to infer from the model name; a known provider is held to its own models.
    """
    provider_id = CATALOG_PROVIDER_IDS.get(provider, provider) if provider else None
    snapshot = data_snapshot.get_snapshot()
    if provider_id is not None:
        try:
            snapshot.find_provider(None, provider_id, None)
        except LookupError:
            provider_id = None
    try:
        catalog_provider, catalog_model = snapshot.find_provider_model(model, None, provider_id, None)
        model_price = catalog_model.get_prices(when)
        coefficients = _linear_coefficients(model_price)
        if coefficients is not None:
            amount = _linear_amount(coefficients, usage)
        else:
            amount = catalog_model.calc_price(_catalog_usage(usage), catalog_provider,
                                              genai_request_timestamp=when).total_price
    except (LookupError, ValueError, ArithmeticError):
        return None
    ref = f"genai-prices {CATALOG_VERSION}: {catalog_provider.id}/{catalog_model.id}"
    return Price(_exact(amount), "USD", ref[:200])


def _catalog_usage(usage: Usage) -> genai_prices.Usage:
    return genai_prices.Usage(input_tokens=usage.input_tokens, output_tokens=usage.output_tokens,
                              cache_read_tokens=usage.cache_read_tokens or None,
                              cache_write_tokens=usage.cache_write_tokens or None)


# The catalog's own calculation costs ~200 us (it decomposes the usage into units on
# every call). For the usual price (per-token prices, no tiers) it is linear in the
# four counts we send, so its coefficients are read from the catalog once per price
# and checked against it at a sample point; anything else takes the catalog's path.
_LINEAR_KEYS = frozenset({"input_mtok", "output_mtok", "cache_read_mtok", "cache_write_mtok",
                          "web_searches_kcount", "storage_searches_kcount"})  # searches: we never send any
_linear_cache: dict[int, tuple[object, tuple | None]] = {}


def _linear_coefficients(model_price) -> tuple | None:
    cached = _linear_cache.get(id(model_price))
    if cached is not None and cached[0] is model_price:
        return cached[1]
    coefficients = None
    if all(isinstance(value, Decimal) for value in model_price.__dict__.values() if value is not None) and \
            {key for key, value in model_price.__dict__.items() if value is not None} <= _LINEAR_KEYS:
        def catalog(usage: Usage) -> Decimal:
            return model_price.calc_price(_catalog_usage(usage))["total_price"]

        base = catalog(Usage(0, 0))
        per_million = (catalog(Usage(1_000_000, 0)) - base, catalog(Usage(0, 1_000_000)) - base,
                       catalog(Usage(1_000_000, 0, 1_000_000, 0)) - base,
                       catalog(Usage(1_000_000, 0, 0, 1_000_000)) - base)
        candidate = (base, *per_million)
        sample = Usage(987_654, 12_345, 4_321, 1_234)
        if _linear_amount(candidate, sample) == catalog(sample):
            coefficients = candidate
    _linear_cache[id(model_price)] = (model_price, coefficients)
    return coefficients


def _linear_amount(coefficients: tuple, usage: Usage) -> Decimal:
    base, fresh_input, output, cache_read, cache_write = coefficients
    plain_input = usage.input_tokens - usage.cache_read_tokens - usage.cache_write_tokens
    total = EXACT.add(EXACT.add(EXACT.multiply(plain_input, fresh_input), EXACT.multiply(usage.output_tokens, output)),
                      EXACT.add(EXACT.multiply(usage.cache_read_tokens, cache_read),
                                EXACT.multiply(usage.cache_write_tokens, cache_write)))
    return EXACT.add(base, EXACT.divide(total, MILLION))


@dataclass
class _Group:
    """The prices of one (provider, model or pattern), oldest first."""

    provider: str
    model: str
    matcher: re.Pattern
    specificity: tuple
    starts: list[datetime] = field(default_factory=list)
    rows: list[ModelPrice] = field(default_factory=list)

    def at(self, when: datetime) -> ModelPrice | None:
        position = bisect_right(self.starts, when)
        return self.rows[position - 1] if position else None


@dataclass
class PriceBook:
    """An organization's prices, compiled: overrides by specificity, then the catalog."""

    groups: list[_Group]
    # {(provider, model lower-cased): [groups that match, most specific first]}
    _matches: dict = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _groups_for(self, provider: str | None, model: str) -> list[_Group]:
        key = (provider or "", model.lower())
        found = self._matches.get(key)
        if found is None:
            found = [group for group in self.groups
                     if group.provider in ("", key[0]) and group.matcher.fullmatch(key[1])]
            with self._lock:
                self._matches[key] = found
        return found

    def price(self, *, provider: str | None, model: str, usage: Usage, when: datetime) -> Price | None:
        for group in self._groups_for(provider, model):
            row = group.at(when)
            if row is not None:
                ref = f"override #{row.pk}: {row.provider or '*'}/{row.model} from {row.valid_from.isoformat()}"
                return Price(override_amount(row, usage), row.currency, ref[:200])
        return catalog_price(provider=provider, model=model, usage=usage, when=when)


def _specificity(provider: str, model: str) -> tuple:
    # Exact names beat patterns, a named provider beats "any", longer literals beat shorter.
    wildcard = "*" in model or "?" in model
    literal = len(model.replace("*", "").replace("?", ""))
    return (wildcard, provider == "", -literal)


def price_book_load(*, organization: Organization) -> PriceBook:
    groups: dict[tuple[str, str], _Group] = {}
    for row in ModelPrice.objects.filter(organization=organization).order_by("valid_from", "pk"):
        key = (row.provider.lower(), row.model.lower())
        group = groups.get(key)
        if group is None:
            group = groups[key] = _Group(key[0], key[1], re.compile(fnmatch.translate(key[1]), re.DOTALL),
                                         _specificity(*key))
        group.starts.append(row.valid_from)
        group.rows.append(row)
    return PriceBook(sorted(groups.values(), key=lambda group: group.specificity))


_cache: dict[int, tuple[int, PriceBook]] = {}
_cache_lock = threading.Lock()


def price_book_compiled(*, organization: Organization) -> PriceBook:
    """The organization's prices, rebuilt only when its money version changed."""
    cached = _cache.get(organization.pk)
    if cached is not None and cached[0] == organization.money_version:
        return cached[1]
    with _cache_lock:
        book = price_book_load(organization=organization)
        _cache[organization.pk] = (organization.money_version, book)
    return book


def cost_in_currency(*, price: Price, currency: str, table, when: datetime) -> Decimal:
    """The computed cost in the event's currency (cost and charge share one currency).

    Direct when the price is in that currency; through the rate in force at `when`
    when the event is in the reporting currency. Raises UsageProblem otherwise.
    """
    if price.currency == currency:
        return price.amount
    if currency == table.quote:
        rate = table.rate_at(price.currency, when)
        if rate is not None:
            try:
                return convert_amount(price.amount, rate)
            except ConversionOverflow:
                raise UsageProblem("cost", "computed from tokens, is too large once converted") from None
        raise UsageProblem("cost", f"cannot be computed in {currency}: the price is in {price.currency} and there "
                                   f"is {no_rate_message(price.currency, currency, when)}; add that rate in the "
                                   "admin, or send cost")
    raise UsageProblem("cost", f"cannot be computed in {currency}: the price is in {price.currency}; send cost, or "
                               f"send the event in {price.currency} or {table.quote}")
