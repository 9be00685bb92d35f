"""Under ASGI the middleware stack runs on the event loop: no middleware is adapted to sync.

A sync-only middleware makes Django run it, and every middleware above it, in a thread per
request (sync_to_async), and switch back with async_to_sync below it; docs/performance.md
measured what that cost the overview. Django logs each adaptation at DEBUG when it builds the
handler, which is what this reads, in a process started with SERVER_MODE=asgi.
"""

import asyncio

from asgiref.sync import SyncToAsync, ThreadSensitiveContext, iscoroutinefunction
from django.http import HttpRequest, HttpResponse
from django.test import RequestFactory
from prometheus_client import REGISTRY

from project.middleware import PrometheusAfterMiddleware, PrometheusBeforeMiddleware
from tests.live_server import run_python

BUILD_HANDLERS = """
import logging, os
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
import django
django.setup()
logging.getLogger("django.request").setLevel(logging.DEBUG)
from django.conf import settings
from django.core.handlers.asgi import ASGIHandler
from django.core.handlers.wsgi import WSGIHandler
handler = ASGIHandler() if settings.SERVER_MODE == "asgi" else WSGIHandler()
print("middleware:", ",".join(settings.MIDDLEWARE))
"""


def adaptations(server_mode: str) -> tuple[list[str], str]:
    result = run_python("-c", BUILD_HANDLERS, env={"SERVER_MODE": server_mode, "LOG_FORMAT": "text"})
    assert result.returncode == 0, result.stderr
    adapted = [line for line in result.stderr.splitlines() if "adapted" in line]
    return adapted, result.stdout


def test_no_middleware_is_adapted_under_asgi() -> None:
    adapted, middleware = adaptations("asgi")
    assert adapted == []
    assert "servestatic.middleware.ServeStaticMiddleware" in middleware
    assert "whitenoise" not in middleware


def test_no_middleware_is_adapted_under_wsgi() -> None:
    adapted, middleware = adaptations("wsgi")
    assert adapted == []
    assert "whitenoise.middleware.WhiteNoiseMiddleware" in middleware
    assert "servestatic" not in middleware


def test_django_prometheus_metrics_are_recorded_on_the_event_loop() -> None:
    """Our subclasses of django-prometheus's middlewares count the request without sync_to_async:
    no thread-sensitive executor is created for the request's context."""

    async def view(request: HttpRequest) -> HttpResponse:
        return HttpResponse("ok")

    after = PrometheusAfterMiddleware(view)
    chain = PrometheusBeforeMiddleware(after)
    assert iscoroutinefunction(after.process_view)

    async def one_request() -> tuple[HttpResponse, bool]:
        async with ThreadSensitiveContext() as context:
            response: HttpResponse = await chain(RequestFactory().get("/anything"))
            return response, context in SyncToAsync.context_to_thread_executor

    before = REGISTRY.get_sample_value("django_http_requests_before_middlewares_total") or 0.0
    responses_before = REGISTRY.get_sample_value("django_http_responses_total_by_status_total", {"status": "200"})
    response, used_a_thread = asyncio.run(one_request())
    assert response.status_code == 200
    assert not used_a_thread
    assert REGISTRY.get_sample_value("django_http_requests_before_middlewares_total") == before + 1
    assert (
        REGISTRY.get_sample_value("django_http_responses_total_by_status_total", {"status": "200"})
        == (responses_before or 0.0) + 1
    )
