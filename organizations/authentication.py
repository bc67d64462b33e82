"""Who is calling: API keys for the API, email or username for people."""
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.utils import timezone
from rest_framework import authentication, exceptions

from organizations.models import ApiKey, Organization, Project
from organizations.selectors import api_key_get_by_plaintext
from organizations.services import api_key_mark_used


@dataclass(frozen=True)
class ApiClient:
    """`request.user` for a key: the tenant it acts for and what it may do."""

    api_key: ApiKey

    is_authenticated = True
    is_anonymous = False

    @property
    def organization(self) -> Organization:
        return self.api_key.organization

    @property
    def project(self) -> Project | None:
        return self.api_key.project

    @property
    def scopes(self) -> frozenset[str]:
        return frozenset(self.api_key.scopes)


class ApiKeyAuthentication(authentication.BaseAuthentication):
    """`Authorization: Bearer tk_...`; a revoked key fails on its next request."""

    keyword = "bearer"

    def authenticate(self, request):
        header = request.META.get("HTTP_AUTHORIZATION", "")
        if not header:
            return None
        scheme, _, credential = header.partition(" ")
        credential = credential.strip()
        if scheme.lower() != self.keyword or not credential:
            raise exceptions.AuthenticationFailed("Malformed Authorization header: send 'Bearer tk_...'.")
        if not credential.isascii() or "\x00" in credential:
            raise exceptions.AuthenticationFailed("Unknown API key.")
        api_key = api_key_get_by_plaintext(plaintext=credential)
        if api_key is None:
            raise exceptions.AuthenticationFailed("Unknown API key.")
        if api_key.revoked_at is not None:
            raise exceptions.AuthenticationFailed("This API key has been revoked.")
        api_key_mark_used(api_key=api_key, now=timezone.now())
        return ApiClient(api_key=api_key), api_key

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="api"'


class EmailOrUsernameBackend(ModelBackend):
    """The sign-in form's username field takes the email address."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        if username is None or password is None:
            return None
        User = get_user_model()
        user = (User.objects.filter(email__iexact=username).order_by("id").first()
                or User.objects.filter(username__iexact=username).first())
        if user is None:
            User().set_password(password)  # same work as a real check, so timing does not reveal accounts
            return None
        if user.check_password(password) and self.user_can_authenticate(user):
            return user
        return None
