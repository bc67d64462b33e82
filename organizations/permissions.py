"""What an API key's scopes allow."""
from rest_framework import exceptions, permissions

SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


class HasScope(permissions.BasePermission):
    """Reads need `read`; writes need the view's `write_scope` (default `manage`).

    A view may name `required_scope` to fix one scope for every method (ingestion).
    """

    def has_permission(self, request, view) -> bool:
        client = request.user
        if client is None or not getattr(client, "is_authenticated", False) or request.auth is None:
            raise exceptions.NotAuthenticated()
        if not hasattr(view, request.method.lower()):
            return True  # let the view answer 405 rather than blame the key's scopes
        needed = getattr(view, "required_scope", None)
        if needed is None:
            needed = "read" if request.method in SAFE_METHODS else getattr(view, "write_scope", "manage")
        if needed not in request.auth.scopes:
            raise exceptions.PermissionDenied(f"This key lacks the '{needed}' scope.")
        return True
