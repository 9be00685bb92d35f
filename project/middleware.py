"""Request ids, access logs and request metrics, under both WSGI and ASGI.

Both middlewares follow Django's hybrid pattern (sync_capable and async_capable): under ASGI
they run as coroutines, so an async view is not pushed through sync_to_async because of them.

RequestIdMiddleware goes first in MIDDLEWARE, so that its id covers every log line of the
request and its access line times the whole middleware stack. RequestMetricsMiddleware is
dropped with METRICS_ENABLED=false (with django-prometheus's own middlewares), which is how
their cost was measured (docs/observability.md).
"""

import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.core.signals import request_finished
from django.http import HttpRequest, HttpResponse
from django.utils.functional import SimpleLazyObject, empty
from rest_framework.settings import api_settings

from project import metrics
from project.logs import request_id_var

access_logger = logging.getLogger("project.access")

REQUEST_ID_HEADER = "X-Request-ID"
# What an upstream proxy or client may choose as an id: anything else (too long, spaces,
# control characters that could forge log lines) is replaced by a fresh one.
SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")

GetResponse = Callable[[HttpRequest], HttpResponse]
AsyncGetResponse = Callable[[HttpRequest], Awaitable[HttpResponse]]


def request_id_for(request: HttpRequest) -> str:
    incoming = request.headers.get(REQUEST_ID_HEADER, "")
    return incoming if SANE_REQUEST_ID.fullmatch(incoming) else uuid.uuid4().hex


def _forget_request_id(**kwargs: Any) -> None:
    """The response has been sent (WSGI servers call close() in the request's thread)."""
    request_id_var.set(None)


# After Django's own "Not Found"/"Internal Server Error" line, which is logged once the
# middleware chain has returned: that line must still carry the id.
request_finished.connect(_forget_request_id, dispatch_uid="project.middleware.forget_request_id")


def user_id_of(request: HttpRequest) -> int | None:
    """The authenticated user's id, without loading a user nobody asked for.

    A session user that no view looked at is still a lazy object: evaluating it here would
    cost a query (and raise SynchronousOnlyOperation under ASGI). Token users are set by DRF.
    """
    user = getattr(request, "user", None)
    if user is None or (isinstance(user, SimpleLazyObject) and getattr(user, "_wrapped", None) is empty):
        return None
    return user.pk if user.is_authenticated else None


def client_ip_of(request: HttpRequest) -> str:
    """The client's address as DRF's throttling sees it: X-Forwarded-For trusted through NUM_PROXIES."""
    remote_addr: str = request.META.get("REMOTE_ADDR", "")
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    num_proxies = int(api_settings.NUM_PROXIES or 0)
    if not forwarded or num_proxies <= 0:
        return remote_addr
    addresses = [address.strip() for address in forwarded.split(",")]
    return addresses[-min(num_proxies, len(addresses))] or remote_addr


class _HybridMiddleware:
    sync_capable = True
    async_capable = True

    def __init__(self, get_response: GetResponse | AsyncGetResponse) -> None:
        self.get_response = get_response
        self.async_mode = iscoroutinefunction(get_response)
        if self.async_mode:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        if self.async_mode:
            return self.__acall__(request)
        started = self.before(request)
        response: HttpResponse = self.get_response(request)  # type: ignore[assignment]
        self.after(request, response, time.perf_counter() - started)
        return response

    async def __acall__(self, request: HttpRequest) -> HttpResponse:
        started = self.before(request)
        response: HttpResponse = await self.get_response(request)  # type: ignore[misc]
        self.after(request, response, time.perf_counter() - started)
        return response

    def before(self, request: HttpRequest) -> float:
        return time.perf_counter()

    def after(self, request: HttpRequest, response: HttpResponse, seconds: float) -> None:
        raise NotImplementedError


class RequestIdMiddleware(_HybridMiddleware):
    """X-Request-ID in and out, the id on every log line, and one access line per request."""

    def before(self, request: HttpRequest) -> float:
        request_id = request_id_for(request)
        request.request_id = request_id  # type: ignore[attr-defined]
        # Not reset when this middleware returns: see _forget_request_id.
        request_id_var.set(request_id)
        return time.perf_counter()

    def after(self, request: HttpRequest, response: HttpResponse, seconds: float) -> None:
        request_id: str = request.request_id  # type: ignore[attr-defined]
        response[REQUEST_ID_HEADER] = request_id
        duration_ms = round(seconds * 1000, 2)
        access_logger.info(
            "%s %s %s %.1fms",
            request.method,
            request.path,
            response.status_code,
            duration_ms,
            extra={
                "request_id": request_id,
                "method": request.method,
                "path": request.path,
                "route": metrics.route_of(request),
                "status": response.status_code,
                "duration_ms": duration_ms,
                "user_id": user_id_of(request),
                "remote_addr": request.META.get("REMOTE_ADDR", ""),
                "client_ip": client_ip_of(request),
            },
        )


class RequestMetricsMiddleware(_HybridMiddleware):
    """postline_http_requests_total and postline_http_request_duration_seconds, by route."""

    def after(self, request: HttpRequest, response: HttpResponse, seconds: float) -> None:
        metrics.observe_request(request, response, seconds)
