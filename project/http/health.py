"""Liveness and readiness probes.

/healthz says the process answers (a restart fixes nothing else). /readyz says whether this
instance can serve: PostgreSQL and Redis both answer. Redis is checked with a raw PING,
because the cache backend fails open and would hide an outage.
"""

import logging

import redis
from django.conf import settings
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache

logger = logging.getLogger(__name__)


def _check_database() -> str | None:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception as exc:  # noqa: BLE001  -- any failure means "not ready"
        connection.close()
        return f"{type(exc).__name__}: {exc}".strip()
    return None


def _check_cache() -> str | None:
    # A connection of its own: the cache's pool sits behind a circuit breaker, which would keep
    # reporting an outage for its cool-down period after Redis is back.
    client = redis.Redis.from_url(
        str(settings.CACHES["default"]["LOCATION"]),
        socket_connect_timeout=settings.CACHE_SOCKET_TIMEOUT,
        socket_timeout=settings.CACHE_SOCKET_TIMEOUT,
    )
    try:
        client.ping()
    except Exception as exc:  # noqa: BLE001
        return f"{type(exc).__name__}: {exc}".strip()
    finally:
        client.close()
    return None


@never_cache
def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


@never_cache
def readyz(request: HttpRequest) -> JsonResponse:
    errors = {"database": _check_database(), "cache": _check_cache()}
    failing = {name: error for name, error in errors.items() if error}
    if failing:
        logger.warning("not ready: %s", failing)
        return JsonResponse({"status": "unavailable", "failing": failing}, status=503)
    return JsonResponse({"status": "ok", "checks": dict.fromkeys(errors, "ok")})
