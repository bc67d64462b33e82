"""Every number on a page equals what the API answers for the same question, shown
with money_display (rounded to the currency's minor units)."""
import csv
import io
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from koala.money import money_display
from tests.dashboard import html

pytestmark = pytest.mark.django_db


def money(value) -> str:
    return money_display(None if value is None else Decimal(value), "USD")


def api_report(api_as, key, body) -> dict:
    response = api_as(key).post("/api/v1/reports", body, format="json")
    assert response.status_code == 200, response.json()
    return response.json()


def custom_period(days: int):
    """The page's custom period ending today (both days included) and the API's window for it."""
    today = timezone.now().date()
    first = today - timedelta(days=days - 1)
    query = f"period=custom&from={first.isoformat()}&to={today.isoformat()}"
    window = {"from": f"{first.isoformat()}T00:00:00Z", "to": f"{(today + timedelta(days=1)).isoformat()}T00:00:00Z"}
    previous = {"from": f"{(first - timedelta(days=days)).isoformat()}T00:00:00Z", "to": window["from"]}
    return query, window, previous


def test_overview_tiles_equal_the_api_report_for_the_same_period(organization, owner_client, events_sent, api_as,
                                                                  read_key):
    query, window, previous = custom_period(30)
    page = owner_client.get(f"/o/{organization.slug}/?{query}")
    assert page.status_code == 200
    shown = html.tiles(page.content)
    totals = api_report(api_as, read_key, {**window, "metrics": ["count", "cost", "charge", "margin",
                                                                 "margin_pct"]})["totals"]
    assert shown == {"count": str(totals["count"]), "cost": money(totals["cost"]), "charge": money(totals["charge"]),
                     "margin": money(totals["margin"]), "margin_pct": f"{Decimal(str(totals['margin_pct'])):,.1f} %"}
    # The events of the fixture: four in the window, 14.587 cost, 15.875 charged of it.
    assert shown["count"] == "4" and shown["cost"] == "14.59 USD" and shown["charge"] == "15.88 USD"
    before = api_report(api_as, read_key, {**previous, "metrics": ["cost"]})["totals"]
    assert f"vs {money(before['cost'])}" in page.content.decode()  # the previous period's cost, 5.00 USD
    assert "+191.7 % vs 5.00 USD" in page.content.decode()  # 14.587 against 5.00


def test_top_tables_equal_the_api_grouped_reports(organization, owner_client, events_sent, api_as, read_key):
    query, window, _ = custom_period(30)
    page = owner_client.get(f"/o/{organization.slug}/?{query}")
    parsed = html.table(page.content, "top-customers")
    api = api_report(api_as, read_key, {**window, "group_by": ["user"], "metrics": ["cost", "charge", "margin",
                                                                                    "margin_pct"],
                                        "order_by": "-cost", "limit": 5})
    expected = [[row[0], money(row[1]), money(row[2]), money(row[3]),
                 "—" if row[4] is None else f"{Decimal(str(row[4])):,.1f} %"] for row in api["rows"]]
    assert parsed["body"] == expected and len(expected) == 3


def test_customers_page_equals_the_api_and_flags_negative_margin(organization, owner_client, events_sent, api_as,
                                                                 read_key):
    query, window, _ = custom_period(30)
    page = owner_client.get(f"/o/{organization.slug}/customers/?{query}")
    rows = html.table(page.content, "customers")["body"]
    api = api_report(api_as, read_key, {**window, "group_by": ["user"], "metrics": ["count", "cost", "charge",
                                                                                    "margin", "margin_pct"],
                                        "order_by": "-cost", "limit": 100})
    assert [row[0].replace(" negative margin", "") for row in rows] == [row[0] for row in api["rows"]]
    for shown, row in zip(rows, api["rows"]):
        assert shown[1:6] == [str(row[1]), money(row[2]), money(row[3]), money(row[4]),
                              "—" if row[5] is None else f"{Decimal(str(row[5])):,.1f} %"]
    # usr_loss was charged 1.25 for 3.333 of cost: it stands out, the others do not.
    flagged = [row[0] for row in rows if "negative margin" in row[0]]
    assert flagged == ["usr_loss negative margin"]
    assert b"1 customer cost more than they were charged" in page.content


def test_explore_table_and_csv_equal_the_api(organization, owner_client, events_sent, api_as, read_key):
    _, window, _ = custom_period(30)
    params = {"range": "custom", "from": window["from"], "to": window["to"], "group1": "provider", "group2": "",
              "group3": "", "metric": ["count", "cost", "margin"], "order_by": "-cost", "limit": "100",
              "project": "assistant-api"}
    page = owner_client.get(f"/o/{organization.slug}/explore/", params)
    assert page.status_code == 200
    shown = html.table(page.content, "report-table")
    body = {**window, "projects": ["assistant-api"], "group_by": ["provider"], "metrics": ["count", "cost", "margin"],
            "order_by": "-cost", "limit": 100}
    api = api_report(api_as, read_key, body)
    assert shown["head"] == [["Provider", "Events", "Cost", "Margin"]]
    assert shown["body"] == [[row[0], str(row[1]), money(row[2]), money(row[3])] for row in api["rows"]]
    assert shown["foot"] == [["Total", str(api["totals"]["count"]), money(api["totals"]["cost"]),
                              money(api["totals"]["margin"])]]
    # The CSV download is the API's CSV, exact decimals and all.
    page_csv = owner_client.get(f"/o/{organization.slug}/explore/", {**params, "format": "csv"})
    api_csv = api_as(read_key).post("/api/v1/reports?format=csv", body, format="json")
    assert page_csv["Content-Type"].startswith("text/csv")
    assert page_csv.content == api_csv.content
    assert list(csv.reader(io.StringIO(page_csv.content.decode())))[0] == ["provider", "count", "cost", "margin"]


def test_explore_shows_the_engines_sentence_for_a_bad_report(organization, owner_client):
    page = owner_client.get(f"/o/{organization.slug}/explore/", {"range": "custom", "from": "yesterday", "to": ""})
    assert page.status_code == 400
    assert b"is not an RFC 3339 timestamp" in page.content


def test_saved_query_page_equals_the_api_run(organization, owner_client, events_sent, api_as, full_key):
    saved = api_as(full_key).get("/api/v1/saved-queries").json()["results"]
    spend = next(query for query in saved if query["name"] == "Provider spend by project")
    api = api_as(full_key).post(f"/api/v1/saved-queries/{spend['id']}/run", {}, format="json").json()
    page = owner_client.get(f"/o/{organization.slug}/saved-queries/{spend['id']}/")
    shown = html.table(page.content, "report-table")["body"]
    assert shown == [[row[0], row[1], money(row[2]), money(row[3]), money(row[4]),
                      "—" if row[5] is None else f"{Decimal(str(row[5])):,.1f} %"] for row in api["rows"]]
    assert len(shown) == 4  # (assistant-api, billing-api) x their providers in the last 30 days


def test_saved_query_list_puts_the_four_built_ins_first(organization, owner_client, api_as, full_key):
    created = api_as(full_key).post("/api/v1/saved-queries", {"name": "AAA first by name", "query": {
        "range": "today", "metrics": ["cost"]}}, format="json")
    assert created.status_code == 201
    rows = html.table(owner_client.get(f"/o/{organization.slug}/saved-queries/").content, "saved-queries")["body"]
    names = [row[0].replace(" (built-in)", "") for row in rows]
    assert names == ["Customer usage trends", "High-latency paths", "Production failures",
                     "Provider spend by project", "AAA first by name"]
