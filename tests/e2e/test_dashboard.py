"""The dashboard in a real browser: Debian's Chromium driven by Playwright against the
live server. Sign in, read the overview against the API, build a report in Explore,
save it and run it under Saved queries, create and revoke a key; another
organization's member gets 404 everywhere; a viewer cannot reach admin actions.
Every page is saved as a screenshot under tests/artifacts/screenshots/ for review."""
import json
import os
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from django.utils import timezone
from playwright.sync_api import expect, sync_playwright

from budgets.models import Budget
from events.models import Event
from events.partitions import forget_known_partitions
from koala.money import money_display
from organizations.models import Membership
from queries.models import SavedQuery
from tests.conftest import client_with
from tests.factories import make_api_key, make_member, make_organization, make_project
from tests.queries.helpers import event, send_events

pytestmark = pytest.mark.slow

CHROMIUM = "/usr/bin/chromium"
SCREENSHOTS = Path(__file__).resolve().parent.parent / "artifacts" / "screenshots"
PASSWORD = "correct horse battery"
PAGES = ["", "explore/", "saved-queries/", "customers/", "budgets/", "taxonomy-health/", "events/", "api-keys/"]


@pytest.fixture(scope="module")
def browser():
    # Playwright's sync API keeps an event loop in this thread; the test's own ORM calls
    # are still synchronous (the live server answers in its own thread).
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    playwright = sync_playwright().start()
    chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
    yield chromium
    chromium.close()
    playwright.stop()
    os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)


@pytest.fixture
def world(transactional_db):
    """Acme with an owner, a viewer, events over the last weeks; Globex with its own owner."""
    forget_known_partitions()
    acme = make_organization(name="Acme")
    make_project(organization=acme, slug="assistant-api")
    make_project(organization=acme, slug="billing-api")
    now = timezone.now()
    rows = []
    for day in range(20):
        for number, (provider, project, user, cost, charge) in enumerate([
                ("openai", "assistant-api", "usr_good", "1.25", "2.5"),
                ("anthropic", "assistant-api", "usr_loss", "2.4", "1.1"),
                ("google", "billing-api", "usr_big", "0.333", None)]):
            rows.append(event(id=f"d{day}-{number}", project=project, timestamp=now - timedelta(days=day, hours=1),
                              cost=cost, **({"charge": charge} if charge else {}), provider=provider, userId=user,
                              traces=[f"trace_{day}"], metadata={"model": f"{provider}-model", "latencyMs": 100 + day}))
    send_events(acme, rows)
    owner = make_member(organization=acme, role=Membership.Role.OWNER, email="owner@acme.test", password=PASSWORD)
    make_member(organization=acme, role=Membership.Role.VIEWER, email="viewer@acme.test", password=PASSWORD)
    globex = make_organization(name="Globex")
    make_member(organization=globex, role=Membership.Role.OWNER, email="owner@globex.test", password=PASSWORD)
    yield {"acme": acme, "globex": globex, "owner": owner, "read_key": make_api_key(organization=acme, scopes="read")}
    forget_known_partitions()


def shot(page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def sign_in(browser, live_server, email: str, *, viewport=None, screenshot: str | None = None):
    context = browser.new_context(viewport=viewport or {"width": 1280, "height": 900})
    page = context.new_page()
    page.goto(f"{live_server.url}/")  # signed out: to the sign-in page, then to one's organization
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    if screenshot:
        shot(page, screenshot)
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    return context, page


def api_report(read_key: str, body: dict) -> dict:
    response = client_with(read_key).post("/api/v1/reports", json.dumps(body), content_type="application/json")
    assert response.status_code == 200, response.content
    return response.json()


def test_owner_walks_through_every_page(browser, live_server, world):
    base = f"{live_server.url}/o/{world['acme'].slug}"
    context, page = sign_in(browser, live_server, "owner@acme.test", screenshot="00-sign-in")
    shot(page, "01-overview")
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()

    # The tiles equal the API's report for the same period (a custom 14 days ending today).
    today = timezone.now().date()
    first = today - timedelta(days=13)
    page.get_by_label("Period", exact=True).select_option("custom")
    page.get_by_label("From (custom)").fill(first.isoformat())
    page.get_by_label("To, included (custom)").fill(today.isoformat())
    page.get_by_role("button", name="Show").click()
    totals = api_report(world["read_key"], {"from": f"{first}T00:00:00Z", "to": f"{today + timedelta(days=1)}T00:00:00Z",
                                            "metrics": ["count", "cost", "charge", "margin", "margin_pct"]})["totals"]
    for metric in ("cost", "charge", "margin"):
        expect(page.locator(f'[data-metric="{metric}"] .value')).to_have_text(
            money_display(Decimal(totals[metric]), "USD"))
    expect(page.locator('[data-metric="count"] .value')).to_have_text(f"{totals['count']:,}")
    expect(page.locator('[data-metric="margin_pct"] .value')).to_have_text(
        f"{Decimal(str(totals['margin_pct'])):,.1f} %")
    assert totals["count"] > 0
    shot(page, "02-overview-custom-period")

    # Explore: cost by provider for one project, then save it.
    page.get_by_role("link", name="Explore").click()
    page.get_by_label("Group 1").select_option("provider")
    page.get_by_label("Projects").select_option("assistant-api")
    page.get_by_label("Order").select_option("-cost")
    page.get_by_role("button", name="Run report").click()
    rows = page.locator("#report-table tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.first.locator("td").first).to_have_text("anthropic")
    shot(page, "03-explore")
    page.get_by_label("Name").fill("Assistant spend by provider")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("heading", name="Assistant spend by provider")).to_be_visible()

    # Saved queries: the built-ins first, ours after them; run it from the list.
    page.get_by_role("link", name="Saved queries").first.click()
    names = page.locator("#saved-queries tbody tr td:first-child a")
    expect(names).to_have_count(5)
    expect(names.nth(4)).to_have_text("Assistant spend by provider")
    shot(page, "04-saved-queries")
    names.nth(4).click()
    expect(page.locator("#report-table tbody tr")).to_have_count(2)
    shot(page, "05-saved-query-run")

    # Budgets: an admin creates one; its bar and forecast show here and on the overview.
    page.goto(f"{base}/budgets/")
    page.get_by_label("Name").fill("Assistant monthly")
    page.get_by_label("Amount (USD, counts cost)").fill("100")
    page.get_by_label("Project").select_option("assistant-api")
    page.get_by_role("button", name="Create budget").click()
    expect(page.get_by_role("status")).to_contain_text("Budget 'Assistant monthly' created.")
    expect(page.get_by_role("meter", name="Assistant monthly")).to_be_visible()
    page.goto(f"{base}/")
    expect(page.get_by_role("meter", name="Assistant monthly")).to_be_visible()

    for name, path in (("06-customers", "customers/"), ("07-budgets", "budgets/"),
                       ("08-taxonomy-health", "taxonomy-health/"), ("09-events", "events/")):
        response = page.goto(f"{base}/{path}")
        assert response.status == 200, path
        shot(page, name)
    page.goto(f"{base}/customers/")
    expect(page.locator("#customers tr[data-negative]")).to_have_count(1)  # usr_loss
    expect(page.locator("#customers tr[data-negative] th")).to_contain_text("usr_loss")

    # Events: trace lookup, then an event's detail with its metadata.
    page.goto(f"{base}/events/")
    page.get_by_label("Trace id").fill("trace_3")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("#events tbody tr")).to_have_count(3)
    page.locator("#events tbody tr a").first.click()
    expect(page.locator("#metadata")).to_contain_text('"latencyMs": 103')
    shot(page, "10-event-detail")

    # API keys: created, shown once, works, revoked, refused.
    page.get_by_role("link", name="API keys").click()
    page.get_by_label("Name").fill("browser-made")
    page.get_by_role("button", name="Create key").click()
    secret = page.locator("#new-key").inner_text().strip()
    assert secret.startswith("tk_")
    shot(page, "11-api-key-created")
    assert client_with(secret).get("/api/v1/events").status_code == 200
    page.get_by_role("link", name="API keys").click()
    expect(page.locator("body")).not_to_contain_text(secret)
    page.get_by_role("button", name=f"Revoke tk_{secret.split('_')[1]}").click()
    expect(page.get_by_role("status")).to_contain_text("Revoked")
    assert client_with(secret).get("/api/v1/events").status_code == 401
    shot(page, "12-api-key-revoked")
    context.close()


def test_keyboard_and_phone_width(browser, live_server, world):
    base = f"{live_server.url}/o/{world['acme'].slug}"
    context, page = sign_in(browser, live_server, "owner@acme.test", viewport={"width": 375, "height": 740})
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    # No sideways scrolling of the page itself on a phone (wide tables scroll in their box).
    for path in ("", "explore/", "customers/", "events/"):
        page.goto(f"{base}/{path}")
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1"), path
    page.goto(f"{base}/")
    shot(page, "13-overview-phone")
    # The first Tab reaches "Skip to content", which moves on to the page's content.
    page.keyboard.press("Tab")
    expect(page.locator(":focus")).to_have_text("Skip to content")
    page.keyboard.press("Enter")
    assert page.evaluate("location.hash") == "#main"
    context.close()


def test_another_organizations_member_gets_404_on_every_page(browser, live_server, world):
    acme = world["acme"]
    saved_query = SavedQuery.objects.filter(organization=acme).first()
    event = Event.objects.filter(organization=acme).select_related("project").first()
    objects = [f"saved-queries/{saved_query.pk}/", f"events/view/?project={event.project.slug}&id={event.client_id}"]
    context, page = sign_in(browser, live_server, "owner@globex.test")
    for path in PAGES + objects:
        response = page.goto(f"{live_server.url}/o/{acme.slug}/{path}")
        assert response.status == 404, path
        expect(page.locator("body")).not_to_contain_text(saved_query.name)
    response = page.goto(f"{live_server.url}/o/{world['globex'].slug}/")
    assert response.status == 200
    context.close()


def test_a_viewer_cannot_reach_admin_only_actions(browser, live_server, world):
    context, page = sign_in(browser, live_server, "viewer@acme.test")
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    expect(page.get_by_role("link", name="API keys")).to_have_count(0)
    response = page.goto(f"{live_server.url}/o/{world['acme'].slug}/api-keys/")
    assert response.status == 403
    page.goto(f"{live_server.url}/o/{world['acme'].slug}/explore/")
    expect(page.get_by_role("button", name="Run report")).to_be_visible()
    expect(page.get_by_role("button", name="Save")).to_have_count(0)
    shot(page, "14-viewer-explore")
    # Budgets: read, not managed; a saved query: run, not deleted.
    base = f"{live_server.url}/o/{world['acme'].slug}"
    page.goto(f"{base}/budgets/")
    expect(page.get_by_role("heading", name="Budgets", exact=True)).to_be_visible()
    expect(page.get_by_role("button", name="Create budget")).to_have_count(0)
    page.goto(f"{base}/saved-queries/")
    page.locator("#saved-queries tbody tr td:first-child a").first.click()
    expect(page.locator("#report-table")).to_be_visible()
    expect(page.get_by_role("button", name="Delete this saved query")).to_have_count(0)
    # Posting the forms anyway is refused.
    token = page.evaluate("document.cookie.split('; ').find(c => c.startsWith('csrftoken=')).split('=')[1]")
    posted = page.request.post(f"{base}/budgets/", form={"name": "Sneaky", "amount": "1", "period": "month"},
                               headers={"X-CSRFToken": token, "Referer": f"{base}/budgets/"})
    assert posted.status == 403
    assert not Budget.objects.filter(name="Sneaky").exists()
    context.close()
