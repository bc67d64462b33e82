"""`GET /healthz`: is the platform able to take events right now?"""
import redis
from django.conf import settings
from django.db import connection
from django.http import JsonResponse
from django.views.decorators.http import require_GET

CHECK_TIMEOUT_SECONDS = 2


def _database_status() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute(f"SET LOCAL statement_timeout = {CHECK_TIMEOUT_SECONDS * 1000}")
            cursor.execute("SELECT 1")
        return "ok"
    except Exception as exc:  # any failure is the answer, not an error of this view
        return f"error: {type(exc).__name__}"


def _broker_status() -> str:
    try:
        client = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=CHECK_TIMEOUT_SECONDS,
                                      socket_timeout=CHECK_TIMEOUT_SECONDS)
        try:
            client.ping()
        finally:
            client.close()
        return "ok"
    except Exception as exc:
        return f"error: {type(exc).__name__}"


@require_GET
def healthz(request):
    database, broker = _database_status(), _broker_status()
    healthy = database == "ok" and broker == "ok"
    body = {"status": "ok" if healthy else "unavailable", "database": database, "broker": broker}
    if healthy:
        return JsonResponse(body)
    failing = [name for name, state in (("database", database), ("broker", broker)) if state != "ok"]
    body["error"] = {"code": "unavailable", "message": f"The {' and '.join(failing)} cannot be reached."}
    response = JsonResponse(body, status=503)
    response["Retry-After"] = "5"
    return response
