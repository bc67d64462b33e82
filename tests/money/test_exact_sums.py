"""100,000 random micro-costs, half of them in another currency, sum exactly in reports:
amounts are decimals from the request to the report, never floats."""
import random
from decimal import ROUND_HALF_UP, Decimal

import pytest

from tests.money.helpers import add_rate, send

REPORTS = "/api/v1/reports"
RATE = Decimal("1.0873")


def micro_cost(rng: random.Random) -> Decimal:
    # 0.000001 to 0.01 with up to 18 decimal places: each digit counts.
    return Decimal(rng.randint(10**12, 10**16)).scaleb(-18)


@pytest.mark.django_db(transaction=True)
def test_a_hundred_thousand_micro_costs_sum_exactly(api_as, ingest_key, read_key, organization):
    add_rate(organization, "EUR", str(RATE), "2026-01-01T00:00:00Z")
    rng = random.Random(20261203)
    client = api_as(ingest_key)
    expected_cost = expected_charge = Decimal(0)
    for batch in range(100):
        events = []
        for number in range(1000):
            cost, charge = micro_cost(rng), micro_cost(rng)
            euros = number % 2 == 1
            events.append({"id": f"e{batch}-{number}", "timestamp": f"2026-11-{1 + number % 28:02d}T12:00:00Z",
                           "cost": str(cost), "charge": str(charge), "currency": "EUR" if euros else "USD",
                           "environment": "production", "action": "completion"})
            if euros:  # converted as the contract says: exact product, half up at 18 places
                cost = (cost * RATE).quantize(Decimal("1e-18"), rounding=ROUND_HALF_UP)
                charge = (charge * RATE).quantize(Decimal("1e-18"), rounding=ROUND_HALF_UP)
            expected_cost += cost
            expected_charge += charge
        assert send(client, *events)["accepted"] == 1000

    response = api_as(read_key).post(REPORTS, {
        "from": "2026-11-01T00:00:00Z", "to": "2026-12-01T00:00:00Z", "group_by": ["day"],
        "metrics": ["count", "cost", "charge", "margin"], "limit": 100}, format="json")
    assert response.status_code == 200, response.content[:2000]
    report = response.json()
    totals = report["totals"]
    assert totals["count"] == 100_000
    assert Decimal(totals["cost"]) == expected_cost
    assert Decimal(totals["charge"]) == expected_charge
    assert Decimal(totals["margin"]) == expected_charge - expected_cost
    # The days add up to the same exact total.
    cost_column = report["columns"].index("cost")
    assert sum(Decimal(row[cost_column]) for row in report["rows"]) == expected_cost
