"""How amounts leave the system: exact decimal strings, never floats."""
from decimal import Context, Decimal

from organizations.currencies import MINOR_UNITS

# numeric(38, 18) holds 38 significant digits; Python's default context keeps 28,
# so every operation on stored amounts uses this one.
EXACT = Context(prec=60)


def money_str(amount: Decimal | None) -> str | None:
    """`Decimal("0.001200000000000000")` -> `"0.0012"`; `Decimal("142.000")` -> `"142"`."""
    if amount is None:
        return None
    text = format(amount.normalize(EXACT), "f")
    return "0" if text in ("-0", "0") else text


def money_display(amount: Decimal | None, currency: str) -> str:
    """For people, not machines: rounded half-even to the currency's minor units and
    grouped, `money_display(Decimal("1234.5"), "USD")` -> `"1,234.50 USD"`, JPY with no
    decimals, KWD with three. The API keeps exact decimals (`money_str`)."""
    if amount is None:
        return "—"
    places = MINOR_UNITS.get(currency, 2)
    rounded = amount.quantize(Decimal(1).scaleb(-places), context=EXACT)
    if rounded.is_zero():
        rounded = abs(rounded)  # no "-0.00"
    return f"{rounded:,.{places}f} {currency}"
