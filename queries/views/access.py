"""Who may see which organization's pages, and the page decorator that enforces it."""
import functools
import logging
import time
from dataclasses import dataclass

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponseBadRequest

from koala.exceptions import NotFound
from organizations.models import Membership, Organization

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Viewer:
    """The signed-in person as one organization's page sees them."""

    organization: Organization
    membership: Membership

    @functools.cached_property
    def switcher(self) -> list[Membership]:
        """Every organization of this person (one query), for the header's switcher."""
        return memberships_of(user=self.membership.user_id)

    @property
    def can_manage(self) -> bool:
        """Owners and admins manage keys, budgets and saved queries; members and viewers read."""
        return self.membership.role in Membership.ADMIN_ROLES


def membership_for_page(*, user, organization_slug: str) -> Membership | None:
    """The user's membership of the organization with this slug, with the organization
    (one query), or None when there is no such organization or the user is not in it."""
    if not user.is_authenticated or not user.is_active:
        return None
    return (Membership.objects.select_related("organization")
            .filter(user=user, organization__slug=organization_slug).first())


def memberships_of(*, user) -> list[Membership]:
    """Every organization the user belongs to, for the switcher."""
    return list(Membership.objects.select_related("organization").filter(user=user)
                .order_by("organization__name", "organization__slug"))


def _has_unstorable_text(request) -> bool:
    for data in (request.GET, request.POST):
        for key, values in data.lists():
            for text in (key, *values):
                if "\x00" in text:
                    return True
                try:
                    text.encode("utf-8")
                except UnicodeEncodeError:
                    return True
    return False


def org_page(*, manage: bool = False):
    """Decorates a view `(request, viewer, **kwargs)` served under `/o/<org_slug>/`.

    Not signed in: to the login page. Not a member (or no such organization): 404,
    the same answer for both so a slug reveals nothing. `manage=True`: members and
    viewers get 403. The response says how long the server took (`Server-Timing`),
    which `bench/pages.py` reads, and is never stored by shared caches.
    """

    def decorate(view):
        @functools.wraps(view)
        def wrapper(request, org_slug: str, **kwargs):
            started = time.perf_counter()
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            membership = membership_for_page(user=request.user, organization_slug=org_slug)
            if membership is None:
                raise Http404("No such organization.")
            viewer = Viewer(organization=membership.organization, membership=membership)
            if _has_unstorable_text(request):
                # PostgreSQL cannot hold NUL or lone surrogates: refuse them before any query does.
                return HttpResponseBadRequest("A field holds a NUL character or an invalid character.",
                                              content_type="text/plain; charset=utf-8")
            if manage and not viewer.can_manage:
                raise PermissionDenied("Only owners and admins of the organization may do that.")
            request.viewer = viewer
            try:
                response = view(request, viewer, **kwargs)
            except NotFound:
                # A selector's "not yours or not there" (a saved query, a project): the page's 404.
                raise Http404("No such object.") from None
            elapsed_ms = (time.perf_counter() - started) * 1000
            response["Server-Timing"] = f"app;dur={elapsed_ms:.1f}"
            response.setdefault("Cache-Control", "private, no-cache")
            return response

        return wrapper

    return decorate
