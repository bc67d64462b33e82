"""API keys, for owners and admins: create (the secret is shown once, never stored or
cached) and revoke."""
from django.contrib import messages
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from koala.exceptions import KoalaError
from organizations.models import ApiKey
from organizations.selectors import project_get_by_slug, project_list_visible
from organizations.services import api_key_create, api_key_revoke
from queries.views.access import Viewer, org_page


def _keys(organization):
    return ApiKey.objects.filter(organization=organization).select_related("project").order_by("-created_at")


def _page(request, viewer: Viewer, *, created=None, error=None, status=200):
    organization = viewer.organization
    context = {"viewer": viewer, "page": "keys", "keys": _keys(organization), "created": created, "error": error,
               "scopes": ApiKey.Scope.choices,
               "projects": list(project_list_visible(organization=organization).values_list("slug", "name"))}
    response = render(request, "dashboard/api_keys.html", context, status=status)
    if created is not None:
        # The plaintext is in this body only: no cache, proxy or back button may keep it.
        response["Cache-Control"] = "no-store"
    return response


@org_page(manage=True)
def api_keys(request, viewer: Viewer):
    if request.method != "POST":
        return _page(request, viewer)
    organization = viewer.organization
    project = None
    slug = request.POST.get("project", "")
    if slug:
        project = project_get_by_slug(organization=organization, slug=slug)
        if project is None:
            return _page(request, viewer, error=f"No project '{slug[:64]}'.", status=400)
    try:
        api_key, plaintext = api_key_create(organization=organization, scopes=request.POST.getlist("scope"),
                                            project=project, name=request.POST.get("name", "").strip()[:200],
                                            created_by=request.user)
    except KoalaError as error:
        return _page(request, viewer, error=error.message, status=error.status)
    return _page(request, viewer, created={"key": api_key, "plaintext": plaintext})


@require_POST
@org_page(manage=True)
def api_key_revoke_view(request, viewer: Viewer, api_key_id: int):
    api_key = _keys(viewer.organization).filter(pk=api_key_id).first()
    if api_key is None:
        raise Http404("No such key.")
    api_key_revoke(api_key=api_key)
    messages.success(request, f"Revoked tk_{api_key.prefix}_… {api_key.name}".strip() + ".")
    return redirect("dashboard:api_keys", org_slug=viewer.organization.slug)
