"""Saved queries: the list (the four built-ins first), one query run with chart and
table, and deleting one (owners and admins)."""
from django.contrib import messages
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from koala.exceptions import KoalaError
from queries.selectors import saved_query_get, saved_query_list, saved_query_run
from queries.services import saved_query_delete
from queries.spec import RANGES
from queries.views.access import Viewer, org_page
from queries.views.explore import RANGE_LABELS, chart_context, csv_response
from queries.views.present import table, window_label


@org_page()
def saved_queries(request, viewer: Viewer):
    queries = sorted(saved_query_list(organization=viewer.organization),
                     key=lambda saved_query: (not saved_query.builtin, saved_query.name.lower(), saved_query.pk))
    return render(request, "dashboard/saved_queries.html", {"viewer": viewer, "page": "saved", "queries": queries})


@org_page()
def saved_query(request, viewer: Viewer, saved_query_id: int):
    organization = viewer.organization
    query = saved_query_get(organization=organization, api_key=None, saved_query_id=saved_query_id)
    chosen_range = request.GET.get("range", "")
    context = {"viewer": viewer, "page": "saved", "query": query, "chosen_range": chosen_range,
               "ranges": {key: RANGE_LABELS[key] for key in RANGES}}
    try:
        result = saved_query_run(organization=organization, api_key=None, saved_query=query,
                                 body={"range": chosen_range} if chosen_range else None)
    except KoalaError as error:
        context["error"] = error.message
        return render(request, "dashboard/saved_query.html", context, status=error.status)
    if request.GET.get("format") == "csv":
        return csv_response(result, filename="saved-query")
    context.update(result=table(result), window=window_label(result),
                   **chart_context(result, title=query.name))
    return render(request, "dashboard/saved_query.html", context)


@require_POST
@org_page(manage=True)
def saved_query_remove(request, viewer: Viewer, saved_query_id: int):
    query = saved_query_get(organization=viewer.organization, api_key=None, saved_query_id=saved_query_id)
    saved_query_delete(saved_query=query, api_key=None)
    messages.success(request, f"Deleted '{query.name}'.")
    return redirect("dashboard:saved_queries", org_slug=viewer.organization.slug)
