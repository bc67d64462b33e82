"""The contract's error body, for every error the API can answer with.

`{"error": {"code": "...", "message": "<one human sentence>", "details": {...}}}`:
business failures raise `KoalaError`; DRF's own exceptions, Django's 404 and any
unexpected exception are mapped here, in one place.
"""
import logging
import math

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.db import InterfaceError, OperationalError
from django.http import Http404, JsonResponse
from rest_framework import exceptions as drf
from rest_framework.response import Response

from koala.middleware import current_request_id

logger = logging.getLogger(__name__)


class KoalaError(Exception):
    """A business failure with the contract's code, HTTP status and message."""

    def __init__(self, code: str, message: str, *, status: int = 400, details: dict | None = None,
                 headers: dict | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
        self.details = details
        self.headers = headers or {}


class NotFound(KoalaError):
    def __init__(self, message: str = "No such object.", **kwargs):
        super().__init__("not_found", message, status=404, **kwargs)


class InvalidRequest(KoalaError):
    def __init__(self, message: str, **kwargs):
        super().__init__("invalid_request", message, status=400, **kwargs)


def error_body(code: str, message: str, details: dict | None = None) -> dict:
    error = {"code": code, "message": message}
    if details:
        error["details"] = details
    return {"error": error}


def _first_sentence(detail) -> str:
    """DRF details may be nested lists/dicts; the message is their first string."""
    if isinstance(detail, dict):
        for key, value in detail.items():
            text = _first_sentence(value)
            return text if key in ("detail", "non_field_errors") else f"{key}: {text}"
    if isinstance(detail, list) and detail:
        return _first_sentence(detail[0])
    return str(detail)


def _as_plain(detail):
    if isinstance(detail, dict):
        return {str(key): _as_plain(value) for key, value in detail.items()}
    if isinstance(detail, list):
        return [_as_plain(item) for item in detail]
    return str(detail)


def _map_drf_exception(exc: drf.APIException, method: str) -> tuple[int, str, str, dict | None, dict]:
    headers = {}
    if isinstance(exc, drf.ParseError):
        return 400, "invalid_json", f"The body is not valid JSON: {exc.detail}", None, headers
    if isinstance(exc, (drf.NotAuthenticated, drf.AuthenticationFailed)):
        message = str(exc.detail) if isinstance(exc, drf.AuthenticationFailed) else (
            "Send an API key as 'Authorization: Bearer tk_...'.")
        headers["WWW-Authenticate"] = 'Bearer realm="api"'
        return 401, "authentication_failed", message, None, headers
    if isinstance(exc, drf.PermissionDenied):
        return 403, "permission_denied", str(exc.detail), None, headers
    if isinstance(exc, drf.NotFound):
        return 404, "not_found", "No such object.", None, headers
    if isinstance(exc, drf.MethodNotAllowed):
        return 405, "invalid_request", f"{method} is not allowed on this endpoint.", None, headers
    if isinstance(exc, drf.UnsupportedMediaType):
        return 415, "invalid_request", "Send the body as application/json.", None, headers
    if isinstance(exc, drf.NotAcceptable):
        return 406, "invalid_request", "This endpoint answers in JSON (or CSV where documented).", None, headers
    if isinstance(exc, drf.Throttled):
        wait = math.ceil(exc.wait or 1)
        headers["Retry-After"] = str(wait)
        return 429, "rate_limited", f"Too many requests; retry in {wait} seconds.", None, headers
    if isinstance(exc, drf.ValidationError):
        details = _as_plain(exc.detail)
        if not isinstance(details, dict):
            details = {"errors": details}
        return 400, "invalid_request", _first_sentence(exc.detail), details, headers
    return exc.status_code, "invalid_request", _first_sentence(exc.detail), None, headers


def internal_error_body() -> dict:
    request_id = current_request_id()
    return error_body(
        "internal",
        f"Something went wrong on our side; quote request id {request_id} to support.",
        {"request_id": request_id},
    )


def api_exception_handler(exc: Exception, context: dict) -> Response:
    """DRF's EXCEPTION_HANDLER: every exception becomes the contract's body."""
    headers = {}
    details = None
    if isinstance(exc, KoalaError):
        status, code, message, details, headers = exc.status, exc.code, exc.message, exc.details, exc.headers
    elif isinstance(exc, Http404):
        status, code, message = 404, "not_found", "No such object."
    elif isinstance(exc, DjangoPermissionDenied):
        status, code, message = 403, "permission_denied", "This key may not do that."
    elif isinstance(exc, RequestDataTooBig):
        status, code, message = 413, "payload_too_large", "The body is larger than 5 MiB."
    elif isinstance(exc, (OperationalError, InterfaceError)):
        # The database is down, restarting or overloaded: the client should retry, not give up.
        logger.warning("api.database_unavailable", extra={"error": type(exc).__name__})
        status, code, message = 503, "unavailable", "The database is unavailable; retry shortly."
        headers = {"Retry-After": "5"}
    elif isinstance(exc, drf.APIException):
        request = context.get("request")
        method = request.method if request is not None else "This method"
        status, code, message, details, headers = _map_drf_exception(exc, method)
    else:
        view = context.get("view")
        logger.exception("api.unhandled_exception", extra={"view": type(view).__name__ if view else None})
        return Response(internal_error_body(), status=500)
    return Response(error_body(code, message, details), status=status, headers=headers)


def json_not_found(request, exception=None):
    """handler404 for paths under /api/ and /healthz (HTML pages keep Django's)."""
    return JsonResponse(error_body("not_found", "No such endpoint or object."), status=404)


def json_server_error(request):
    return JsonResponse(internal_error_body(), status=500)


def json_bad_request(request, exception=None):
    if isinstance(exception, RequestDataTooBig):
        return JsonResponse(error_body("payload_too_large", "The body is larger than 5 MiB."), status=413)
    return JsonResponse(error_body("invalid_request", "The request could not be understood."), status=400)


def json_permission_denied(request, exception=None):
    return JsonResponse(error_body("permission_denied", "You may not do that."), status=403)
