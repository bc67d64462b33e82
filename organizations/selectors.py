"""Reads for organizations, projects, members and API keys."""
import hmac
import re

from django.db.models import QuerySet

from organizations.models import ApiKey, Membership, Organization, Project
from organizations.services import KEY_PREFIX_LENGTH, hash_api_key

_KEY_SHAPE = re.compile(r"^tk_([a-z0-9]{%d})_[A-Za-z0-9_-]{20,64}$" % KEY_PREFIX_LENGTH)


def api_key_get_by_plaintext(*, plaintext: str) -> ApiKey | None:
    """The live key matching `plaintext`, with its organization and project, or None.

    One indexed lookup on the public prefix, then a constant-time comparison of hashes.
    """
    match = _KEY_SHAPE.match(plaintext)
    if match is None:
        return None
    api_key = (
        ApiKey.objects.select_related("organization", "project")
        .filter(prefix=match.group(1))
        .first()
    )
    if api_key is None or not hmac.compare_digest(api_key.key_hash, hash_api_key(plaintext)):
        return None
    return api_key


def organization_ids_administered(*, user) -> set[int]:
    """Organizations whose admin pages this user may use (owner or admin role)."""
    if not user.is_authenticated or not user.is_active:
        return set()
    return set(
        Membership.objects.filter(user=user, role__in=Membership.ADMIN_ROLES).values_list("organization_id", flat=True)
    )


def organization_list_for_member(*, user) -> QuerySet[Organization]:
    return Organization.objects.filter(memberships__user=user).distinct()


def project_list_visible(*, organization: Organization, api_key: ApiKey | None = None) -> QuerySet[Project]:
    """Projects of `organization`; a project key sees only its own."""
    projects = Project.objects.filter(organization=organization)
    if api_key is not None and api_key.project_id is not None:
        projects = projects.filter(pk=api_key.project_id)
    return projects


def project_get_by_slug(*, organization: Organization, slug: str, api_key: ApiKey | None = None) -> Project | None:
    return project_list_visible(organization=organization, api_key=api_key).filter(slug=slug).first()
