"""How amounts leave the system: exact decimal strings, never floats."""
from decimal import Context, Decimal

# numeric(38, 18) holds 38 significant digits; Python's default context keeps 28,
# so every operation on stored amounts uses this one.
EXACT = Context(prec=60)


def money_str(amount: Decimal | None) -> str | None:
    """`Decimal("0.001200000000000000")` -> `"0.0012"`; `Decimal("142.000")` -> `"142"`."""
    if amount is None:
        return None
    text = format(amount.normalize(EXACT), "f")
    return "0" if text in ("-0", "0") else text
