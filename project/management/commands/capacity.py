"""`manage.py capacity`: the brief's two formulas, fed with measured figures.

    pool size  = CPU cores x 2 + effective spindles                 (SSD: 1)
    throughput = pool size x requests per connection / average response time   (Little's law)

The average response time comes from one of:
- `--url`: a short live measurement (stdlib threads and http.client, bounded in requests and
  time, loopback only unless --allow-remote);
- `--metrics-url`: a /metrics scrape (mean of postline_http_request_duration_seconds);
- `--avg-response-ms`: a figure measured elsewhere.
`--measured-rps` compares the prediction with a load test's measured throughput.
"""

import ipaddress
import socket
import statistics
import threading
import time
import urllib.request
from argparse import ArgumentParser
from dataclasses import dataclass, field
from http.client import HTTPConnection, HTTPException, HTTPSConnection
from typing import Any
from urllib.parse import SplitResult, urlsplit

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError, connection
from prometheus_client.parser import text_string_to_metric_families

from project.server.capacity import cpu_count, predicted_throughput, recommended_pool_size

REQUEST_TIMEOUT_S = 10.0
# Scrapes and probes are frequent and cheap; averaging them in would flatter the mean.
EXCLUDED_ROUTES = frozenset({"/metrics", "/healthz", "/readyz"})
DURATION_METRIC = "postline_http_request_duration_seconds"


# --- where the target is ------------------------------------------------------------------------


def is_loopback(host: str) -> bool:
    """True when every address `host` stands for is a loopback address."""
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    return bool(infos) and all(ipaddress.ip_address(str(info[4][0]).split("%")[0]).is_loopback for info in infos)


def checked_url(url: str, *, option: str, allow_remote: bool) -> SplitResult:
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise CommandError(f"{option}: expected an http:// or https:// URL, got {url!r}")
    if not allow_remote and not is_loopback(parts.hostname):
        raise CommandError(
            f"{option}: {parts.hostname} is not a loopback address; measuring another host is refused "
            "without --allow-remote (it sends real traffic)"
        )
    return parts


# --- a live measurement -------------------------------------------------------------------------


@dataclass
class Measurement:
    durations: list[float] = field(default_factory=list)
    errors: int = 0
    wall_s: float = 0.0
    stopped_by_time_limit: bool = False

    @property
    def mean_s(self) -> float:
        return statistics.fmean(self.durations)

    def quantile(self, q: float) -> float:
        ordered = sorted(self.durations)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    @property
    def rps(self) -> float:
        return len(self.durations) / self.wall_s if self.wall_s > 0 else 0.0


class LiveMeasurement:
    """`requests` GETs from `concurrency` threads, each on its own keep-alive connection.

    Stops early at `time_limit_s`. A status >= 400 or a network error counts as an error and
    not in the mean. `warmup` requests go first, uncounted (caches, connections, imports).
    """

    HEADERS: dict[str, str] = {"Accept": "application/json", "User-Agent": "postline-capacity"}

    def __init__(self, parts: SplitResult, *, requests: int, concurrency: int, time_limit_s: float) -> None:
        self.parts = parts
        self.path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self.concurrency = concurrency
        self.time_limit_s = time_limit_s
        self.result = Measurement()
        self._lock = threading.Lock()
        self._remaining = requests
        self._deadline = 0.0

    def _connection(self) -> HTTPConnection:
        factory = HTTPSConnection if self.parts.scheme == "https" else HTTPConnection
        return factory(self.parts.hostname or "", self.parts.port, timeout=REQUEST_TIMEOUT_S)

    def _one(self, conn: HTTPConnection) -> tuple[bool, float]:
        started = time.perf_counter()
        conn.request("GET", self.path, headers=self.HEADERS)
        response = conn.getresponse()
        response.read()
        return response.status < 400, time.perf_counter() - started

    def _take(self) -> bool:
        """Claim the next request, unless the count or the time is used up."""
        with self._lock:
            if self._remaining <= 0:
                return False
            if time.monotonic() >= self._deadline:
                self.result.stopped_by_time_limit = True
                return False
            self._remaining -= 1
            return True

    def _worker(self) -> None:
        conn = self._connection()
        while self._take():
            try:
                ok, seconds = self._one(conn)
            except (OSError, HTTPException):
                ok, seconds = False, 0.0
                conn.close()
                conn = self._connection()
            with self._lock:
                if ok:
                    self.result.durations.append(seconds)
                else:
                    self.result.errors += 1
        conn.close()

    def run(self, *, warmup: int) -> Measurement:
        conn = self._connection()
        try:
            for _ in range(warmup):
                self._one(conn)
        except (OSError, HTTPException) as error:
            raise CommandError(f"--url: {self.parts.geturl()} did not answer: {error}") from None
        finally:
            conn.close()
        threads = [threading.Thread(target=self._worker, daemon=True) for _ in range(self.concurrency)]
        started = time.monotonic()
        self._deadline = started + self.time_limit_s
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=max(0.0, self._deadline - time.monotonic()) + REQUEST_TIMEOUT_S + 1)
        self.result.wall_s = time.monotonic() - started
        if not self.result.durations:
            raise CommandError(
                f"--url: no successful response from {self.parts.geturl()} ({self.result.errors} errors)"
            )
        return self.result


# --- a /metrics scrape ---------------------------------------------------------------------------


def mean_from_metrics(text: str, *, route: str | None) -> tuple[float, int, str]:
    """Mean request duration (s), request count and the metric used, from Prometheus text."""
    total = count = 0.0
    found = False
    for family in text_string_to_metric_families(text):
        if family.name != DURATION_METRIC:
            continue
        for sample in family.samples:
            value = sample.labels.get("route", "")
            if (route is not None and value != route) or (route is None and value in EXCLUDED_ROUTES):
                continue
            if sample.name == f"{DURATION_METRIC}_sum":
                total += sample.value
                found = True
            elif sample.name == f"{DURATION_METRIC}_count":
                count += sample.value
    if found and count > 0:
        return total / count, int(count), DURATION_METRIC
    where = f" for {route}" if route else ""
    raise CommandError(f"--metrics-url: no request durations{where} in the scrape (no traffic yet?)")


def scrape(url: str, *, token: str) -> str:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(url, headers=headers)  # noqa: S310 (scheme checked by checked_url)
    try:
        with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT_S) as response:  # noqa: S310  # nosec B310
            return str(response.read().decode())
    except OSError as error:
        raise CommandError(f"--metrics-url: {url}: {error}") from None


# --- the command ---------------------------------------------------------------------------------


def database_line() -> str:
    """The configured database, and its own connection limit when it answers."""
    database = settings.DATABASES["default"]
    host = database.get("HOST") or "local socket"
    where = "this host" if host.startswith("/") or host == "local socket" or is_loopback(host) else host
    try:
        with connection.cursor() as cursor:
            cursor.execute("SHOW max_connections")
            row = cursor.fetchone()
        limit = f"max_connections {row[0]}" if row else "max_connections unknown"
    except DatabaseError as error:
        limit = f"unreachable: {str(error).strip().splitlines()[0]}"
    return f"{database.get('NAME')} on {where} ({limit})"


class Command(BaseCommand):
    help = (
        "Recommended connection pool size (cores x 2 + spindles) and predicted throughput "
        "(pool size x requests per connection / average response time), from a live measurement, "
        "a /metrics scrape or a given response time; --measured-rps shows the prediction's error."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--cores", type=int, default=None, help="CPU cores (default: what this process may use)")
        parser.add_argument("--spindles", type=int, default=1, help="effective spindles (default 1: an SSD)")
        parser.add_argument("--requests-per-connection", type=float, default=1.0, help="default 1")
        source = parser.add_mutually_exclusive_group()
        source.add_argument("--url", help="measure GET response times against this running server")
        source.add_argument("--metrics-url", help="take the mean response time from this /metrics endpoint")
        source.add_argument("--avg-response-ms", type=float, help="use this average response time")
        parser.add_argument("--requests", type=int, default=200, help="live measurement: requests (default 200)")
        parser.add_argument("--concurrency", type=int, default=4, help="live measurement: threads (default 4)")
        parser.add_argument("--warmup", type=int, default=5, help="live measurement: uncounted requests first")
        parser.add_argument("--time-limit", type=float, default=30.0, help="live measurement: seconds at most")
        parser.add_argument("--route", help="--metrics-url: only this route label (e.g. /api/posts/)")
        parser.add_argument("--metrics-token", default=None, help="--metrics-url: bearer token (default METRICS_TOKEN)")
        parser.add_argument("--measured-rps", type=float, help="a load test's measured throughput, to compare")
        parser.add_argument("--allow-remote", action="store_true", help="allow --url/--metrics-url off this host")

    def handle(self, *args: Any, **options: Any) -> None:
        cores = cpu_count() if options["cores"] is None else options["cores"]
        spindles = options["spindles"]
        per_connection = options["requests_per_connection"]
        if cores < 1 or spindles < 0 or per_connection <= 0:
            raise CommandError("--cores must be >= 1, --spindles >= 0, --requests-per-connection > 0")
        pool = recommended_pool_size(cores=cores, spindles=spindles)
        cores_note = " (this host, project.server.capacity.cpu_count)" if options["cores"] is None else ""
        rows: list[tuple[str, str]] = [
            ("CPU cores", f"{cores}{cores_note}"),
            ("effective spindles", f"{spindles}"),
            ("recommended pool size", f"{pool} = {cores} x 2 + {spindles}"),
            ("database", database_line()),
        ]
        avg_s, source = self._response_time(options)
        rows += [
            ("average response time", f"{avg_s * 1000:.2f} ms ({source})"),
            ("requests per connection", f"{per_connection:g}"),
        ]
        predicted = predicted_throughput(pool_size=pool, requests_per_connection=per_connection, avg_response_s=avg_s)
        rows.append(("predicted throughput", f"{predicted:,.1f} req/s = {pool} x {per_connection:g} / {avg_s:.5f} s"))
        measured = options["measured_rps"]
        if measured is not None:
            if measured <= 0:
                raise CommandError("--measured-rps must be positive")
            error = (predicted - measured) / measured * 100
            rows += [
                ("measured throughput", f"{measured:,.1f} req/s (--measured-rps)"),
                ("prediction error", f"{error:+.1f} % (predicted vs measured)"),
            ]
        width = max(len(label) for label, _ in rows)
        for label, value in rows:
            self.stdout.write(f"{label.ljust(width)}  {value}")

    def _response_time(self, options: dict[str, Any]) -> tuple[float, str]:
        if options["avg_response_ms"] is not None:
            if options["avg_response_ms"] <= 0:
                raise CommandError("--avg-response-ms must be positive")
            return options["avg_response_ms"] / 1000, "--avg-response-ms"
        if options["url"]:
            if options["requests"] < 1 or options["concurrency"] < 1 or options["time_limit"] <= 0:
                raise CommandError("--requests and --concurrency must be >= 1, --time-limit > 0")
            parts = checked_url(options["url"], option="--url", allow_remote=options["allow_remote"])
            result = LiveMeasurement(
                parts,
                requests=options["requests"],
                concurrency=options["concurrency"],
                time_limit_s=options["time_limit"],
            ).run(warmup=max(0, options["warmup"]))
            stopped = ", stopped at the time limit" if result.stopped_by_time_limit else ""
            return result.mean_s, (
                f"live: {len(result.durations)} GET {parts.geturl()}, concurrency {options['concurrency']}, "
                f"p50 {result.quantile(0.5) * 1000:.1f} ms, p95 {result.quantile(0.95) * 1000:.1f} ms, "
                f"{result.errors} errors, {result.rps:,.1f} req/s achieved{stopped}"
            )
        if options["metrics_url"]:
            checked_url(options["metrics_url"], option="--metrics-url", allow_remote=options["allow_remote"])
            token = options["metrics_token"] if options["metrics_token"] is not None else settings.METRICS_TOKEN
            mean, count, metric = mean_from_metrics(scrape(options["metrics_url"], token=token), route=options["route"])
            return mean, f"/metrics: {metric}, {count:,} requests" + (
                f" to {options['route']}" if options["route"] else ""
            )
        raise CommandError("Give the average response time: --url, --metrics-url or --avg-response-ms")
