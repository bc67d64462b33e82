"""Error pages: JSON in the contract's shape for API paths, Django's HTML elsewhere."""
from django.views import defaults

from koala import exceptions

JSON_PATH_PREFIXES = ("/api/", "/healthz")


def _wants_json(request) -> bool:
    return request.path.startswith(JSON_PATH_PREFIXES)


def bad_request(request, exception=None):
    if _wants_json(request):
        return exceptions.json_bad_request(request, exception)
    return defaults.bad_request(request, exception)


def permission_denied(request, exception=None):
    if _wants_json(request):
        return exceptions.json_permission_denied(request, exception)
    return defaults.permission_denied(request, exception)


def page_not_found(request, exception=None):
    if _wants_json(request):
        return exceptions.json_not_found(request, exception)
    return defaults.page_not_found(request, exception)


def server_error(request):
    if _wants_json(request):
        return exceptions.json_server_error(request)
    return defaults.server_error(request)
