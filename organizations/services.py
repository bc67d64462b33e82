"""Writes for organizations, projects, members and API keys."""
import hashlib
import logging
import secrets
import zoneinfo
from datetime import datetime, timedelta

from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.text import slugify

from koala.exceptions import InvalidRequest, KoalaError
from organizations.currencies import is_currency
from organizations.models import ApiKey, Membership, Organization, Project

logger = logging.getLogger(__name__)

KEY_PREFIX_ALPHABET = "abcdefghijkmnpqrstuvwxyz23456789"  # no look-alikes (l/1, o/0)
KEY_PREFIX_LENGTH = 10
# A key's use is written to the database at most this often, not on every request.
LAST_USED_RESOLUTION = timedelta(minutes=1)
_VALID_TIMEZONES = None


def _valid_timezones() -> set[str]:
    global _VALID_TIMEZONES
    if _VALID_TIMEZONES is None:
        _VALID_TIMEZONES = zoneinfo.available_timezones()
    return _VALID_TIMEZONES


def hash_api_key(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode()).hexdigest()


def validate_currency(code: str) -> str:
    if not is_currency(code):
        raise InvalidRequest(f"'{code}' is not an ISO 4217 currency code (for example USD, EUR, JPY).")
    return code


def validate_timezone(name: str) -> str:
    if name not in _valid_timezones():
        raise InvalidRequest(f"'{name}' is not an IANA time zone (for example UTC, Europe/Paris, America/New_York).")
    return name


def _slug_from(name: str, slug: str | None) -> str:
    chosen = slugify(slug if slug else name)[:64]
    if not chosen:
        raise InvalidRequest(f"Cannot make a slug from {name!r}; give one with letters or digits.")
    return chosen


@transaction.atomic
def organization_create(*, name: str, slug: str | None = None, currency: str = "USD", timezone_name: str = "UTC",
                        owner_email: str | None = None, owner_password: str | None = None) -> Organization:
    """A new organization with the defaults the contract promises every organization."""
    if not name.strip():
        raise InvalidRequest("An organization needs a name.")
    slug = _slug_from(name, slug)
    validate_currency(currency)
    validate_timezone(timezone_name)
    if Organization.objects.filter(slug=slug).exists():
        raise KoalaError("conflict", f"An organization with slug '{slug}' already exists.", status=409)
    organization = Organization.objects.create(
        name=name.strip(), slug=slug, reporting_currency=currency, timezone=timezone_name,
    )
    if owner_email:
        membership_add(organization=organization, email=owner_email, role=Membership.Role.OWNER,
                       password=owner_password)
    for setup in ORGANIZATION_SETUP_HOOKS:
        setup(organization=organization)
    logger.info("organization.created", extra={"organization_id": organization.id, "slug": slug})
    return organization


# Later rooms (taxonomy, saved queries) register what a new organization starts with.
ORGANIZATION_SETUP_HOOKS: list = []


def project_create(*, organization: Organization, name: str, slug: str | None = None) -> Project:
    if not name.strip():
        raise InvalidRequest("A project needs a name.")
    slug = _slug_from(name, slug)
    if Project.objects.filter(organization=organization, slug=slug).exists():
        raise KoalaError("conflict", f"Project '{slug}' already exists in {organization.slug}.", status=409)
    return Project.objects.create(organization=organization, name=name.strip(), slug=slug)


def membership_add(*, organization: Organization, email: str, role: str, password: str | None = None,
                   reset_existing_password: bool = False) -> Membership:
    """Adds a person by email, creating their login when they have none yet.

    The email is also the username, so the sign-in form takes the email. `password`
    sets a new login's password; an existing login keeps its own unless the caller
    (a platform operator's command, never an organization admin) says otherwise,
    since otherwise adding someone would let you take over their account.
    """
    email = email.strip().lower()
    if "@" not in email:
        raise InvalidRequest(f"'{email}' is not an email address.")
    if role not in Membership.Role.values:
        raise InvalidRequest(f"'{role}' is not a role (owner, admin, member, viewer).")
    User = get_user_model()
    user = User.objects.filter(email__iexact=email).first() or User.objects.filter(username__iexact=email).first()
    if user is None:
        user = User(username=email, email=email)
        if password:
            user.set_password(password)
        else:
            user.set_unusable_password()
        user.save()
    elif password and reset_existing_password:
        user.set_password(password)
        user.save(update_fields=["password"])
    membership, _ = Membership.objects.update_or_create(organization=organization, user=user,
                                                        defaults={"role": role})
    return membership


def _new_prefix() -> str:
    return "".join(secrets.choice(KEY_PREFIX_ALPHABET) for _ in range(KEY_PREFIX_LENGTH))


def parse_scopes(scopes) -> list[str]:
    """`"ingest,read"` or a list, validated and in a stable order."""
    if isinstance(scopes, str):
        scopes = [part.strip() for part in scopes.split(",") if part.strip()]
    unknown = sorted(set(scopes) - set(ApiKey.Scope.values))
    if unknown:
        raise InvalidRequest(f"Unknown scope {', '.join(map(repr, unknown))}: the scopes are ingest, read and manage.")
    if not scopes:
        raise InvalidRequest("A key needs at least one scope: ingest, read or manage.")
    return [scope for scope in ApiKey.Scope.values if scope in scopes]


def api_key_create(*, organization: Organization, scopes, project: Project | None = None, name: str = "",
                   created_by=None) -> tuple[ApiKey, str]:
    """Creates a key and returns it with its plaintext, which is never stored."""
    if project is not None and project.organization_id != organization.id:
        raise InvalidRequest("The project belongs to another organization.")
    scopes = parse_scopes(scopes)
    for _attempt in range(5):
        prefix = _new_prefix()
        plaintext = f"tk_{prefix}_{secrets.token_urlsafe(24)}"
        try:
            with transaction.atomic():
                api_key = ApiKey.objects.create(
                    organization=organization, project=project, name=name, prefix=prefix,
                    key_hash=hash_api_key(plaintext), scopes=scopes, created_by=created_by,
                )
            logger.info("api_key.created", extra={"organization_id": organization.id, "prefix": prefix})
            return api_key, plaintext
        except IntegrityError:
            continue  # a prefix collision: astronomically rare, and a fresh draw fixes it
    raise KoalaError("internal", "Could not allocate a unique key prefix.", status=500)


def api_key_revoke(*, api_key: ApiKey) -> ApiKey:
    if api_key.revoked_at is None:
        api_key.revoked_at = timezone.now()
        api_key.save(update_fields=["revoked_at"])
        logger.info("api_key.revoked", extra={"organization_id": api_key.organization_id, "prefix": api_key.prefix})
    return api_key


def api_key_mark_used(*, api_key: ApiKey, now: datetime) -> None:
    """Records use at minute resolution: one UPDATE a minute per key, not one per request."""
    if api_key.last_used_at is not None and now - api_key.last_used_at < LAST_USED_RESOLUTION:
        return
    ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
    api_key.last_used_at = now
