"""Postline's own Prometheus metrics, and the guarded /metrics endpoint.

Every metric here works in prometheus_client's multiprocess mode (several gunicorn workers
write to PROMETHEUS_MULTIPROC_DIR, /metrics sums their files): counters, histograms, and
gauges with an explicit `multiprocess_mode`. No `set_function`, custom collector, Info or
Enum, which multiprocess mode cannot export.

Labels have bounded values. Requests are labelled by the URL *pattern* that matched
(`/api/users/{pk}/`), never by the raw path, which would make one series per user id.

Other modules call the functions, not the metric objects:
- `record_cache(endpoint, hit)`, `record_cache_error(operation)`: project/cache/store.py;
- `track_outbound(target)`: outbound HTTP calls (timing, outcome);
- `time_command(command)`: management commands, as a context manager or a decorator;
- `observe_request(...)`: project.http.middleware.RequestMetricsMiddleware, once per request;
- `record_job(task, outcome, seconds)`, `set_jobs_waiting(queue, count, oldest_seconds)`: project/jobs.
"""

import hmac
import ipaddress
import logging
import os
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache

from django.conf import settings
from django.db.backends.postgresql.base import DatabaseWrapper
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django_prometheus.exports import ExportToDjangoView
from prometheus_client import Counter, Gauge, Histogram

logger = logging.getLogger(__name__)

# Multiprocess mode writes one file per process and metric there: a process that is not gunicorn
# (a command, the job worker) may be the first to need the directory.
if multiprocess_dir := os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.makedirs(multiprocess_dir, exist_ok=True)

# 1 ms to 10 s: the cheapest endpoint answers in about a millisecond, the gunicorn timeout is 30 s.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
JOB_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
COMMAND_BUCKETS = (0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0)

UNMATCHED_ROUTE = "<unmatched>"
STATIC_ROUTE = "/static/{path}"
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"})

# --- the metrics ----------------------------------------------------------------------------

http_requests_total = Counter(
    "postline_http_requests_total",
    "HTTP requests answered, by method, matched URL pattern and status code.",
    ["method", "route", "status"],
)
http_request_duration_seconds = Histogram(
    "postline_http_request_duration_seconds",
    "Time from the request reaching Django's middleware to the response leaving it, by route.",
    ["method", "route"],
    buckets=LATENCY_BUCKETS,
)
cache_requests_total = Counter(
    "postline_cache_requests_total",
    "Reads of a cached endpoint, by endpoint and result (hit or miss).",
    ["endpoint", "result"],
)
cache_errors_total = Counter(
    "postline_cache_errors_total",
    "Cache operations that failed (Redis unreachable or timing out) and were answered without the cache.",
    ["operation"],
)
outbound_requests_total = Counter(
    "postline_outbound_requests_total",
    "Calls to other services, by target and outcome (success, http_error, timeout, error).",
    ["target", "outcome"],
)
outbound_request_duration_seconds = Histogram(
    "postline_outbound_request_duration_seconds",
    "Duration of calls to other services, by target, whatever their outcome.",
    ["target"],
    buckets=LATENCY_BUCKETS,
)
db_pool_connections = Gauge(
    "postline_db_pool_connections",
    "psycopg pool connections (ASGI mode), sampled at the end of each request: "
    "state is open, idle, in_use, waiting (requests queued for a connection) or max. "
    "Summed over the live worker processes.",
    ["alias", "state"],
    multiprocess_mode="livesum",
)
command_duration_seconds = Histogram(
    "postline_command_duration_seconds",
    "Duration of management commands, by command.",
    ["command"],
    buckets=COMMAND_BUCKETS,
)
command_runs_total = Counter(
    "postline_command_runs_total",
    "Management command runs, by command and outcome (success or error).",
    ["command", "outcome"],
)

jobs_total = Counter(
    "postline_jobs_total",
    "Jobs the queue's workers ran, by task and outcome: succeeded, retried (failed, will run "
    "again after a backoff) or failed (out of attempts; kept for staff in the admin).",
    ["task", "outcome"],
)
job_duration_seconds = Histogram(
    "postline_job_duration_seconds",
    "Duration of one attempt at a job, by task, whatever its outcome.",
    ["task"],
    buckets=JOB_BUCKETS,
)
jobs_waiting = Gauge(
    "postline_jobs_waiting",
    "Jobs due to run and not yet taken by a worker (the queue's depth), as a worker last counted them.",
    ["queue"],
    multiprocess_mode="mostrecent",
)
job_oldest_waiting_seconds = Gauge(
    "postline_job_oldest_waiting_seconds",
    "How long the oldest job due to run has waited for a worker (0 with none), by queue.",
    ["queue"],
    multiprocess_mode="mostrecent",
)

# --- the functions other modules call ------------------------------------------------------


def record_job(task: str, outcome: str, seconds: float) -> None:
    """One attempt at a job: `task` is the task's import path, `outcome` succeeded, retried or failed."""
    jobs_total.labels(task=task, outcome=outcome).inc()
    job_duration_seconds.labels(task=task).observe(seconds)


def set_jobs_waiting(queue: str, count: int, oldest_seconds: float) -> None:
    jobs_waiting.labels(queue=queue).set(count)
    job_oldest_waiting_seconds.labels(queue=queue).set(oldest_seconds)


def record_cache(endpoint: str, hit: bool) -> None:
    """One read of a cached endpoint: `endpoint` is a fixed name such as "post-detail"."""
    cache_requests_total.labels(endpoint=endpoint, result="hit" if hit else "miss").inc()


def record_cache_error(operation: str) -> None:
    """A cache operation ("get", "set", "delete"...) that failed and was served without the cache."""
    cache_errors_total.labels(operation=operation).inc()


@dataclass
class OutboundCall:
    """Set `outcome` (e.g. "http_error" on a 5xx) before the `with` block ends to override "success"."""

    target: str
    outcome: str | None = None


def _failure_outcome(error: BaseException) -> str:
    if isinstance(error, TimeoutError) or "Timeout" in type(error).__name__:  # httpx.TimeoutException...
        return "timeout"
    return "error"


def record_outbound(target: str, outcome: str, seconds: float) -> None:
    outbound_requests_total.labels(target=target, outcome=outcome).inc()
    outbound_request_duration_seconds.labels(target=target).observe(seconds)


@contextmanager
def track_outbound(target: str) -> Iterator[OutboundCall]:
    """Time a call to another service; works around `await` too.

        with track_outbound("avatars") as call:
            response = await client.get(url)
            if response.status_code >= 500:
                call.outcome = "http_error"

    An exception leaving the block counts as "timeout" or "error" and is re-raised.
    """
    call = OutboundCall(target=target)
    started = time.perf_counter()
    try:
        yield call
    except BaseException as error:
        record_outbound(target, _failure_outcome(error), time.perf_counter() - started)
        raise
    record_outbound(target, call.outcome or "success", time.perf_counter() - started)


@contextmanager
def time_command(command: str) -> Iterator[None]:
    """Time a management command: `with time_command("seed"):` or `@time_command("seed")`.

    Besides the histogram (exported when the command runs with PROMETHEUS_MULTIPROC_DIR set,
    e.g. inside a running app container), one log line records the duration, since a
    one-off process is usually gone before Prometheus could scrape it.
    """
    started = time.perf_counter()
    outcome = "error"
    try:
        yield
        outcome = "success"
    finally:
        seconds = time.perf_counter() - started
        command_duration_seconds.labels(command=command).observe(seconds)
        command_runs_total.labels(command=command, outcome=outcome).inc()
        logger.info(
            "command %s: %s in %.1f s",
            command,
            outcome,
            seconds,
            extra={"command": command, "outcome": outcome, "duration_ms": round(seconds * 1000, 1)},
        )


# --- request metrics (called by project.http.middleware) -----------------------------------------

_NAMED_GROUP = re.compile(r"\(\?P<(\w+)>")
_CONVERTER = re.compile(r"<(?:\w+:)?(\w+)>")


def _group_end(pattern: str, start: int) -> int:
    """Index of the parenthesis closing the group that opens at `start`."""
    depth = 0
    index = start
    while index < len(pattern):
        char = pattern[index]
        if char == "\\":
            index += 2
            continue
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth == 0:
                return index
        index += 1
    return len(pattern) - 1


@lru_cache(maxsize=1024)
def readable_route(route: str) -> str:
    """A URL pattern as a stable, readable label.

    `api/users/(?P<pk>[0-9]{1,18})/$` (a DRF router's regex) and `api/users/<int:pk>/` (path())
    both become `/api/users/{pk}/`; a format suffix `\\.(?P<format>[a-z0-9]+)/?$` becomes `.{format}`.
    """
    parts: list[str] = []
    index = 0
    while index < len(route):
        char = route[index]
        if char == "\\" and index + 1 < len(route):
            parts.append(route[index + 1])
            index += 2
        elif char == "(":
            end = _group_end(route, index)
            named = _NAMED_GROUP.match(route, index)
            parts.append(f"{{{named.group(1)}}}" if named else "{}")
            index = end + 1
        else:
            parts.append(char)
            index += 1
    readable = _CONVERTER.sub(r"{\1}", "".join(parts)).replace("/?", "")
    readable = re.sub(r"[\^$?*+]", "", readable)
    return "/" + readable.lstrip("/")


def route_of(request: HttpRequest) -> str:
    match = getattr(request, "resolver_match", None)
    if match is not None and match.route is not None:
        return readable_route(match.route)
    if request.path.startswith(f"/{settings.STATIC_URL.lstrip('/')}"):
        return STATIC_ROUTE  # served by WhiteNoise before any URL is resolved
    return UNMATCHED_ROUTE


def method_of(request: HttpRequest) -> str:
    method = request.method or ""
    return method if method in KNOWN_METHODS else "other"


def _sample_db_pools() -> None:
    """Record the psycopg pools' state; only pools that already exist (ASGI mode) are read."""
    # Django keeps one pool per alias in this class attribute; reading DatabaseWrapper.pool
    # instead would create a pool where none should be (WSGI mode).
    pools = getattr(DatabaseWrapper, "_connection_pools", {})
    for alias, pool in list(pools.items()):
        stats = pool.get_stats()
        size = stats.get("pool_size", 0)
        idle = stats.get("pool_available", 0)
        for state, value in (
            ("open", size),
            ("idle", idle),
            ("in_use", size - idle),
            ("waiting", stats.get("requests_waiting", 0)),
            ("max", stats.get("pool_max", 0)),
        ):
            db_pool_connections.labels(alias=alias, state=state).set(value)


def observe_request(request: HttpRequest, response: HttpResponse, seconds: float) -> None:
    method = method_of(request)
    route = route_of(request)
    http_requests_total.labels(method=method, route=route, status=str(response.status_code)).inc()
    http_request_duration_seconds.labels(method=method, route=route).observe(seconds)
    _sample_db_pools()


# --- GET /metrics ----------------------------------------------------------------------------

FORWARDING_HEADERS = ("HTTP_X_FORWARDED_FOR", "HTTP_FORWARDED", "HTTP_X_REAL_IP")


@lru_cache(maxsize=8)
def _networks(cidrs: tuple[str, ...]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(cidr, strict=False) for cidr in cidrs)


def _from_allowed_network(request: HttpRequest) -> bool:
    """A direct connection from an allowed network.

    A request that came through a proxy (the ingress adds X-Forwarded-For) arrives from the
    proxy's in-cluster address, which the private ranges would allow: such requests must
    present the token instead.
    """
    if any(request.META.get(header) for header in FORWARDING_HEADERS):
        return False
    try:
        address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return any(address in network for network in _networks(tuple(settings.METRICS_ALLOWED_NETWORKS)))


def _has_token(request: HttpRequest) -> bool:
    token: str = settings.METRICS_TOKEN
    scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
    if not token or scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(presented.strip().encode(), token.encode())


def metrics_access_allowed(request: HttpRequest) -> bool:
    if not settings.PRODUCTION:
        return True
    return _has_token(request) or _from_allowed_network(request)


@never_cache
def metrics_view(request: HttpRequest) -> HttpResponse:
    """django-prometheus's exporter (summed over workers in multiprocess mode), not public.

    In production it answers direct connections from METRICS_ALLOWED_NETWORKS (Prometheus
    scrapes pods from inside the cluster) and requests with `Authorization: Bearer
    <METRICS_TOKEN>` from anywhere; in development it is open.
    """
    if not metrics_access_allowed(request):
        return JsonResponse({"detail": "Metrics are only served to the monitoring system."}, status=403)
    response: HttpResponse = ExportToDjangoView(request)
    return response
