"""Plain factory functions: each makes one real row through the services."""
import itertools

from organizations.models import Membership, Organization, Project
from organizations.services import api_key_create, membership_add, organization_create, project_create

_sequence = itertools.count(1)


def make_organization(*, name: str | None = None, currency: str = "USD", timezone_name: str = "UTC") -> Organization:
    number = next(_sequence)
    return organization_create(name=name or f"Org {number}", slug=f"org-{number}", currency=currency,
                               timezone_name=timezone_name)


def make_project(*, organization: Organization, slug: str | None = None) -> Project:
    slug = slug or f"project-{next(_sequence)}"
    return project_create(organization=organization, name=slug.replace("-", " ").title(), slug=slug)


def make_api_key(*, organization: Organization, scopes: str = "ingest,read,manage",
                 project: Project | None = None) -> str:
    """Returns the plaintext key, ready for an Authorization header."""
    _, plaintext = api_key_create(organization=organization, project=project, scopes=scopes)
    return plaintext


def make_member(*, organization: Organization, role: str = Membership.Role.MEMBER, email: str | None = None,
                password: str = "correct horse battery") -> Membership:
    email = email or f"person{next(_sequence)}@example.test"
    return membership_add(organization=organization, email=email, role=role, password=password)
