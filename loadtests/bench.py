"""`make bench`: requests/s and latency of Postline's main endpoints, measured with wrk.

One run, one machine: for each server model (gunicorn gthread WSGI, uvicorn ASGI) and each
cache state (Redis on; Redis unreachable = cache off, served from PostgreSQL through the
fail-open path), start gunicorn against a database seeded with 1M users / 10M posts, warm up,
and drive each scenario with wrk on 127.0.0.1 for a bounded time. The same run measures the
machine's ceilings: a trivial Django view returning a constant (framework) and `pgbench -S`
(a primary-key read, database). The overview calls a stand-in upstream that answers after
100 ms. PostgreSQL connections are sampled from pg_stat_activity during every run.

    python -m loadtests.bench                          # seeds postline_bench once (~3-4 min)
    python -m loadtests.bench --database seedbench --only profile,feed --modes wsgi
    python -m loadtests.bench --write-docs             # table and plots into docs/performance.md

Nothing but 127.0.0.1 is ever contacted; every process started is stopped at the end.
"""

import argparse
import json
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg
from psycopg import sql

from loadtests.harness import (
    BASE_DIR,
    BIN,
    CACHE_KEY_PREFIX,
    CLOSED_REDIS,
    Sampler,
    cpu_seconds,
    pid_alive,
    prepare_database,
    production_env,
    server_urls,
    with_database,
    worker_pids,
)
from project.devservers.live import free_port, live_gunicorn, running_process

WRK_SCRIPT = BASE_DIR / "loadtests" / "wrk" / "request.lua"
PERFORMANCE_DOC = BASE_DIR / "docs" / "performance.md"
PLOTS_DIR = BASE_DIR / "docs" / "bench"
DOC_BEGIN, DOC_END = "<!-- make bench: begin -->", "<!-- make bench: end -->"
FRAMEWORK_CEILING = "trivial view (framework ceiling)"
DATABASE_CEILING = "pgbench -S (database ceiling)"
PGBENCH_SCALE = 10
# gunicorn's workers share one listening socket, and wrk opens its connections in one burst:
# the worker that wakes first may accept nearly all of them and leave a core idle (-40 %
# req/s, as ../shared/anchors measured). A run whose less busy worker used less than this share
# of the busier one's CPU is measured again, up to BALANCE_RETRIES times.
BALANCE_MIN = 0.25
BALANCE_RETRIES = 2


@dataclass
class Scenario:
    name: str
    path: str
    max_id: int = 1
    connections: int | None = None  # None: the run's default
    method: str = "GET"
    body: str | None = None
    token: str | None = None


@dataclass
class Result:
    mode: str
    cache: str
    scenario: str
    connections: int
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    errors: int  # 5xx, socket errors, and 4xx answers to writes (reads may rightly 404)
    max_db_connections: int
    notes: list[str] = field(default_factory=list)


def scenarios(database_url: str, heavy_user: int, deep_page: int) -> list[Scenario]:
    """The benchmark's requests, with ids, deep cursors and a writer's token from the database."""
    os.environ["DATABASE_URL"] = database_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
    import django  # noqa: PLC0415

    django.setup()
    from posts.models import Post  # noqa: PLC0415
    from posts.seeding.rows import SEED_PASSWORD  # noqa: PLC0415
    from project.http.pagination import encode_cursor  # noqa: PLC0415
    from users.models import User  # noqa: PLC0415
    from users.tokens import token_issue  # noqa: PLC0415

    max_user = User.objects.order_by("-id").values_list("id", flat=True).first() or 1
    max_post = Post.objects.order_by("-id").values_list("id", flat=True).first() or 1
    writer = User.objects.filter(is_active=True).order_by("-id").first()
    if writer is None:
        raise SystemExit("bench: the database holds no active user; seed it first")
    _, token = token_issue(user=writer)
    # A seeded account (SEED_PASSWORD): the sign-in row's credentials.
    seeded = User.objects.filter(is_active=True, email__startswith="user").order_by("id").first() or writer
    sign_in = f'{{"email": "{seeded.email}", "password": "{SEED_PASSWORD}"}}'
    offset = (deep_page - 1) * 20 - 1

    def cursor(posts: Any) -> str:
        created_at, post_id = posts.values_list("created_at", "id")[offset]
        return encode_cursor([created_at.isoformat(), post_id])

    heavy_posts = Post.objects.filter(author_id=heavy_user).order_by("-created_at", "-id")
    all_posts = Post.objects.order_by("-created_at", "-id")
    return [
        Scenario(FRAMEWORK_CEILING, "/healthz"),
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
        Scenario("overview (100 ms upstream), any id", "/api/users/{id}/overview/", max_id=max_user, connections=64),
        Scenario("me, token authentication", "/api/users/me/", token=token),
        # Password hashing (Argon2id, 19 MiB, 2 passes: ~30 ms of CPU; PBKDF2 before issue 17,
        # ~0.3-0.6 s): two at a time fill two cores.
        Scenario("sign-in", "/api/auth/token/", connections=2, method="POST", body=sign_in),
        Scenario(
            "sign-up",
            "/api/users/",
            connections=2,
            method="POST",
            body='{"email": "bench-{n}@example.com", "name": "Bench", "password": "purple-otter-keyboard-42"}',
        ),
        Scenario(
            "post create",
            "/api/posts/",
            method="POST",
            body='{"title": "Benchmark post {n}", "body": "Written by make bench."}',
            token=token,
        ),
        *search_scenarios(),
    ]


# Searches at 8 connections, each ordering, page 1 and page 2 (through the first page's cursor),
# and issue 16's targets for them.
SEARCH_CONNECTIONS = 8
SEARCH_P50_MS, SEARCH_P99_MS = 50, 250
# The seed writes neither word: the bench adds RARE_POSTS posts with the rare one, spread over
# the seed's years, once per database.
RARE_WORD, RARE_POSTS, ABSENT_WORD = "aurora", 300, "zebra"


def search_scenarios() -> list[Scenario]:
    """Every search shape of issue 16: the seed's most common word, a word in 1.5 % of posts, two
    words, a phrase, a rare word and a word in no post."""
    from posts import search  # noqa: PLC0415

    terms = {
        f"most common word '{most_common_word()}'": most_common_word(),
        "'database'": "database",
        "two words": "database ocean",
        "phrase": '"every library"',
        "rare word": RARE_WORD,
        "no post": ABSENT_WORD,
    }
    add_rare_posts()
    found = []
    for label, text in terms.items():
        for ordering in search.ORDERINGS:
            query = f"/api/posts/?search={quote(text)}&ordering={ordering}"
            found.append(Scenario(f"search {label}, {ordering}, page 1", query, connections=SEARCH_CONNECTIONS))
            cursor = search_cursor(text, ordering) or search_cursor("database", ordering)
            found.append(
                Scenario(
                    f"search {label}, {ordering}, page 2",
                    f"{query}&cursor={cursor}",
                    connections=SEARCH_CONNECTIONS,
                )
            )
    return found


def most_common_word() -> str:
    """The word of the seed's vocabulary whose stem PostgreSQL's statistics put in most posts."""
    from posts import search  # noqa: PLC0415
    from posts.seeding import text  # noqa: PLC0415

    shares = search.statistics.get("default").shares
    if not shares:
        raise SystemExit("bench: no word statistics for posts; run ANALYZE posts")
    vocabulary = sorted({*text.NOUNS, *text.ADJECTIVES, *text.VERBS, *text.ADVERBS, *text.DETERMINERS})

    def share(word: str) -> float:
        return search.estimate_share(search.parse(word).tree, shares)

    return max(vocabulary, key=share)


def add_rare_posts() -> None:
    from django.contrib.postgres.search import SearchQuery  # noqa: PLC0415
    from django.db.models import Max, Min  # noqa: PLC0415

    from posts.models import SEARCH_CONFIG, Post  # noqa: PLC0415

    if Post.objects.filter(search_document=SearchQuery(RARE_WORD, config=SEARCH_CONFIG)).exists():
        return
    span = Post.objects.aggregate(first=Min("created_at"), last=Max("created_at"), author=Min("author_id"))
    step = (span["last"] - span["first"]) / RARE_POSTS
    Post.objects.bulk_create(
        Post(
            author_id=span["author"],
            title=f"An {RARE_WORD} over the {'harbor ' * (number % 3)}hills",
            body=f"Post {number}: the {RARE_WORD} was seen again.",
            created_at=span["first"] + step * number,
        )
        for number in range(RARE_POSTS)
    )


def search_cursor(text: str, ordering: str) -> str | None:
    """The `next` cursor of the search's first page (as the API encodes it), or None without one."""
    from posts import search  # noqa: PLC0415
    from project.http.pagination import PageQuery, cursor_value, encode_cursor  # noqa: PLC0415

    page_size = 20
    hits, window = search.fetch(search.parse(text), ordering, PageQuery(None, False, page_size + 1, None))
    if len(hits) <= page_size:
        return None
    last = hits[page_size - 1]
    position = [cursor_value(getattr(last, key.name)) for key in search.sort_keys(ordering)]
    return encode_cursor(position, state=None if window is None else [cursor_value(value) for value in window])


def parse_wrk(output: str) -> tuple[float, float, float, int]:
    def latency_ms(label: str) -> float:
        match = re.search(rf"^\s*{label}%\s+([\d.]+)(us|ms|s)\s*$", output, re.MULTILINE)
        if not match:
            return float("nan")
        value, unit = float(match.group(1)), match.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    counted = sum(int(n) for n in re.findall(r"^(?:server_errors|write_rejections) (\d+)", output, re.MULTILINE))
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    errors = counted + (sum(int(number) for number in socket_errors.groups()) if socket_errors else 0)
    return rps, latency_ms("50"), latency_ms("99"), errors


def run_wrk(base_url: str, scenario: Scenario, *, connections: int, duration: int) -> str:
    env = {
        **os.environ,
        "WRK_PATH": scenario.path,
        "WRK_MAX_ID": str(scenario.max_id),
        "WRK_METHOD": scenario.method,
        "WRK_NONCE": f"{time.time_ns():x}",
    }
    env |= {"WRK_BODY": scenario.body} if scenario.body else {}
    env |= {"WRK_TOKEN": scenario.token} if scenario.token else {}
    command = ["wrk", "-t2", f"-c{connections}", f"-d{duration}s", "--latency", "-s", str(WRK_SCRIPT), base_url]
    return subprocess.run(command, env=env, capture_output=True, text=True, check=True, timeout=duration + 30).stdout  # noqa: S603


def flush_cache(redis_url: str) -> None:
    import redis  # noqa: PLC0415

    client = redis.Redis.from_url(redis_url)
    for key in client.scan_iter(f"{CACHE_KEY_PREFIX}:*", count=1000):
        client.delete(key)


def pgbench_binary() -> str:
    """pgbench from PATH, the Debian PostgreSQL packages, or the embedded server's install."""
    for candidate in [
        shutil.which("pgbench"),
        *sorted(Path("/usr/lib/postgresql").glob("*/bin/pgbench"), reverse=True),
    ]:
        if candidate:
            return str(candidate)
    try:
        import pgserver  # noqa: PLC0415

        return str(Path(pgserver.__file__).parent / "pginstall" / "bin" / "pgbench")
    except ImportError:
        pass
    raise SystemExit("bench: pgbench not found (apt-get install postgresql-client, or pip install pgserver)")


def pgbench_ceiling(database_url: str, duration: int) -> Result:
    """`pgbench -S` on a scale-10 pgbench database on the same server: the primary-key-read ceiling."""
    pgbench, target = pgbench_binary(), with_database(database_url, "postline_pgbench")
    with psycopg.connect(with_database(database_url, "postgres"), autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = 'postline_pgbench'").fetchone():
            conn.execute(sql.SQL("CREATE DATABASE postline_pgbench"))
            subprocess.run([pgbench, "-i", "-q", "-s", str(PGBENCH_SCALE), target], check=True, capture_output=True)  # noqa: S603
    command = [pgbench, "-S", "-c", "16", "-j", "1", "-T", str(duration), target]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout  # noqa: S603
    tps = float(re.search(r"tps = ([\d.]+)", output).group(1))  # type: ignore[union-attr]
    latency = float(re.search(r"latency average = ([\d.]+) ms", output).group(1))  # type: ignore[union-attr]
    return Result("-", "-", DATABASE_CEILING, 16, tps, latency, float("nan"), 0, 16, ["p50 column: mean latency"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database", default="postline_bench", help="database name on the configured server")
    parser.add_argument("--seed-users", type=int, default=1_000_000)
    parser.add_argument("--seed-posts", type=int, default=10_000_000)
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
    parser.add_argument("--write-docs", action="store_true", help="table and plots into docs/performance.md")
    args = parser.parse_args()

    database_url, redis_url = server_urls()
    database_url = with_database(database_url, args.database)
    prepare_database(database_url, users=args.seed_users, posts=args.seed_posts)
    machine = describe_machine(database_url)
    selected = scenarios(database_url, args.heavy_user, args.deep_page)
    if args.only:
        wanted = [part.strip() for part in args.only.split(",")]
        selected = [s for s in selected if any(part in s.name for part in wanted)]
    logs = Path(tempfile.mkdtemp(prefix="postline-bench-"))
    results = [pgbench_ceiling(database_url, args.duration)]
    print(f"{DATABASE_CEILING}: {results[0].requests_per_s:,.0f} tps", flush=True)  # noqa: T201

    upstream_port = free_port()
    upstream = [
        str(BIN / "uvicorn"),
        "loadtests.upstream_app:app",
        "--port",
        str(upstream_port),
        "--log-level",
        "warning",
    ]
    with running_process(
        upstream,
        env={**os.environ, "UPSTREAM_DELAY_MS": "100"},
        log=logs / "upstream.log",
        ready_url=f"http://127.0.0.1:{upstream_port}/",
    ):
        for mode in args.modes.split(","):
            for cache in args.caches.split(","):
                results += measure(
                    args,
                    selected,
                    database_url=database_url,
                    redis_url=redis_url if cache == "on" else CLOSED_REDIS,
                    mode=mode,
                    cache=cache,
                    upstream_port=upstream_port,
                    logs=logs,
                )
    report = markdown(results, args, machine)
    print("\n" + report)  # noqa: T201
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps([asdict(result) for result in results], indent=2))
    if args.write_docs:
        write_docs(report, results)
    print(f"\nserver logs: {logs}")  # noqa: T201
    return 1 if any(result.errors for result in results) else 0


def measure(
    args: argparse.Namespace,
    selected: list[Scenario],
    *,
    database_url: str,
    redis_url: str,
    mode: str,
    cache: str,
    upstream_port: int,
    logs: Path,
) -> list[Result]:
    """Every scenario against one gunicorn in one server model and cache state."""
    env = production_env(database_url=database_url, redis_url=redis_url, mode=mode, workers=args.workers)
    env |= {
        # No worker recycling mid-run: a new worker's start-up would be measured as the app's.
        "GUNICORN_MAX_REQUESTS": "0",
        "PROFILE_ENRICHMENT_URL": f"http://127.0.0.1:{upstream_port}/profiles/{{user_id}}",
        "PROFILE_ENRICHMENT_TIMEOUT": "1.0",
    }
    if cache == "on":
        flush_cache(redis_url)
    results = []
    with live_gunicorn(env, log=logs / f"gunicorn-{mode}-{cache}.log") as server:
        base_url, master_pid = server.base_url, server.process.pid
        sampler = Sampler(database_url, master_pid=master_pid)
        for scenario in selected:
            connections = scenario.connections or args.connections
            if args.warmup:
                run_wrk(base_url, scenario, connections=connections, duration=args.warmup)
            runs = 0
            while True:
                runs += 1
                workers = worker_pids(master_pid)
                before = [cpu_seconds(pid) for pid in workers]
                with sampler.sampling():
                    output = run_wrk(base_url, scenario, connections=connections, duration=args.duration)
                busy = [cpu_seconds(pid) - start for pid, start in zip(workers, before, strict=True) if pid_alive(pid)]
                balance = min(busy) / max(busy) if len(busy) > 1 and max(busy) > 0 else 1.0
                if balance >= BALANCE_MIN or runs > BALANCE_RETRIES:
                    break
                print(f"  workers unbalanced ({balance:.0%} of the busier one's CPU): measuring again", flush=True)  # noqa: T201
            rps, p50, p99, errors = parse_wrk(output)
            result = Result(mode, cache, scenario.name, connections, rps, p50, p99, errors, sampler.max_connections)
            result.notes += [f"worker balance {balance:.0%}", f"runs {runs}"]
            results.append(result)
            print(  # noqa: T201
                f"{mode:4} cache {cache:3} {scenario.name:45} c={connections:<3} {rps:9.1f} req/s "
                f"p50 {p50:7.2f} ms  p99 {p99:7.2f} ms  errors {errors}  db conns {sampler.max_connections}  "
                f"balance {balance:.0%} runs {runs}",
                flush=True,
            )
    return results


def describe_machine(database_url: str) -> dict[str, str]:
    with psycopg.connect(database_url) as conn:
        version = conn.execute("SHOW server_version").fetchone()
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if "model name" in line
        ),
        platform.processor(),
    )
    memory_kib = int(Path("/proc/meminfo").read_text().split()[1])
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": f"{os.cpu_count()} x {cpu}",
        "memory": f"{memory_kib / 1024 / 1024:.0f} GiB",
        "python": platform.python_version(),
        "postgresql": version[0] if version else "?",
        "load average before": " ".join(f"{value:.2f}" for value in os.getloadavg()),
        "command": "python -m loadtests.bench " + " ".join(shlex.quote(arg) for arg in sys.argv[1:]),
    }


def markdown(results: list[Result], args: argparse.Namespace, machine: dict[str, str]) -> str:
    lines = [f"- {key}: {value}" for key, value in machine.items()]
    lines += [
        f"- wrk -t2 -c{args.connections} (overview: -c64), {args.duration} s per run after {args.warmup} s of "
        f"warm-up; gunicorn with {args.workers} workers and production settings; PostgreSQL, Redis, wrk and "
        "gunicorn share the machine",
        "",
        "| mode | cache | scenario | conns | req/s | p50 ms | p99 ms | errors | max PG conns | notes |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    lines += [
        f"| {r.mode} | {r.cache} | {r.scenario} | {r.connections} | {r.requests_per_s:,.0f} | "
        f"{r.p50_ms:.2f} | {r.p99_ms:.2f} | {r.errors} | {r.max_db_connections} | {', '.join(r.notes)} |"
        for r in results
    ]
    lines += ["", *derived(results, args)]
    return "\n".join(lines)


def derived(results: list[Result], args: argparse.Namespace) -> list[str]:
    """The targets issues 8 and 16 set, against this run's own ceilings, in words."""
    by_key = {(r.mode, r.cache, r.scenario): r for r in results}
    lines = []
    for mode in args.modes.split(","):
        ceiling = by_key.get((mode, "on", FRAMEWORK_CEILING))
        cached = by_key.get((mode, "on", "profile, hot ids 1-1000"))
        if ceiling and cached:
            share = cached.requests_per_s / ceiling.requests_per_s
            lines.append(
                f"- {mode}: cached profile {cached.requests_per_s:,.0f} req/s = {share:.0%} of the trivial view's "
                f"{ceiling.requests_per_s:,.0f} (target ≥ 50 %)"
            )
        for first, deep in (
            ("feed page 1", f"feed page {args.deep_page:,}"),
            (f"user {args.heavy_user} posts page 1", f"user {args.heavy_user} posts page {args.deep_page:,}"),
        ):
            near, far = by_key.get((mode, "off", first)), by_key.get((mode, "off", deep))
            if near and far:
                # Mean latency by Little's law (a closed loop of `connections` clients). The p50 also
                # measures how evenly the workers happened to split wrk's keep-alive connections.
                near_mean, far_mean = (1000 * r.connections / r.requests_per_s for r in (near, far))
                lines.append(
                    f"- {mode}, cache off: {deep} mean {far_mean:.1f} ms (p50 {far.p50_ms:.1f}) vs page 1 mean "
                    f"{near_mean:.1f} ms (p50 {near.p50_ms:.1f}): {far_mean / near_mean - 1:+.0%} (target within ±20 %)"
                )
    searches = [r for r in results if r.scenario.startswith("search ")]
    if searches:
        missed = [
            f"{r.mode}/{r.cache} {r.scenario} (p50 {r.p50_ms:.0f}, p99 {r.p99_ms:.0f})"
            for r in searches
            if not (r.p50_ms <= SEARCH_P50_MS and r.p99_ms <= SEARCH_P99_MS and r.errors == 0)
        ]
        lines.append(
            f"- search rows within p50 ≤ {SEARCH_P50_MS} ms, p99 ≤ {SEARCH_P99_MS} ms, no errors (issue 16): "
            f"{len(searches) - len(missed)} of {len(searches)}" + (f"; missed: {'; '.join(missed)}" if missed else "")
        )
    return lines


def write_docs(report: str, results: list[Result]) -> None:
    """Replace the `make bench` block of docs/performance.md and redraw the plots."""
    PLOTS_DIR.mkdir(parents=True, exist_ok=True)
    plot(results, "requests_per_s", "requests per second (more is better)", PLOTS_DIR / "bench-rps.png")
    plot(results, "p99_ms", "p99 latency, ms (less is better)", PLOTS_DIR / "bench-p99.png")
    block = "\n".join(
        [
            DOC_BEGIN,
            report,
            "",
            "![requests per second](bench/bench-rps.png)",
            "![p99 latency](bench/bench-p99.png)",
            DOC_END,
        ]
    )
    text = PERFORMANCE_DOC.read_text()
    if DOC_BEGIN in text:
        text = text[: text.index(DOC_BEGIN)] + block + text[text.index(DOC_END) + len(DOC_END) :]
    else:
        text += f"\n## `make bench`: every endpoint, both server models, cache on and off\n\n{block}\n"
    PERFORMANCE_DOC.write_text(text)


def plot(results: list[Result], metric: str, title: str, path: Path) -> None:
    import matplotlib as mpl  # noqa: PLC0415

    mpl.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    served = [r for r in results if r.mode != "-"]
    names = list(dict.fromkeys(r.scenario for r in served))
    series = list(dict.fromkeys((r.mode, r.cache) for r in served))
    height = 0.8 / max(len(series), 1)
    figure, axis = plt.subplots(figsize=(10, 0.5 * len(names) * max(len(series), 2) / 2 + 1.5))
    for index, (mode, cache) in enumerate(series):
        values = {r.scenario: getattr(r, metric) for r in served if (r.mode, r.cache) == (mode, cache)}
        positions = [row + index * height for row in range(len(names))]
        axis.barh(positions, [values.get(name, 0) for name in names], height, label=f"{mode}, cache {cache}")
    axis.set_yticks([row + height * (len(series) - 1) / 2 for row in range(len(names))], names)
    axis.invert_yaxis()
    axis.set_title(title)
    axis.legend(loc="lower right")
    if metric == "p99_ms":
        axis.set_xscale("log")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


if __name__ == "__main__":
    sys.exit(main())
