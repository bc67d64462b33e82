"""Budgets: status, forecast and alert history for everyone; owners and admins also
create, pause, resume and delete budgets (through budgets.services, like the API)."""
from django.contrib import messages
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from budgets.models import Budget
from budgets.selectors import budget_get, budget_list
from budgets.services import budget_create, budget_delete, budget_update
from koala.exceptions import InvalidRequest, KoalaError
from organizations.selectors import project_get_by_slug, project_list_visible
from queries.views.access import Viewer, org_page
from queries.views.budget_panel import budget_alert_history, budget_rows


def _page(request, viewer: Viewer, *, error: str | None = None, form=None, status: int = 200):
    organization = viewer.organization
    context = {
        "viewer": viewer, "page": "budgets", "budgets": budget_rows(organization=organization),
        "inactive": list(budget_list(organization=organization).filter(active=False)),
        "alerts": budget_alert_history(organization=organization), "error": error, "form": form or {},
        "periods": Budget.Period.choices,
        "projects": list(project_list_visible(organization=organization).values_list("slug", "name")),
    }
    return render(request, "dashboard/budgets.html", context, status=status)


def _fields(viewer: Viewer, form) -> dict:
    """The form as budget_create's arguments; the service checks every value."""
    try:
        thresholds = [int(part) for part in form.get("thresholds", "").replace(" ", "").split(",") if part]
    except ValueError:
        raise InvalidRequest("thresholds: give whole percents separated by commas, e.g. 50, 80, 100.") from None
    fields = {"name": form.get("name", ""), "amount": form.get("amount", ""), "period": form.get("period", ""),
              "thresholds": thresholds or [50, 80, 100],
              "recipients": [part.strip() for part in form.get("recipients", "").split(",") if part.strip()],
              "notify_forecast": form.get("notify_forecast") == "on"}
    slug = form.get("project", "")
    if slug:
        fields["project"] = project_get_by_slug(organization=viewer.organization, slug=slug)
        if fields["project"] is None:
            raise InvalidRequest(f"project: no project '{slug[:64]}'.")
    return fields


@org_page()
def budgets(request, viewer: Viewer):
    if request.method != "POST":
        return _page(request, viewer)
    if not viewer.can_manage:
        return _page(request, viewer, error="Only owners and admins create budgets.", status=403)
    try:
        budget = budget_create(organization=viewer.organization, api_key=None, **_fields(viewer, request.POST))
    except KoalaError as error:
        return _page(request, viewer, error=error.message, form=request.POST, status=error.status)
    messages.success(request, f"Budget '{budget.name}' created.")
    return redirect("dashboard:budgets", org_slug=viewer.organization.slug)


@require_POST
@org_page(manage=True)
def budget_change(request, viewer: Viewer, budget_id: int):
    """`action`: pause, resume or delete."""
    budget = budget_get(organization=viewer.organization, api_key=None, budget_id=budget_id)
    action = request.POST.get("action")
    if action == "delete":
        budget_delete(budget=budget, api_key=None)
        messages.success(request, f"Budget '{budget.name}' deleted.")
    elif action in ("pause", "resume"):
        budget_update(budget=budget, api_key=None, changes={"active": action == "resume"})
        messages.success(request, f"Budget '{budget.name}' {'resumed' if action == 'resume' else 'paused'}.")
    else:
        messages.error(request, "Choose pause, resume or delete.")
    return redirect("dashboard:budgets", org_slug=viewer.organization.slug)
