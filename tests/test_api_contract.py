"""Cross-cutting API behaviour: throttling, the error shape, the OpenAPI document."""

import pytest
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django_redis import get_redis_connection

from project.devservers import embedded
from project.http.api import DATABASE_UNAVAILABLE, QUERY_TOO_SLOW
from tests.conftest import client_for
from tests.live_server import request, run_python, running_gunicorn

pytestmark = pytest.mark.django_db


def redis_calls(command: str) -> int:
    stats = get_redis_connection("default").info("commandstats")
    return int(stats.get(f"cmdstat_{command}", {}).get("calls", 0))


def with_rates(settings, **rates: str) -> None:
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], **rates},
    }


def test_token_endpoint_throttles_password_guessing_with_retry_after(api_client, settings) -> None:
    with_rates(settings, auth="3/day")  # a day-long window cannot roll over mid-test
    statuses = [
        api_client.post("/api/auth/token/", {"email": "a@example.com", "password": "guess"}, format="json").status_code
        for _ in range(4)
    ]
    assert statuses == [400, 400, 400, 429]
    response = api_client.post("/api/auth/token/", {"email": "a@example.com", "password": "guess"}, format="json")
    assert 0 < int(response["Retry-After"]) <= 86_400


def test_anonymous_reads_are_throttled(api_client, settings) -> None:
    with_rates(settings, anon="2/day")
    assert [api_client.get("/api/posts/").status_code for _ in range(3)] == [200, 200, 429]


def test_signed_in_users_have_their_own_budget(api_client, user, settings) -> None:
    with_rates(settings, anon="1/day", user="3/day")
    signed_in = client_for(user)
    assert [signed_in.get("/api/posts/").status_code for _ in range(4)] == [200, 200, 200, 429]
    assert api_client.get("/api/posts/").status_code == 200


def test_a_high_limit_is_counted_in_batches_and_enforced_exactly(api_client, settings) -> None:
    """300 a day: batches of 3 (project/http/throttling.py), so a third of the requests far from the
    limit reach Redis, and from a batch below it every request does; the 301st is refused."""
    with_rates(settings, anon="300/day")
    script_calls = redis_calls("evalsha")
    statuses = [api_client.get("/api/posts/").status_code for _ in range(30)]
    assert redis_calls("evalsha") - script_calls == 10
    statuses += [api_client.get("/api/posts/").status_code for _ in range(271)]
    assert statuses == [200] * 300 + [429]


def rate_limit(value: str) -> tuple[str, int, int]:
    """A `RateLimit` field's policy, remaining requests and seconds to the window's end."""
    policy, remaining, reset = value.split(";")
    assert remaining.startswith("r=")
    assert reset.startswith("t=")
    return policy, int(remaining[2:]), int(reset[2:])


def test_rate_limit_headers_count_down_and_match_the_429(api_client, settings) -> None:
    with_rates(settings, anon="3/day")
    responses = [api_client.get("/api/posts/") for _ in range(4)]
    assert [r.status_code for r in responses] == [200, 200, 200, 429]
    assert [r["RateLimit-Policy"] for r in responses] == ['"anon";q=3;w=86400'] * 4
    limits = [rate_limit(r["RateLimit"]) for r in responses]
    assert [(policy, remaining) for policy, remaining, _ in limits] == [('"anon"', n) for n in (2, 1, 0, 0)]
    refused = responses[-1]
    assert limits[-1][2] == int(refused["Retry-After"])
    assert 0 < int(refused["Retry-After"]) <= 86_400


def test_each_policy_names_its_scope(user, settings) -> None:
    with_rates(settings, user="50/day")
    response = client_for(user).get("/api/posts/")
    assert response["RateLimit-Policy"] == '"user";q=50;w=86400'
    assert rate_limit(response["RateLimit"])[:2] == ('"user"', 49)


def test_an_unthrottled_response_carries_no_rate_limit_header(api_client) -> None:
    response = api_client.get("/healthz")
    assert "RateLimit" not in response
    assert "RateLimit-Policy" not in response


@pytest.mark.django_db(transaction=True)
def test_rate_limit_headers_count_down_across_two_workers(tmp_path) -> None:
    """New connections, so both gunicorn workers answer: one count in Redis for the client."""
    with running_gunicorn(tmp_path, env={"THROTTLE_ANON": "8/day"}) as server:
        answers = [request(f"{server.base_url}/api/posts/") for _ in range(9)]
    assert [status for status, _, _ in answers] == [200] * 8 + [429]
    limits = [rate_limit(headers["RateLimit"]) for _, headers, _ in answers]
    assert [remaining for _, remaining, _ in limits] == [*range(7, -1, -1), 0]
    assert limits[-1][2] == int(answers[-1][1]["Retry-After"])


def test_throttling_fails_open_when_redis_is_down(api_client, own_redis, settings) -> None:
    with_rates(settings, anon="1/day")
    assert api_client.get("/api/posts/").status_code == 200
    embedded.stop_redis(own_redis)
    assert [api_client.get("/api/posts/").status_code for _ in range(3)] == [200, 200, 200]


def test_unhandled_errors_are_json_without_a_traceback(settings) -> None:
    """A view that crashes, routed through the real URLconf and handler500."""
    settings.ROOT_URLCONF = "tests.crashing_urls"
    client = Client(raise_request_exception=False)
    response = client.get("/crash/")
    assert response.status_code == 500
    assert response.json() == {"detail": "Internal server error."}
    assert b"Traceback" not in response.content


def test_a_query_cancelled_by_the_statement_timeout_is_a_503(db, settings) -> None:
    settings.ROOT_URLCONF = "tests.crashing_urls"
    response = Client(raise_request_exception=False).get("/slow/")
    assert response.status_code == 503
    assert response.json() == {"detail": QUERY_TOO_SLOW}
    assert response["Retry-After"]


def test_web_entry_points_set_a_statement_timeout_and_commands_do_not() -> None:
    show = "from django.conf import settings; print(settings.DATABASES['default']['OPTIONS']['options'])"
    for entry_point in ("project.wsgi", "project.asgi"):
        served = run_python("-c", f"import {entry_point}; {show}", env={})
        assert served.stdout.split() == ["-c", "jit=off", "-c", "statement_timeout=5000"], served.stderr
    setup = "import django; django.setup()"
    command = run_python("-c", f"{setup}; {show}", env={"DJANGO_SETTINGS_MODULE": "project.settings"})
    assert command.stdout.split() == ["-c", "jit=off"], command.stderr


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


@pytest.mark.parametrize(
    ("accept", "status", "content_type"),
    [
        (None, 200, "application/json"),
        ("*/*", 200, "application/json"),
        ("application/json", 200, "application/json"),
        ("application/*", 200, "application/json"),
        ("text/html", 200, "text/html; charset=utf-8"),
        ("image/png", 406, None),
    ],
)
def test_content_negotiation_answers_as_drf_does(
    api_client, accept: str | None, status: int, content_type: str | None
) -> None:
    """JSONFirstNegotiation answers the common Accept headers at once; the rest go to DRF's
    (text/html: the browsable API)."""
    headers = {"HTTP_ACCEPT": accept} if accept is not None else {}
    response = api_client.get("/api/posts/?page_size=1", **headers)
    assert response.status_code == status
    if content_type is not None:
        assert response["Content-Type"] == content_type


@pytest.mark.django_db(transaction=True)
def test_a_write_refused_by_a_read_only_server_is_a_503(user) -> None:
    """What a write meets on a primary demoted in a failover (or a standby): a transient 503."""
    client = client_for(user)
    with connection.cursor() as cursor:
        cursor.execute("SET default_transaction_read_only = on")
    try:
        response = client.post("/api/posts/", {"title": "t", "body": "b"}, format="json")
    finally:
        with connection.cursor() as cursor:
            cursor.execute("RESET default_transaction_read_only")
    assert response.status_code == 503, response.content
    assert response.json() == {"detail": DATABASE_UNAVAILABLE}
    assert response["Retry-After"]
