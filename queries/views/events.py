"""Events: the event explorer (the API's filters, newest first, keyset pages), trace
lookup, and one event's detail with its metadata."""
import json
from datetime import datetime

from django.http import Http404
from django.shortcuts import render

from events.filters import EventFilter
from events.models import EventKey
from events.selectors import event_list
from koala.money import EXACT, money_display
from organizations.selectors import project_list_visible
from queries.views.access import Viewer, org_page

PAGE_SIZE = 50
FILTER_FIELDS = ("project", "environment", "provider", "application", "action", "user", "model", "status", "tag",
                 "trace", "since", "until")


def _margin(event):
    if event.charge_reporting is None:
        return None, None
    margin = EXACT.subtract(event.charge_reporting, event.cost_reporting)
    percent = EXACT.divide(margin, event.charge_reporting) * 100 if event.charge_reporting else None
    return margin, percent


def _row(event, currency: str) -> dict:
    """The amounts as sent, and beside them the amounts in the reporting currency that
    reports and budgets count (or that no exchange rate converted the event yet)."""
    margin, percent = _margin(event)
    foreign = event.currency != currency
    return {"event": event, "cost": money_display(event.cost, event.currency),
            "charge": money_display(event.charge, event.currency),
            "cost_reporting": money_display(event.cost_reporting, currency) if foreign else None,
            "charge_reporting": (money_display(event.charge_reporting, currency)
                                 if foreign and event.charge is not None else None),
            "unconverted": foreign and event.cost_reporting is None,
            "rate": None if event.exchange_rate is None else f"{event.exchange_rate.normalize():f}",
            "margin": money_display(margin, currency), "negative": margin is not None and margin < 0,
            "margin_pct": None if percent is None else f"{percent:,.1f} %"}


def _cursor(text: str | None) -> tuple[datetime, int] | None:
    """`before` = "<timestamp>_<seq>" of the last row of the previous page; garbage is page one."""
    if not text or "_" not in text:
        return None
    timestamp, _, seq = text.rpartition("_")
    try:
        moment = datetime.fromisoformat(timestamp)
        return (moment, int(seq)) if moment.tzinfo is not None else None
    except ValueError:
        return None


@org_page()
def events(request, viewer: Viewer):
    organization = viewer.organization
    params = request.GET
    filterset = EventFilter(params, queryset=event_list(organization=organization))
    context = {"viewer": viewer, "page": "events", "params": params, "filter_fields": FILTER_FIELDS,
               "projects": list(project_list_visible(organization=organization).values_list("slug", flat=True))}
    if not filterset.is_valid():
        context["errors"] = {name: " ".join(errors) for name, errors in filterset.errors.items()}
        return render(request, "dashboard/events.html", context, status=400)
    queryset = filterset.qs
    after = _cursor(params.get("before"))
    if after is not None:
        moment, seq = after
        # The same keyset as the API's pages: (timestamp, seq) is unique and indexed.
        queryset = queryset.filter(timestamp__lte=moment).exclude(timestamp=moment, seq__gte=seq)
    page = list(queryset[:PAGE_SIZE + 1])
    rows = [_row(event, organization.reporting_currency) for event in page[:PAGE_SIZE]]
    next_query = None
    if len(page) > PAGE_SIZE:
        last = page[PAGE_SIZE - 1]
        query = params.copy()
        query["before"] = f"{last.timestamp.isoformat()}_{last.seq}"
        next_query = query.urlencode()
    context.update(rows=rows, next_query=next_query, values={name: params.get(name, "") for name in FILTER_FIELDS})
    return render(request, "dashboard/events.html", context)


def _event_at(organization, *, project_slug: str, client_id: str, at: datetime | None):
    """The event with this project and client id. The list links carry its timestamp
    (`at`), so the lookup is one probe of the (organization, project, timestamp) index,
    whether or not the client gave the id; a link without it asks the idempotency key."""
    if at is None:
        key = (EventKey.objects.filter(organization=organization, project__organization=organization,
                                       project__slug=project_slug, client_id=client_id)
               .values("timestamp").first())
        if key is None:
            return None
        at = key["timestamp"]
    return (event_list(organization=organization)
            .filter(project__slug=project_slug, timestamp=at, client_id=client_id).first())


@org_page()
def event_detail(request, viewer: Viewer):
    """`?project=<slug>&id=<client id>[&at=<timestamp>]`: one event with its metadata."""
    organization = viewer.organization
    try:
        at = datetime.fromisoformat(request.GET.get("at", ""))
    except ValueError:
        at = None
    if at is not None and at.tzinfo is None:
        at = None
    event = _event_at(organization, project_slug=request.GET.get("project", ""),
                      client_id=request.GET.get("id", ""), at=at)
    if event is None:
        raise Http404("No such event.")
    context = {"viewer": viewer, "page": "events", "row": _row(event, organization.reporting_currency),
               "metadata": json.dumps(event.metadata, indent=2, sort_keys=True, ensure_ascii=False)}
    return render(request, "dashboard/event_detail.html", context)
