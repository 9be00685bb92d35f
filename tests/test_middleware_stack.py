"""No middleware is adapted: the stack runs sync in a thread for sync views and on the event
loop for async views (project/server/handler.py builds both under ASGI).

A sync-only middleware makes Django run it, and every middleware above it, in a thread per
request (sync_to_async), and switch back with async_to_sync below it; an async-only one, an
event loop per request in the sync stack. docs/performance.md measured what each cost. Django
logs each adaptation at DEBUG when it builds a handler, which is what this reads, in a process
started with each SERVER_MODE.
"""

import pytest
from django.conf import settings
from django.test import Client

from tests.live_server import run_python

BUILD_HANDLERS = """
import logging, os
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
import django
django.setup()
logging.getLogger("django.request").setLevel(logging.DEBUG)
from django.conf import settings
from django.core.handlers.wsgi import WSGIHandler
from project.server.handler import PostlineASGIHandler
handler = PostlineASGIHandler() if settings.SERVER_MODE == "asgi" else WSGIHandler()
print("middleware:", ",".join(settings.MIDDLEWARE))
"""


def adaptations(server_mode: str) -> tuple[list[str], str]:
    result = run_python("-c", BUILD_HANDLERS, env={"SERVER_MODE": server_mode, "LOG_FORMAT": "text"})
    assert result.returncode == 0, result.stderr
    adapted = [line for line in result.stderr.splitlines() if "adapted" in line]
    return adapted, result.stdout


@pytest.mark.parametrize("server_mode", ["asgi", "wsgi"])
def test_no_middleware_is_adapted(server_mode: str) -> None:
    adapted, middleware = adaptations(server_mode)
    assert adapted == []
    assert "project.http.middleware.StaticFilesMiddleware" in middleware


def test_requests_are_counted_by_one_metrics_middleware() -> None:
    """django-prometheus's request middlewares counted every request a second time (68 us of the
    trivial view's 266 in-process, docs/performance.md): they stay out of the stack."""
    assert not [name for name in settings.MIDDLEWARE if "prometheus" in name.lower()]
    assert settings.MIDDLEWARE.count("project.http.middleware.RequestMetricsMiddleware") == 1


@pytest.mark.django_db
def test_api_calls_without_a_cookie_build_no_session_user_or_message_store(client: Client) -> None:
    """What only browsers use stays off an API client's path (docs/performance.md)."""
    response = client.get("/api/posts/")
    assert response.status_code == 200
    assert not hasattr(response.wsgi_request, "session")
    assert not hasattr(response.wsgi_request, "_messages")


@pytest.mark.django_db
def test_api_calls_with_a_cookie_and_browser_pages_get_the_whole_stack(client: Client) -> None:
    client.cookies["sessionid"] = "not-a-session"
    api = client.get("/api/posts/")
    assert api.status_code == 200
    assert hasattr(api.wsgi_request, "session")
    assert hasattr(api.wsgi_request, "_messages")
    client.cookies.clear()
    page = client.get("/admin/login/")
    assert hasattr(page.wsgi_request, "session")
    assert page["Content-Security-Policy"] == settings.CONTENT_SECURITY_POLICY
    assert page["X-Frame-Options"] == "DENY"
