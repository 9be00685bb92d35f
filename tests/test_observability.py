"""Metrics that are right across gunicorn workers, request ids on every log line, a guarded /metrics.

The multi-worker tests start a real gunicorn (two gthread workers, a private
PROMETHEUS_MULTIPROC_DIR) against the test database, because the failure they guard against,
/metrics showing only the worker that answered the scrape, cannot happen in one process.
"""

import io
import json
import logging
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import yaml
from django.conf import settings
from django.urls import URLPattern, URLResolver, get_resolver
from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from project.devservers.live import Server
from project.observability import metrics
from project.observability.logs import JsonFormatter, RequestIdFilter, TextFormatter, request_id_var
from tests.conftest import client_for
from tests.factories import UserFactory
from tests.live_server import request as http_get
from tests.live_server import run_python, running_gunicorn

BASE_DIR = Path(__file__).resolve().parent.parent
ALERTS = BASE_DIR / "deploy" / "prometheus" / "alerts.yml"
DEADLINE_S = 60.0
POSTS_ROUTE = "/api/posts/"
POOL_SIZE = 3
WORKERS = 2

# --- a real gunicorn with two workers --------------------------------------------------------


@pytest.fixture
def gunicorn(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Server]:
    """`gunicorn -c project/gunicorn.conf.py` with 2 workers on a free port, on the test database.

    SERVER_MODE is `wsgi` unless the test is parametrized indirectly with "asgi".
    """
    env = {
        "DJANGO_ENV": "development",
        "WEB_CONCURRENCY": str(WORKERS),
        "SERVER_MODE": getattr(request, "param", "wsgi"),
        "DB_POOL_SIZE": str(POOL_SIZE),
        "METRICS_ENABLED": "true",
    }
    with running_gunicorn(tmp_path, env=env) as server:
        yield server


def metrics_dir(server: Server) -> Path:
    return server.log_path.parent / "prometheus"


def value_by_process(metrics_dir: Path, kind: str, name: str, labels: dict[str, str]) -> dict[str, float]:
    """A sample's value as each worker process recorded it, for processes where it is non-zero.

    prometheus_client writes one <kind>_<pid>.db file per process (kind "counter",
    "gauge_livesum"...); collecting one file at a time gives that process's own value, which
    /metrics never shows (it sums them).
    """
    values: dict[str, float] = {}
    for path in sorted(metrics_dir.glob(f"{kind}_*.db")):
        single = path.parent / f"single-{path.stem}"
        single.mkdir(exist_ok=True)
        shutil.copyfile(path, single / path.name)
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=str(single))
        value = registry.get_sample_value(name, labels)
        shutil.rmtree(single)
        if value:
            values[path.stem.removeprefix(f"{kind}_")] = value
    return values


def posts_requests_by_process(metrics_dir: Path) -> dict[str, float]:
    labels = {"method": "GET", "route": POSTS_ROUTE, "status": "200"}
    return value_by_process(metrics_dir, "counter", "postline_http_requests_total", labels)


def pool_max_by_process(metrics_dir: Path) -> dict[str, float]:
    labels = {"alias": "default", "state": "max"}
    return value_by_process(metrics_dir, "gauge_livesum", "postline_db_pool_connections", labels)


def scrape(server: Server) -> str:
    status, _, body = http_get(f"{server.base_url}/metrics")
    assert status == 200, body[:500]
    return body.decode()


def sample_value(exposition: str, name: str, labels: dict[str, str]) -> float | None:
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(key) == value for key, value in labels.items()):
                return float(sample.value)
    return None


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("gunicorn", ["wsgi", "asgi"], indirect=True)
def test_metrics_are_summed_over_both_gunicorn_workers(gunicorn: Server, request: pytest.FixtureRequest) -> None:
    """Requests spread over two workers; one scrape counts every one of them, by route.

    Under ASGI (uvicorn workers) the middlewares run as coroutines and the psycopg pool's
    state is summed over the live workers.
    """
    asgi = request.node.callspec.params["gunicorn"] == "asgi"
    # /api/posts/ may be answered from the cache without a query; /readyz always queries, so
    # under ASGI every worker that answers one has opened its pool.
    paths = ["/api/posts/?page_size=1"] * 12 + ["/readyz"] * 4
    sent = 0
    served_by: dict[str, float] = {}
    pools: dict[str, float] = {}
    deadline = time.monotonic() + DEADLINE_S
    with ThreadPoolExecutor(max_workers=8) as pool:
        # Concurrent batches on new connections, until both workers have answered some.
        while (len(served_by) < WORKERS or (asgi and len(pools) < WORKERS)) and time.monotonic() < deadline:
            statuses = list(pool.map(lambda path: http_get(f"{gunicorn.base_url}{path}")[0], paths))
            assert statuses == [200] * len(paths), gunicorn.log()[-2000:]
            sent += paths.count("/api/posts/?page_size=1")
            served_by = posts_requests_by_process(metrics_dir(gunicorn))
            pools = pool_max_by_process(metrics_dir(gunicorn))
    assert len(served_by) == WORKERS, f"one worker answered all {sent} requests: {served_by}"
    assert sum(served_by.values()) == sent

    exposition = scrape(gunicorn)
    labels = {"method": "GET", "route": POSTS_ROUTE, "status": "200"}
    assert sample_value(exposition, "postline_http_requests_total", labels) == sent
    histogram_count = sample_value(
        exposition, "postline_http_request_duration_seconds_count", {"method": "GET", "route": POSTS_ROUTE}
    )
    assert histogram_count == sent
    # Labelled by the pattern, never by the raw path with its query string.
    assert "page_size" not in exposition
    # django-prometheus's database and cache metrics are there too, summed; its request
    # metrics are not (they counted the same requests as postline_http_* a second time).
    assert "django_http_requests" not in exposition
    assert sample_value(exposition, "django_db_execute_total", {"alias": "default", "vendor": "postgresql"})
    pool_max = sample_value(exposition, "postline_db_pool_connections", {"alias": "default", "state": "max"})
    if asgi:
        assert pools == dict.fromkeys(served_by, float(POOL_SIZE))
        assert pool_max == POOL_SIZE * WORKERS
    else:
        assert pool_max is None  # no pool under WSGI, and none is created just to be measured


@pytest.mark.django_db(transaction=True)
def test_promtool_accepts_the_metrics_exposition(gunicorn: Server) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (Debian package `prometheus`; CI installs it)")
    for path in ("/api/posts/", "/api/posts/1/", "/healthz", "/nowhere"):
        http_get(f"{gunicorn.base_url}{path}")
    exposition = scrape(gunicorn)
    assert "postline_http_request_duration_seconds_bucket" in exposition
    result = subprocess.run(
        [promtool, "check", "metrics"], input=exposition, capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


# --- request ids and the access log ---------------------------------------------------------


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    """Every record that reaches the root logger, formatted as production writes it."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RequestIdFilter())
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield stream
    finally:
        root.removeHandler(handler)


def log_lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def access_lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [line for line in log_lines(stream) if line["logger"] == "project.access"]


@pytest.mark.django_db
def test_a_sane_request_id_is_echoed_and_on_every_log_line_of_the_request(client, json_log: io.StringIO) -> None:
    response = client.get("/api/posts/424242/", headers={"X-Request-ID": "edge-7f3a.b_9"})
    assert response.status_code == 404
    assert response["X-Request-ID"] == "edge-7f3a.b_9"

    lines = log_lines(json_log)
    # The access line and Django's own "Not Found" warning, logged after the middleware returned.
    assert {line["logger"] for line in lines} >= {"project.access", "django.request"}
    assert {line["request_id"] for line in lines} == {"edge-7f3a.b_9"}
    (access,) = access_lines(json_log)
    assert access["route"] == "/api/posts/{pk}/"
    assert access["path"] == "/api/posts/424242/"
    assert access["method"] == "GET"
    assert access["status"] == 404
    assert isinstance(access["duration_ms"], float)
    assert access["duration_ms"] > 0
    assert access["user_id"] is None
    assert access["remote_addr"] == "127.0.0.1"
    assert access["level"] == "INFO"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00", access["timestamp"])
    # Once the response is finished, later lines belong to no request.
    assert request_id_var.get() is None


@pytest.mark.parametrize(
    "incoming",
    [None, "", "has spaces", "x" * 129, "line\nbreak", 'quote"d', "ünïcode"],
    ids=["missing", "empty", "spaces", "too-long", "newline", "quote", "non-ascii"],
)
def test_a_missing_or_insane_request_id_is_replaced_by_a_fresh_one(
    client, json_log: io.StringIO, incoming: str | None
) -> None:
    headers = {} if incoming is None else {"X-Request-ID": incoming}
    response = client.get("/healthz", headers=headers)
    generated = response["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", generated)
    assert generated != incoming
    (access,) = access_lines(json_log)
    assert access["request_id"] == generated
    assert access["route"] == "/healthz"
    assert access["status"] == 200


@pytest.mark.django_db
def test_the_access_line_names_the_authenticated_user(json_log: io.StringIO) -> None:
    user = UserFactory.create()
    response = client_for(user).post("/api/posts/", {"title": "Hello", "body": "World"}, format="json")
    assert response.status_code == 201
    (access,) = access_lines(json_log)
    assert access["user_id"] == user.pk
    assert access["route"] == "/api/posts/"
    assert access["method"] == "POST"
    assert access["status"] == 201
    assert access["request_id"] == response["X-Request-ID"]


def test_text_format_keeps_the_request_id() -> None:
    record = logging.LogRecord("project.access", logging.INFO, __file__, 1, "GET /healthz 200", None, None)
    token = request_id_var.set("abc123")
    try:
        line = TextFormatter().format(record)
    finally:
        request_id_var.reset(token)
    assert line.endswith("INFO project.access [abc123] GET /healthz 200")


def test_json_format_writes_extras_and_exceptions_on_one_line() -> None:
    try:
        raise RuntimeError("boom")  # noqa: TRY301
    except RuntimeError:
        record = logging.getLogger("x").makeRecord(
            "x", logging.ERROR, __file__, 1, "failed %s", ("here",), sys.exc_info(), extra={"order": 7}
        )
    line = JsonFormatter().format(record)
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["message"] == "failed here"
    assert entry["order"] == 7
    assert entry["request_id"] == "-"
    assert "RuntimeError: boom" in entry["exception"]


# --- route labels ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "label"),
    [
        ("", "/"),
        ("healthz", "/healthz"),
        ("api/users/(?P<pk>[0-9]{1,18})/$", "/api/users/{pk}/"),
        ("api/users/(?P<pk>[0-9]{1,18})/posts/$", "/api/users/{pk}/posts/"),
        ("api/posts\\.(?P<format>[a-z0-9]+)/?$", "/api/posts.{format}"),
        ("admin/^(?P<app_label>auth|authtoken)/$", "/admin/{app_label}/"),
        ("admin/r/<path:content_type_id>/<path:object_id>/", "/admin/r/{content_type_id}/{object_id}/"),
        ("api/users/<int:pk>/overview/", "/api/users/{pk}/overview/"),
    ],
)
def test_route_labels_are_readable_patterns(pattern: str, label: str) -> None:
    assert metrics.readable_route(pattern) == label


def _all_routes(resolver: URLResolver, prefix: str = "") -> Iterator[str]:
    for entry in resolver.url_patterns:
        if isinstance(entry, URLResolver):
            yield from _all_routes(entry, prefix + str(entry.pattern))
        elif isinstance(entry, URLPattern):
            yield prefix + str(entry.pattern)


def test_every_url_pattern_has_a_label_without_regex_syntax() -> None:
    """A new route with an unusual regex shows up here, not as a confusing label in Grafana."""
    labels = {metrics.readable_route(route) for route in _all_routes(get_resolver())}
    assert POSTS_ROUTE in labels
    assert "/api/posts/{pk}/" in labels
    for label in labels:
        assert not set(label) & set("()[]\\^$?*+|<>"), label


def test_unmatched_urls_share_one_label(client) -> None:
    before = REGISTRY.get_sample_value(
        "postline_http_requests_total", {"method": "GET", "route": "<unmatched>", "status": "404"}
    )
    for number in range(3):
        assert client.get(f"/no/such/page/{number}").status_code == 404
    after = REGISTRY.get_sample_value(
        "postline_http_requests_total", {"method": "GET", "route": "<unmatched>", "status": "404"}
    )
    assert (after or 0) - (before or 0) == 3


# --- the helpers other modules call ----------------------------------------------------------


def _value(name: str, labels: dict[str, str]) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_cache_outbound_and_command_helpers_record_their_metrics() -> None:
    hits = _value("postline_cache_requests_total", {"endpoint": "post-detail", "result": "hit"})
    misses = _value("postline_cache_requests_total", {"endpoint": "post-detail", "result": "miss"})
    errors = _value("postline_cache_errors_total", {"operation": "get"})
    metrics.record_cache("post-detail", hit=True)
    metrics.record_cache("post-detail", hit=False)
    metrics.record_cache_error("get")
    assert _value("postline_cache_requests_total", {"endpoint": "post-detail", "result": "hit"}) == hits + 1
    assert _value("postline_cache_requests_total", {"endpoint": "post-detail", "result": "miss"}) == misses + 1
    assert _value("postline_cache_errors_total", {"operation": "get"}) == errors + 1

    outcomes = ("success", "http_error", "timeout", "error")
    before = {o: _value("postline_outbound_requests_total", {"target": "test", "outcome": o}) for o in outcomes}
    with metrics.track_outbound("test"):
        pass
    with metrics.track_outbound("test") as call:
        call.outcome = "http_error"
    with pytest.raises(TimeoutError), metrics.track_outbound("test"):
        raise TimeoutError
    with pytest.raises(ConnectionError), metrics.track_outbound("test"):
        raise ConnectionError
    after = {o: _value("postline_outbound_requests_total", {"target": "test", "outcome": o}) for o in outcomes}
    assert {o: after[o] - before[o] for o in outcomes} == dict.fromkeys(outcomes, 1.0)
    assert _value("postline_outbound_request_duration_seconds_count", {"target": "test"}) >= 4

    runs = _value("postline_command_runs_total", {"command": "test", "outcome": "success"})

    @metrics.time_command("test")
    def command() -> None:
        pass

    command()
    with pytest.raises(ValueError, match="x"), metrics.time_command("test"):
        raise ValueError("x")
    assert _value("postline_command_runs_total", {"command": "test", "outcome": "success"}) == runs + 1
    assert _value("postline_command_runs_total", {"command": "test", "outcome": "error"}) >= 1


# --- /metrics is not public in production ----------------------------------------------------

TOKEN = "t0k3n-for-the-scraper-0123456789abcdef"


@pytest.fixture
def production_metrics(settings) -> None:
    settings.PRODUCTION = True
    settings.METRICS_ALLOWED_NETWORKS = ["127.0.0.0/8", "::1/128", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"]
    settings.METRICS_TOKEN = TOKEN


@pytest.mark.usefixtures("production_metrics")
@pytest.mark.parametrize(
    ("remote_addr", "headers", "status"),
    [
        ("203.0.113.9", {}, 403),
        ("203.0.113.9", {"Authorization": f"Bearer {TOKEN}"}, 200),
        ("203.0.113.9", {"Authorization": "Bearer wrong"}, 403),
        ("203.0.113.9", {"Authorization": f"Token {TOKEN}"}, 403),
        ("10.4.0.17", {}, 200),
        ("192.168.1.5", {}, 200),
        ("127.0.0.1", {}, 200),
        ("::ffff:10.4.0.17", {}, 200),
        # Through the ingress: its in-cluster address is private, the client is not.
        ("10.4.0.17", {"X-Forwarded-For": "203.0.113.9"}, 403),
        ("10.4.0.17", {"X-Forwarded-For": "203.0.113.9", "Authorization": f"Bearer {TOKEN}"}, 200),
    ],
    ids=[
        "public",
        "public-token",
        "public-wrong-token",
        "public-wrong-scheme",
        "cluster",
        "private",
        "loopback",
        "v4-mapped",
        "proxied",
        "proxied-token",
    ],
)
def test_metrics_in_production_need_an_allowed_network_or_the_token(
    client, remote_addr: str, headers: dict[str, str], status: int
) -> None:
    response = client.get("/metrics", headers=headers, REMOTE_ADDR=remote_addr)
    assert response.status_code == status
    if status == 403:
        assert response.json() == {"detail": "Metrics are only served to the monitoring system."}
    else:
        assert b"postline_http_requests_total" in response.content


def test_metrics_are_open_in_development(client) -> None:
    assert not settings.PRODUCTION
    response = client.get("/metrics", REMOTE_ADDR="203.0.113.9")
    assert response.status_code == 200
    assert "no-cache" in response["Cache-Control"]


def _settings_in_subprocess(env: dict[str, str], expression: str) -> str:
    code = f"import django; django.setup(); from django.conf import settings; print({expression})"
    result = run_python("-c", code, env=env)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_metrics_enabled_false_removes_the_instrumentation() -> None:
    expression = "settings.MIDDLEWARE, settings.DATABASES['default']['ENGINE'], settings.CACHES['default']['BACKEND']"
    off = _settings_in_subprocess({"METRICS_ENABLED": "false"}, expression)
    on = _settings_in_subprocess({"METRICS_ENABLED": "true"}, expression)
    assert "prometheus" not in off.lower()
    assert "RequestMetricsMiddleware" not in off
    assert "project.http.middleware.RequestIdMiddleware" in off
    # The database engine and the cache backend; requests are counted by RequestMetricsMiddleware.
    assert on.lower().count("prometheus") == 2
    assert "RequestMetricsMiddleware" in on


def test_production_refuses_a_short_metrics_token() -> None:
    env = {
        "DJANGO_ENV": "production",
        "SECRET_KEY": "k3J9s!vQ2#pL8zX0wN5rT7yU1iO4aS6dF9gH2jK5lZ8xC1vB4nM7qW0eR3tY6uI9oP",
        "ALLOWED_HOSTS": "postline.example.com",
        "EMAIL_HOST": "smtp.example.com",
        "FRONTEND_URL": "https://postline.example.com",
        "METRICS_TOKEN": "short",
    }
    result = run_python("manage.py", "check", env=env)
    assert result.returncode == 1
    assert "METRICS_TOKEN" in result.stderr


# --- alert rules -----------------------------------------------------------------------------


def _annotations(alert: str) -> dict[str, str]:
    for group in yaml.safe_load(ALERTS.read_text())["groups"]:
        for rule in group["rules"]:
            if rule.get("alert") == alert:
                return dict(rule["annotations"])
    raise AssertionError(f"no alert {alert}")


def test_alert_rules_fire_when_they_should_and_only_then(tmp_path: Path) -> None:
    """`promtool test rules` on synthetic series: each alert fires past its threshold, not below."""
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (Debian package `prometheus`; CI installs it)")
    requests = 'postline_http_requests_total{method="GET",route="/api/posts/",status="%s"}'
    bucket = 'postline_http_request_duration_seconds_bucket{method="GET",route="/api/posts/",le="%s"}'
    error_rate = _annotations("PostlineHighErrorRate")
    latency = _annotations("PostlineHighLatencyP99")
    down = _annotations("PostlineTargetDown")
    tests = {
        "rule_files": [str(ALERTS)],
        "evaluation_interval": "1m",
        "tests": [
            {  # 2% of requests fail: fires after its 5 minutes
                "interval": "1m",
                "input_series": [
                    {"series": requests % "200", "values": "0+980x30"},
                    {"series": requests % "500", "values": "0+20x30"},
                ],
                "alert_rule_test": [
                    {"eval_time": "4m", "alertname": "PostlineHighErrorRate", "exp_alerts": []},
                    {
                        "eval_time": "15m",
                        "alertname": "PostlineHighErrorRate",
                        "exp_alerts": [
                            {
                                "exp_labels": {"severity": "page"},
                                "exp_annotations": {
                                    **error_rate,
                                    "summary": "Postline answers 2% of requests with a 5xx",
                                },
                            }
                        ],
                    },
                ],
            },
            {  # 0.5% fail: no alert
                "interval": "1m",
                "input_series": [
                    {"series": requests % "200", "values": "0+995x30"},
                    {"series": requests % "503", "values": "0+5x30"},
                ],
                "alert_rule_test": [{"eval_time": "20m", "alertname": "PostlineHighErrorRate", "exp_alerts": []}],
            },
            {  # every request between 0.5 s and 1 s: p99 about 995 ms
                "interval": "1m",
                "input_series": [
                    {"series": bucket % "0.25", "values": "0+0x40"},
                    {"series": bucket % "0.5", "values": "0+0x40"},
                    {"series": bucket % "1.0", "values": "0+100x40"},
                    {"series": bucket % "+Inf", "values": "0+100x40"},
                ],
                "alert_rule_test": [
                    {
                        "eval_time": "30m",
                        "alertname": "PostlineHighLatencyP99",
                        "exp_alerts": [
                            {
                                "exp_labels": {"severity": "page"},
                                "exp_annotations": {
                                    **latency,
                                    "summary": "Postline p99 latency is 995ms (over 500 ms)",
                                },
                            }
                        ],
                    }
                ],
            },
            {  # every request under 250 ms: no alert
                "interval": "1m",
                "input_series": [
                    {"series": bucket % "0.25", "values": "0+100x40"},
                    {"series": bucket % "0.5", "values": "0+100x40"},
                    {"series": bucket % "+Inf", "values": "0+100x40"},
                ],
                "alert_rule_test": [{"eval_time": "30m", "alertname": "PostlineHighLatencyP99", "exp_alerts": []}],
            },
            {  # the scrape fails for good
                "interval": "1m",
                "input_series": [{"series": 'up{job="postline",instance="app:8000"}', "values": "1 1 0x10"}],
                "alert_rule_test": [
                    {
                        "eval_time": "6m",
                        "alertname": "PostlineTargetDown",
                        "exp_alerts": [
                            {
                                "exp_labels": {"severity": "page", "job": "postline", "instance": "app:8000"},
                                "exp_annotations": {
                                    "summary": "Postline instance app:8000 is down",
                                    "description": down["description"].replace("{{ $labels.instance }}", "app:8000"),
                                },
                            }
                        ],
                    }
                ],
            },
        ],
    }
    test_file = tmp_path / "alerts.test.yml"
    test_file.write_text(yaml.safe_dump(tests))
    result = subprocess.run(
        [promtool, "test", "rules", str(test_file)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
