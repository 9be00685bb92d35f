"""Request ids, access logs, request metrics, the Content-Security-Policy, read-your-writes
pinning (project/db/routing.py) and static files, under WSGI and ASGI.

Every middleware here follows Django's hybrid pattern (sync_capable and async_capable): a
plain call for sync views (under ASGI too, where project/server/handler.py runs their requests
whole in a thread), a coroutine on the event loop for async views. There a sync-only
middleware, or a MiddlewareMixin hook, costs a thread hop per request (sync_to_async):
docs/performance.md measured them. The subclasses of four of Django's own run their hooks
inline on the event loop (_InlineHooks).

RequestIdMiddleware goes first in MIDDLEWARE, so that its id covers every log line of the
request and its access line times the whole middleware stack. RequestMetricsMiddleware is
dropped with METRICS_ENABLED=false, which is how its cost was measured (docs/observability.md).
"""

import hashlib
import logging
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.conf import settings
from django.contrib.auth.middleware import AuthenticationMiddleware as DjangoAuthenticationMiddleware
from django.contrib.messages.middleware import MessageMiddleware as DjangoMessageMiddleware
from django.contrib.sessions.middleware import SessionMiddleware as DjangoSessionMiddleware
from django.core.cache import cache
from django.core.exceptions import MiddlewareNotUsed
from django.core.signals import request_finished
from django.http import HttpRequest, HttpResponse
from django.middleware.common import CommonMiddleware as DjangoCommonMiddleware
from django.utils.functional import SimpleLazyObject, empty
from rest_framework.settings import api_settings
from whitenoise.middleware import WhiteNoiseMiddleware

from project.db import routing
from project.observability import metrics
from project.observability.logs import request_id_var

access_logger = logging.getLogger("project.access")

REQUEST_ID_HEADER = "X-Request-ID"
REQUEST_ID_META = "HTTP_X_REQUEST_ID"
# What an upstream proxy or client may choose as an id: anything else (too long, spaces,
# control characters that could forge log lines) is replaced by a fresh one.
SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")

GetResponse = Callable[[HttpRequest], HttpResponse]
AsyncGetResponse = Callable[[HttpRequest], Awaitable[HttpResponse]]


def request_id_for(request: HttpRequest) -> str:
    # From META: request.headers would copy every header into a new mapping first.
    incoming = request.META.get(REQUEST_ID_META, "")
    return incoming if SANE_REQUEST_ID.fullmatch(incoming) else secrets.token_hex(16)


def _forget_request_id(**kwargs: Any) -> None:
    """The response has been sent (WSGI servers call close() in the request's thread)."""
    request_id_var.set(None)


# After Django's own "Not Found"/"Internal Server Error" line, which is logged once the
# middleware chain has returned: that line must still carry the id.
request_finished.connect(_forget_request_id, dispatch_uid="project.http.middleware.forget_request_id")


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


class HybridMiddleware:
    """Django's hybrid middleware pattern: a plain call under WSGI, a coroutine under ASGI
    (subclasses define `__call__` and `__acall__`)."""

    sync_capable = True
    async_capable = True
    __call__: Callable[[HttpRequest], Any]

    def __init__(self, get_response: GetResponse | AsyncGetResponse) -> None:
        self.get_response = get_response
        self.async_mode = iscoroutinefunction(get_response)
        if self.async_mode:
            markcoroutinefunction(self)


class StaticFilesMiddleware(WhiteNoiseMiddleware, HybridMiddleware):
    """WhiteNoise, sync and async. Finding a file is a dict lookup (WhiteNoise indexes the static
    files at start-up; only development's autorefresh looks on disk), so the async call needs no
    thread, and Django streams the file like any FileResponse. Under ASGI static files are
    served with the sync views (project/server/handler.py); the async side keeps the async
    views' stack free of thread hops."""

    def __init__(self, get_response: GetResponse | AsyncGetResponse) -> None:
        WhiteNoiseMiddleware.__init__(self, get_response)  # indexes the static files
        HybridMiddleware.__init__(self, get_response)

    def _static_file(self, request: HttpRequest) -> Any:
        return self.find_file(request.path_info) if self.autorefresh else self.files.get(request.path_info)

    def __call__(self, request: HttpRequest) -> Any:
        if self.async_mode:
            return self.__acall__(request)
        static_file = self._static_file(request)
        return self.get_response(request) if static_file is None else self.serve(static_file, request)

    async def __acall__(self, request: HttpRequest) -> HttpResponse:
        static_file = self._static_file(request)
        if static_file is None:
            return await self.get_response(request)  # type: ignore[misc]
        return self.serve(static_file, request)


class _HybridMiddleware(HybridMiddleware):
    """A hybrid middleware with a hook before the rest of the stack and one after it."""

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


API_PATH_PREFIX = "/api/"


def serves_a_browser(request: HttpRequest) -> bool:
    """Whether a request may need what only browsers use: a session, the user signed in through
    it, flash messages.

    API clients authenticate with a token and send no cookie; their responses are JSON. A call
    to /api/ with a cookie (a browser signed in to the admin, a read-your-writes cookie) still
    goes through the whole stack: DRF's session authentication reads the session's user.
    """
    return bool(request.META.get("HTTP_COOKIE")) or not request.path_info.startswith(API_PATH_PREFIX)


class _BrowserOnly:
    """Passes a request that does not serve a browser straight to the rest of the stack.

    About a quarter of an API call's middleware time went to building a session, a lazy user and
    a message store (a cookie signer included) for a client that sends no cookie
    (docs/performance.md).
    """

    get_response: Any

    def __call__(self, request: HttpRequest) -> Any:
        if serves_a_browser(request):
            return super().__call__(request)  # type: ignore[misc]
        return self.get_response(request)


class ContentSecurityPolicyMiddleware(_HybridMiddleware):
    """CONTENT_SECURITY_POLICY on every HTML page (landing, admin, Swagger UI) that has none.

    JSON responses are not rendered by a browser as a page, so they go without it.
    """

    def after(self, request: HttpRequest, response: HttpResponse, seconds: float) -> None:
        if response.get("Content-Type", "").startswith("text/html") and "Content-Security-Policy" not in response:
            response["Content-Security-Policy"] = settings.CONTENT_SECURITY_POLICY


class _InlineHooks:
    """Runs a MiddlewareMixin's hooks on the event loop under ASGI instead of in a thread.

    Only for hooks that do no I/O (metric updates, headers, lazy objects); a subclass whose
    response hook sometimes does (a session save) says when in `response_needs_thread`, and
    then that hook alone runs through sync_to_async, as Django would run it. Django calls
    process_view through sync_to_async unless it is a coroutine function, so under ASGI the
    instance gets a coroutine in its place. Under WSGI nothing changes.
    """

    async_mode: bool

    def __init__(self, get_response: GetResponse | AsyncGetResponse) -> None:
        super().__init__(get_response)  # type: ignore[call-arg]
        process_view = getattr(self, "process_view", None)
        if self.async_mode and process_view is not None:

            async def inline_process_view(request: HttpRequest, *args: Any) -> HttpResponse | None:
                result: HttpResponse | None = process_view(request, *args)
                return result

            self.process_view = inline_process_view

    async def __acall__(self, request: HttpRequest) -> HttpResponse:
        process_request = getattr(self, "process_request", None)
        response: HttpResponse | None = process_request(request) if process_request else None
        get_response: AsyncGetResponse = self.get_response  # type: ignore[attr-defined]
        response = response or await get_response(request)
        process_response = getattr(self, "process_response", None)
        if process_response is None:
            return response
        if self.response_needs_thread(request, response):
            process_response = sync_to_async(process_response, thread_sensitive=True)
            return await process_response(request, response)
        return process_response(request, response)

    def response_needs_thread(self, request: HttpRequest, response: HttpResponse) -> bool:
        return False


# Django's own middlewares whose hooks are I/O-free on the hot path. SecurityMiddleware,
# CsrfViewMiddleware and XFrameOptionsMiddleware stay Django's classes: `check --deploy` looks
# for their exact paths, and without them it would skip the HSTS, SSL and CSRF cookie checks.


class SessionMiddleware(_BrowserOnly, _InlineHooks, DjangoSessionMiddleware):
    """Django's, with the response hook in a thread only when it saves the session."""

    def response_needs_thread(self, request: HttpRequest, response: HttpResponse) -> bool:
        session = getattr(request, "session", None)
        return session is not None and (session.modified or settings.SESSION_SAVE_EVERY_REQUEST)


class CommonMiddleware(_InlineHooks, DjangoCommonMiddleware):
    """Django's (user-agent check, slash redirects, Content-Length): no I/O."""


class AuthenticationMiddleware(_BrowserOnly, _InlineHooks, DjangoAuthenticationMiddleware):
    """Django's: sets the lazy request.user and request.auser, loads nothing itself."""


class MessageMiddleware(_BrowserOnly, _InlineHooks, DjangoMessageMiddleware):
    """Django's, with the response hook in a thread only when messages were read or added
    (storing them may load the session)."""

    def response_needs_thread(self, request: HttpRequest, response: HttpResponse) -> bool:
        storage = getattr(request, "_messages", None)
        return storage is not None and (storage.used or storage.added_new)


def _credential_key(request: HttpRequest) -> str | None:
    authorization = request.headers.get("Authorization", "")
    if not authorization:
        return None
    return routing.CREDENTIAL_KEY_PREFIX + hashlib.sha256(authorization.encode()).hexdigest()


def _wrote_recently(request: HttpRequest) -> bool:
    return (
        request.get_signed_cookie(
            routing.COOKIE_NAME, default=None, salt=routing.COOKIE_SALT, max_age=settings.READ_YOUR_WRITES_SECONDS
        )
        is not None
    )


class ReadYourWritesMiddleware(HybridMiddleware):
    """Pins a client's reads to the primary while its last write may not have reached a replica.

    Sync and async (Django's hybrid pattern): for an async view it runs on the event loop, and
    its one Redis write goes to a worker thread of its own. Not used without replicas.
    """

    def __init__(self, get_response: GetResponse | AsyncGetResponse) -> None:
        if not routing.replica_aliases():
            raise MiddlewareNotUsed
        super().__init__(get_response)

    def __call__(self, request: HttpRequest) -> Any:
        if self.async_mode:
            return self.__acall__(request)
        token = routing.request_routing.set(self._routing_for(request))
        try:
            response: HttpResponse = self.get_response(request)  # type: ignore[assignment]
        finally:
            routing.request_routing.reset(token)
        if self._wrote(request, response):
            self._remember_write(request, response)
            self._record_credential(request)
        return response

    async def __acall__(self, request: HttpRequest) -> HttpResponse:
        token = routing.request_routing.set(self._routing_for(request))
        try:
            response: HttpResponse = await self.get_response(request)  # type: ignore[misc]
        finally:
            routing.request_routing.reset(token)
        if self._wrote(request, response):
            self._remember_write(request, response)
            await sync_to_async(self._record_credential, thread_sensitive=False)(request)
        return response

    @staticmethod
    def _routing_for(request: HttpRequest) -> routing.RequestRouting:
        pinned = request.method not in routing.SAFE_METHODS or _wrote_recently(request)
        return routing.RequestRouting(pinned=pinned, credential_key=_credential_key(request))

    @staticmethod
    def _wrote(request: HttpRequest, response: HttpResponse) -> bool:
        return request.method not in routing.SAFE_METHODS and response.status_code < 400

    @staticmethod
    def _remember_write(request: HttpRequest, response: HttpResponse) -> None:
        response.set_signed_cookie(
            routing.COOKIE_NAME,
            "1",
            salt=routing.COOKIE_SALT,
            max_age=settings.READ_YOUR_WRITES_SECONDS,
            secure=settings.SESSION_COOKIE_SECURE,
            httponly=True,
            samesite="Lax",
        )

    @staticmethod
    def _record_credential(request: HttpRequest) -> None:
        key = _credential_key(request)
        if key:
            cache.set(key, 1, timeout=max(1, round(settings.READ_YOUR_WRITES_SECONDS)))
