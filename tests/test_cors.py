"""CORS through django-cors-headers' middleware, as settings install it: browser clients on the
allowed origins (CORS_ALLOWED_ORIGINS) may call /api/, others get no CORS header at all."""

import pytest
from django.conf import settings

from tests.live_server import run_python
from tests.test_settings import PRODUCTION_ENV

pytestmark = pytest.mark.django_db
ALLOWED = "http://localhost:3000"  # one of the development defaults


def preflight(client, origin: str, path: str = "/api/posts/"):
    return client.options(
        path,
        HTTP_ORIGIN=origin,
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST",
        HTTP_ACCESS_CONTROL_REQUEST_HEADERS="authorization, content-type",
    )


def test_the_middleware_is_installed_with_the_default_origins() -> None:
    assert ALLOWED in settings.CORS_ALLOWED_ORIGINS
    assert "corsheaders.middleware.CorsMiddleware" in settings.MIDDLEWARE


def test_a_preflight_from_an_allowed_origin_succeeds_and_is_cacheable(client) -> None:
    response = preflight(client, ALLOWED)
    assert response.status_code == 200
    assert response["Access-Control-Allow-Origin"] == ALLOWED
    assert "authorization" in response["Access-Control-Allow-Headers"].split(", ")
    assert "POST" in response["Access-Control-Allow-Methods"]
    assert response["Access-Control-Max-Age"] == "86400"


def test_a_preflight_from_another_origin_gets_no_cors_header(client) -> None:
    response = preflight(client, "https://evil.example.com")
    assert not [name for name in response.headers if name.lower().startswith("access-control-")]


def test_an_allowed_origins_read_may_see_the_etag(client) -> None:
    response = client.get("/api/posts/", HTTP_ORIGIN=ALLOWED)
    assert response.status_code == 200
    assert response["Access-Control-Allow-Origin"] == ALLOWED
    exposed = set(response["Access-Control-Expose-Headers"].split(", "))
    assert exposed >= {"ETag", "Retry-After", "RateLimit-Policy", "RateLimit"}
    assert "origin" in response["Vary"].lower()


def test_pages_outside_the_api_get_no_cors_header(client) -> None:
    response = client.get("/healthz", HTTP_ORIGIN=ALLOWED)
    assert "Access-Control-Allow-Origin" not in response


def test_production_allows_no_origin_unless_told() -> None:
    probe = (
        "from django.conf import settings; "
        "print(settings.CORS_ALLOWED_ORIGINS, 'corsheaders.middleware.CorsMiddleware' in settings.MIDDLEWARE)"
    )
    default = run_python("manage.py", "shell", "-c", probe, env=PRODUCTION_ENV)
    assert default.stdout.strip().endswith("[] False"), default.stderr
    told = run_python(
        "manage.py", "shell", "-c", probe, env={**PRODUCTION_ENV, "CORS_ALLOWED_ORIGINS": "https://app.example.com"}
    )
    assert told.stdout.strip().endswith("['https://app.example.com'] True"), told.stderr
