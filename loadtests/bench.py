"""`make bench`: requests/s and latency of Postline's main endpoints, measured with wrk.

One run, one machine: for each server model (gunicorn gthread WSGI, uvicorn ASGI) and each
cache state (Redis on; Redis unreachable = cache off, served from PostgreSQL through the
fail-open path), start gunicorn against a seeded database, warm up, and drive each scenario
with wrk on 127.0.0.1 for a bounded time. The overview calls a stand-in upstream that answers
after 100 ms. PostgreSQL connections are sampled from pg_stat_activity during every run.

    python loadtests/bench.py --database-url postgres://postgres@127.0.0.1:5432/seedbench

Prints a markdown table and writes the raw numbers as JSON (--json). Nothing but 127.0.0.1
is ever contacted; every process started is stopped at the end.
"""

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psycopg

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))
BIN = Path(sys.executable).parent
WRK_SCRIPT = BASE_DIR / "loadtests" / "wrk" / "random_id.lua"
CLOSED_REDIS = "redis://127.0.0.1:1/0"  # nothing listens on port 1: the cache is off


@dataclass
class Scenario:
    name: str
    path: str
    max_id: int = 1
    connections: int | None = None  # None: the run's default


@dataclass
class Result:
    mode: str
    cache: str
    scenario: str
    connections: int
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    errors: int  # 5xx answers and socket errors (4xx are answers: ~2 % of users are inactive)
    max_db_connections: int
    notes: list[str] = field(default_factory=list)


def free_port() -> int:
    import socket  # noqa: PLC0415

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_http(url: str, deadline_s: float = 30) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):  # noqa: S310  -- loopback only
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"bench: {url} did not answer within {deadline_s:.0f} s")


@contextmanager
def process(command: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("ab") as out:
        proc = subprocess.Popen(  # noqa: S603
            command, cwd=BASE_DIR, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        yield proc
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def scenarios(database_url: str, heavy_user: int, deep_page: int) -> list[Scenario]:
    """The benchmark's URLs, with ids and deep cursors read from the seeded database."""
    os.environ["DATABASE_URL"] = database_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
    import django  # noqa: PLC0415

    django.setup()
    from posts.models import Post  # noqa: PLC0415
    from project.pagination import encode_cursor  # noqa: PLC0415
    from users.models import User  # noqa: PLC0415

    max_user = User.objects.order_by("-id").values_list("id", flat=True).first() or 1
    max_post = Post.objects.order_by("-id").values_list("id", flat=True).first() or 1
    offset = (deep_page - 1) * 20 - 1

    def cursor(posts: Any) -> str:
        created_at, post_id = posts.values_list("created_at", "id")[offset]
        return encode_cursor([created_at.isoformat(), post_id])

    heavy_posts = Post.objects.filter(author_id=heavy_user).order_by("-created_at", "-id")
    all_posts = Post.objects.order_by("-created_at", "-id")
    return [
        Scenario("healthz (framework ceiling)", "/healthz"),
        Scenario("profile, hot ids 1-1000", "/api/users/{id}/", max_id=1000),
        Scenario("profile, any id", "/api/users/{id}/", max_id=max_user),
        Scenario("post detail, hot ids 1-1000", "/api/posts/{id}/", max_id=1000),
        Scenario("post detail, any id", "/api/posts/{id}/", max_id=max_post),
        Scenario("feed page 1", "/api/posts/"),
        Scenario(f"feed page {deep_page:,}", f"/api/posts/?cursor={cursor(all_posts)}"),
        Scenario(f"user {heavy_user} posts page 1", f"/api/users/{heavy_user}/posts/"),
        Scenario(
            f"user {heavy_user} posts page {deep_page:,}",
            f"/api/users/{heavy_user}/posts/?cursor={cursor(heavy_posts)}",
        ),
        Scenario("search 'database'", "/api/posts/?search=database"),
        Scenario("overview (100 ms upstream), any id", "/api/users/{id}/overview/", max_id=max_user, connections=64),
    ]


class ConnectionSampler:
    """The largest number of PostgreSQL backends serving the database during a run."""

    def __init__(self, database_url: str, database: str) -> None:
        self._url, self._database = database_url, database
        self._stop = threading.Event()
        self.maximum = 0

    def _run(self) -> None:
        with psycopg.connect(self._url, autocommit=True) as conn:
            while not self._stop.is_set():
                row = conn.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                    [self._database],
                ).fetchone()
                self.maximum = max(self.maximum, int(row[0]) if row else 0)
                self._stop.wait(0.25)

    @contextmanager
    def sampling(self) -> Iterator[None]:
        self._stop.clear()
        self.maximum = 0
        thread = threading.Thread(target=self._run, daemon=True)
        thread.start()
        try:
            yield
        finally:
            self._stop.set()
            thread.join()


def parse_wrk(output: str) -> tuple[float, float, float, int]:
    def latency_ms(label: str) -> float:
        match = re.search(rf"^\s*{label}%\s+([\d.]+)(us|ms|s)\s*$", output, re.MULTILINE)
        if not match:
            return float("nan")
        value, unit = float(match.group(1)), match.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    server_errors = re.search(r"^server_errors (\d+)", output, re.MULTILINE)
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    errors = (int(server_errors.group(1)) if server_errors else 0) + (
        sum(int(number) for number in socket_errors.groups()) if socket_errors else 0
    )
    return rps, latency_ms("50"), latency_ms("99"), errors


def run_wrk(base_url: str, scenario: Scenario, *, connections: int, duration: int) -> str:
    env = {**os.environ, "WRK_PATH": scenario.path, "WRK_MAX_ID": str(scenario.max_id)}
    command = ["wrk", "-t2", f"-c{connections}", f"-d{duration}s", "--latency", "-s", str(WRK_SCRIPT), base_url]
    return subprocess.run(command, env=env, capture_output=True, text=True, check=True, timeout=duration + 30).stdout  # noqa: S603


def flush_cache(redis_url: str) -> None:
    import redis  # noqa: PLC0415

    client = redis.Redis.from_url(redis_url)
    for key in client.scan_iter("postline-bench:*", count=1000):
        client.delete(key)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL", ""), help="a seeded database")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/2")
    parser.add_argument("--modes", default="wsgi,asgi")
    parser.add_argument("--caches", default="on,off")
    parser.add_argument("--only", default="", help="comma-separated substrings of scenario names")
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--warmup", type=int, default=3, help="seconds of unmeasured load before each run")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--heavy-user", type=int, default=1)
    parser.add_argument("--deep-page", type=int, default=10_000)
    parser.add_argument("--json", type=Path, help="write the raw results here")
    args = parser.parse_args()
    if not args.database_url:
        parser.error("--database-url (or DATABASE_URL) must name a seeded database")

    selected = scenarios(args.database_url, args.heavy_user, args.deep_page)
    if args.only:
        wanted = [part.strip() for part in args.only.split(",")]
        selected = [s for s in selected if any(part in s.name for part in wanted)]
    logs = Path(tempfile.mkdtemp(prefix="postline-bench-"))
    results: list[Result] = []

    upstream_port = free_port()
    upstream_env = {**os.environ, "UPSTREAM_DELAY_MS": "100"}
    upstream = [
        str(BIN / "uvicorn"),
        "loadtests.upstream_app:app",
        "--port",
        str(upstream_port),
        "--log-level",
        "warning",
    ]
    with process(upstream, upstream_env, logs / "upstream.log"):
        wait_http(f"http://127.0.0.1:{upstream_port}/")
        for mode in args.modes.split(","):
            for cache in args.caches.split(","):
                results += measure(args, selected, mode=mode, cache=cache, upstream_port=upstream_port, logs=logs)
    print_markdown(results)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps([asdict(result) for result in results], indent=2))
    print(f"\nserver logs: {logs}")  # noqa: T201
    return 1 if any(result.errors for result in results) else 0


def measure(
    args: argparse.Namespace, selected: list[Scenario], *, mode: str, cache: str, upstream_port: int, logs: Path
) -> list[Result]:
    """Every scenario against one gunicorn in one server model and cache state."""
    database = args.database_url.rsplit("/", 1)[-1].split("?")[0]
    sampler = ConnectionSampler(args.database_url, database)
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": args.database_url,
        "REDIS_URL": args.redis_url if cache == "on" else CLOSED_REDIS,
        "CACHE_KEY_PREFIX": "postline-bench",
        "SERVER_MODE": mode,
        "WEB_CONCURRENCY": str(args.workers),
        "BIND": f"127.0.0.1:{port}",
        "DEBUG": "false",
        "LOG_LEVEL": "WARNING",
        "PROFILE_ENRICHMENT_URL": f"http://127.0.0.1:{upstream_port}/profiles/{{user_id}}",
        "PROFILE_ENRICHMENT_TIMEOUT": "1.0",
        **dict.fromkeys(("THROTTLE_ANON", "THROTTLE_USER", "THROTTLE_AUTH"), "100000000/min"),
    }
    if cache == "on":
        flush_cache(args.redis_url)
    base_url = f"http://127.0.0.1:{port}"
    results = []
    with process([str(BIN / "gunicorn"), "-c", "project/gunicorn.conf.py"], env, logs / f"gunicorn-{mode}-{cache}.log"):
        wait_http(f"{base_url}/healthz")
        for scenario in selected:
            connections = scenario.connections or args.connections
            if args.warmup:
                run_wrk(base_url, scenario, connections=connections, duration=args.warmup)
            with sampler.sampling():
                output = run_wrk(base_url, scenario, connections=connections, duration=args.duration)
            rps, p50, p99, errors = parse_wrk(output)
            result = Result(mode, cache, scenario.name, connections, rps, p50, p99, errors, sampler.maximum)
            results.append(result)
            print(  # noqa: T201
                f"{mode:4} cache {cache:3} {scenario.name:45} c={connections:<3} {rps:9.1f} req/s "
                f"p50 {p50:7.2f} ms  p99 {p99:7.2f} ms  errors {errors}  db conns {sampler.maximum}",
                flush=True,
            )
    return results


def print_markdown(results: list[Result]) -> None:
    print("\n| mode | cache | scenario | conns | req/s | p50 ms | p99 ms | errors | max PG conns |")  # noqa: T201
    print("| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")  # noqa: T201
    for r in results:
        print(  # noqa: T201
            f"| {r.mode} | {r.cache} | {r.scenario} | {r.connections} | {r.requests_per_s:,.0f} | "
            f"{r.p50_ms:.2f} | {r.p99_ms:.2f} | {r.errors} | {r.max_db_connections} |"
        )


if __name__ == "__main__":
    sys.exit(main())
