from decimal import Decimal

import pytest

from koala.money import money_display


@pytest.mark.parametrize(("amount", "currency", "shown"), [
    ("1234.5", "USD", "1,234.50 USD"),
    ("1234.5", "JPY", "1,234 JPY"),  # half-even: 1234.5 -> 1234
    ("1235.5", "JPY", "1,236 JPY"),
    ("1.23456", "KWD", "1.235 KWD"),
    ("-0.001", "USD", "0.00 USD"),
    ("-12.345", "EUR", "-12.34 EUR"),
    ("0.000000000000000001", "USD", "0.00 USD"),
])
def test_amounts_are_shown_with_the_currency_minor_units(amount, currency, shown):
    assert money_display(Decimal(amount), currency) == shown


def test_a_missing_amount_is_a_dash_not_zero():
    assert money_display(None, "USD") == "—"
