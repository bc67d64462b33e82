"""The report metrics: the aggregate parts each is computed from, how its value is
finished in Python from those parts, and how it is ordered in SQL.

A *part* is an aggregate a `Source` knows how to compute (`count`, `cost`,
`latency_sum`...). Ratios are finished from exact parts in Python, so amounts stay
exact decimals until the one division.
"""
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

INTEGER = "integer"
MONEY = "money"  # rendered as an exact decimal string
NUMBER = "number"  # rendered as a JSON number, null where undefined


@dataclass(frozen=True)
class Metric:
    name: str
    kind: str
    parts: tuple[str, ...]
    finish: Callable
    # SQL over the parts' columns ({part} placeholders), used for order_by.
    order: str


def _same(value):
    return value


def _margin_pct(margin: Decimal, charge: Decimal) -> float | None:
    # Charges are >= 0, so a zero sum means no charge at all or only zero charges.
    return float(margin / charge * 100) if charge else None


def _rate(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _average(total, count: int) -> float | None:
    return float(total) / count if count else None


def _float_or_none(value) -> float | None:
    return None if value is None else float(value)


def _single(name: str, kind: str, part: str | None = None) -> Metric:
    part = part or name
    finish = _float_or_none if kind == NUMBER else _same
    return Metric(name, kind, (part,), finish, "{%s}" % part)


METRICS: dict[str, Metric] = {metric.name: metric for metric in (
    _single("count", INTEGER),
    _single("cost", MONEY),
    _single("charge", MONEY),
    _single("margin", MONEY),
    Metric("margin_pct", NUMBER, ("margin", "charge"), _margin_pct, "({margin} / NULLIF({charge}, 0)) * 100"),
    _single("uncharged_count", INTEGER),
    _single("uncharged_cost", MONEY),
    _single("error_count", INTEGER),
    # A fraction from 0 to 1 (not a percentage); float8 division matches Python's exactly.
    Metric("error_rate", NUMBER, ("error_count", "count"), _rate, "{error_count}::float8 / NULLIF({count}, 0)"),
    Metric("latency_avg", NUMBER, ("latency_sum", "latency_count"), _average,
           "{latency_sum}::float8 / NULLIF({latency_count}, 0)"),
    _single("latency_p50", NUMBER),
    _single("latency_p95", NUMBER),
    _single("latency_p99", NUMBER),
    _single("users", INTEGER),
)}


# Every report's totals also say how many events were left out of its sums.
TOTALS_ONLY_PARTS = ("unconverted_count",)


def report_parts(spec) -> tuple[str, ...]:
    """The aggregate parts a report computes: its metrics' and the totals-only ones."""
    return tuple(dict.fromkeys([part for name in spec.metrics for part in METRICS[name].parts]
                               + list(TOTALS_ONLY_PARTS)))
