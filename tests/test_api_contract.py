"""Cross-cutting API behaviour: throttling, the error shape, the OpenAPI document."""

import pytest
from django.core.management import call_command
from django.test import Client
from rest_framework.throttling import AnonRateThrottle, ScopedRateThrottle

pytestmark = pytest.mark.django_db


def test_token_endpoint_throttles_password_guessing_with_retry_after(api_client, monkeypatch) -> None:
    monkeypatch.setattr(ScopedRateThrottle, "THROTTLE_RATES", {"auth": "3/min"})
    statuses = [
        api_client.post("/api/auth/token/", {"email": "a@example.com", "password": "guess"}, format="json").status_code
        for _ in range(4)
    ]
    assert statuses == [400, 400, 400, 429]
    response = api_client.post("/api/auth/token/", {"email": "a@example.com", "password": "guess"}, format="json")
    assert 0 < int(response["Retry-After"]) <= 60


def test_anonymous_reads_are_throttled(api_client, monkeypatch) -> None:
    monkeypatch.setattr(AnonRateThrottle, "THROTTLE_RATES", {"anon": "2/min", "user": "100/min"})
    assert [api_client.get("/api/posts/").status_code for _ in range(3)] == [200, 200, 429]


def test_unhandled_errors_are_json_without_a_traceback(settings) -> None:
    """A view that crashes, routed through the real URLconf and handler500."""
    settings.ROOT_URLCONF = "tests.crashing_urls"
    client = Client(raise_request_exception=False)
    response = client.get("/crash/")
    assert response.status_code == 500
    assert response.json() == {"detail": "Internal server error."}
    assert b"Traceback" not in response.content


def test_openapi_schema_is_valid_and_describes_every_endpoint(tmp_path) -> None:
    out = tmp_path / "schema.yml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(out))
    schema = out.read_text()
    for path in (
        "/api/users/:",
        "/api/users/{id}/:",
        "/api/users/me/:",
        "/api/users/{id}/posts/:",
        "/api/auth/token/:",
        "/api/posts/:",
        "/api/posts/{id}/:",
    ):
        assert path in schema
    assert "tokenAuth" in schema
    assert "name: cursor" in schema
    assert "name: search" in schema
    assert "name: metadata" in schema


def test_swagger_ui_is_served(client) -> None:
    assert client.get("/api/docs/").status_code == 200
    assert client.get("/api/schema/").status_code == 200


def test_unmatched_urls_answer_json_404(client, settings) -> None:
    settings.DEBUG = False
    response = client.get("/api/posts//")
    assert response.status_code == 404
    assert response.json() == {"detail": "Not found."}
