"""`manage.py capacity`: the brief's formulas, a bounded live measurement, a /metrics scrape."""

import re
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from project.management.commands.capacity import is_loopback, mean_from_metrics
from project.server.capacity import predicted_throughput, recommended_pool_size
from tests.factories import PostFactory
from tests.live_server import running_gunicorn

pytestmark = pytest.mark.django_db


def capacity(*args: str) -> str:
    out = StringIO()
    call_command("capacity", *args, stdout=out)
    return out.getvalue()


def row(output: str, label: str) -> str:
    match = re.search(rf"^{re.escape(label)} +(.+)$", output, re.MULTILINE)
    assert match, output
    return match.group(1)


# --- the formulas ---------------------------------------------------------------------------------


def test_the_brief_formulas() -> None:
    assert recommended_pool_size(cores=2) == 5
    assert recommended_pool_size(cores=8, spindles=4) == 20
    assert predicted_throughput(pool_size=5, requests_per_connection=1, avg_response_s=0.025) == pytest.approx(200)
    assert predicted_throughput(pool_size=10, requests_per_connection=2, avg_response_s=0.1) == pytest.approx(200)
    with pytest.raises(ValueError, match="positive"):
        predicted_throughput(pool_size=5, requests_per_connection=1, avg_response_s=0)


def test_the_command_prints_pool_size_and_prediction_in_an_aligned_table() -> None:
    output = capacity("--cores", "4", "--spindles", "2", "--avg-response-ms", "50")
    assert row(output, "recommended pool size") == "10 = 4 x 2 + 2"
    assert row(output, "predicted throughput").startswith("200.0 req/s = 10 x 1 / 0.05000 s")
    assert row(output, "average response time") == "50.00 ms (--avg-response-ms)"
    assert "on this host (max_connections " in row(output, "database")
    # Every value starts in the same column.
    columns = {len(line) - len(line.split("  ", 1)[1].lstrip()) for line in output.splitlines()}
    assert len(columns) == 1, output


def test_cores_default_to_what_this_process_may_use() -> None:
    output = capacity("--avg-response-ms", "10")
    assert "(this host, project.server.capacity.cpu_count)" in row(output, "CPU cores")


@pytest.mark.parametrize(
    ("measured", "error"),
    [("200", "+25.0 %"), ("250", "+0.0 %"), ("500", "-50.0 %")],
)
def test_measured_rps_prints_the_prediction_error(measured: str, error: str) -> None:
    output = capacity("--cores", "2", "--avg-response-ms", "20", "--measured-rps", measured)
    assert row(output, "predicted throughput").startswith("250.0 req/s")
    assert row(output, "prediction error") == f"{error} (predicted vs measured)"


@pytest.mark.parametrize(
    "args",
    [
        (),
        ("--avg-response-ms", "0"),
        ("--avg-response-ms", "10", "--measured-rps", "0"),
        ("--avg-response-ms", "10", "--cores", "0"),
    ],
)
def test_bad_arguments_are_command_errors(args: tuple[str, ...]) -> None:
    with pytest.raises(CommandError):
        capacity(*args)


# --- loopback only ----------------------------------------------------------------------------------


@pytest.mark.parametrize("option", ["--url", "--metrics-url"])
@pytest.mark.parametrize(
    "url", ["http://192.0.2.10:8000/api/posts/", "http://10.1.2.3/metrics", "http://[2001:db8::1]/"]
)
def test_non_loopback_targets_are_refused(option: str, url: str) -> None:
    with pytest.raises(CommandError, match=r"not a loopback address.*--allow-remote"):
        capacity(option, url)


def test_loopback_detection() -> None:
    assert is_loopback("127.0.0.1")
    assert is_loopback("127.9.9.9")
    assert is_loopback("::1")
    assert is_loopback("[::1]")
    assert is_loopback("localhost")
    assert not is_loopback("192.0.2.10")
    assert not is_loopback("no-such-host.invalid")


# --- a /metrics scrape --------------------------------------------------------------------------------

SCRAPE = """\
# HELP postline_http_request_duration_seconds Duration.
# TYPE postline_http_request_duration_seconds histogram
postline_http_request_duration_seconds_bucket{method="GET",route="/api/posts/",le="+Inf"} 30.0
postline_http_request_duration_seconds_count{method="GET",route="/api/posts/"} 30.0
postline_http_request_duration_seconds_sum{method="GET",route="/api/posts/"} 0.6
postline_http_request_duration_seconds_count{method="GET",route="/api/users/{pk}/"} 10.0
postline_http_request_duration_seconds_sum{method="GET",route="/api/users/{pk}/"} 0.4
postline_http_request_duration_seconds_count{method="GET",route="/metrics"} 1000.0
postline_http_request_duration_seconds_sum{method="GET",route="/metrics"} 1.0
"""


def test_mean_from_metrics_leaves_out_scrapes_and_probes() -> None:
    assert mean_from_metrics(SCRAPE, route=None) == (pytest.approx(0.025), 40, "postline_http_request_duration_seconds")
    assert mean_from_metrics(SCRAPE, route="/api/posts/")[:2] == (pytest.approx(0.02), 30)


def test_a_scrape_without_durations_is_a_command_error() -> None:
    with pytest.raises(CommandError, match="no request durations"):
        mean_from_metrics("# nothing here\n", route=None)


# --- bounded in time ---------------------------------------------------------------------------------


class SlowHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        time.sleep(0.05)
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def slow_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), SlowHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def test_the_live_measurement_stops_at_its_time_limit(slow_server: str) -> None:
    started = time.monotonic()
    output = capacity("--url", slow_server, "--requests", "100000", "--concurrency", "2", "--time-limit", "0.5")
    assert time.monotonic() - started < 5
    source = row(output, "average response time")
    assert "stopped at the time limit" in source
    mean_ms = float(source.split()[0])
    assert 50 <= mean_ms < 500


# --- against a real server -----------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_live_measurement_and_metrics_scrape_against_gunicorn(tmp_path: Path) -> None:
    PostFactory.create_batch(5)
    with running_gunicorn(tmp_path) as server:
        output = capacity(
            "--url",
            f"{server.base_url}/api/posts/",
            "--requests",
            "60",
            "--concurrency",
            "3",
            "--cores",
            "2",
            "--measured-rps",
            "100",
        )
        source = row(output, "average response time")
        assert re.search(r"live: 60 GET http://127\.0\.0\.1:\d+/api/posts/, concurrency 3, .* 0 errors", source)
        mean_s = float(source.split()[0]) / 1000
        assert 0 < mean_s < 1
        predicted = float(row(output, "predicted throughput").split()[0].replace(",", ""))
        assert predicted == pytest.approx(5 / mean_s, rel=0.01)
        error = float(row(output, "prediction error").split()[0])
        assert error == pytest.approx((predicted - 100) / 100 * 100, abs=0.1)

        scraped = capacity("--metrics-url", f"{server.base_url}/metrics", "--route", "/api/posts/", "--cores", "2")
        source = row(scraped, "average response time")
        # The 60 measured requests and the 5 warm-up ones, summed over both workers.
        assert "/metrics: postline_http_request_duration_seconds, 65 requests to /api/posts/" in source
        assert 0 < float(source.split()[0]) < 1000
