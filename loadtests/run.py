"""`make loadtest`, `make soak` and the CI smoke run: locust against gunicorn started as production.

Seeds a dedicated database once (`seed --if-empty`), starts gunicorn with the project's
configuration and production settings on 127.0.0.1, runs locust headless for a bounded time,
samples PostgreSQL connections and the memory of every worker meanwhile, writes locust's HTML
and CSV reports plus a JSON summary under --report-dir, and stops everything it started.
The exit code is locust's: non-zero when a threshold of loadtests/thresholds.toml is broken
(or, with --soak, when memory or connections grew).

    python -m loadtests.run --scenario mixed --users 40 --run-time 60s
    python -m loadtests.run --soak --run-time 10m           # docs/reliability.md
    python -m loadtests.run --capacity --scenario brief     # docs/capacity.md

locust imports loadtests/locustfile.py by path, as a module of its own: it gets the seeded
users' password (posts.seeding.SEED_PASSWORD) from this script, in LOADTEST_SEED_PASSWORD.
"""

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from loadtests.harness import BASE_DIR, BIN, Sampler, prepare_database, production_env, server_urls, with_database
from posts.seeding import SEED_PASSWORD
from project.devservers.live import live_gunicorn

USER_CLASSES = {"brief": ["BriefReader"], "mixed": ["MixedUser"], "both": ["BriefReader", "MixedUser"]}
# The soak's limits (issue 9): worker memory may grow less than this between the end of the
# warm-up and the end of the run; PostgreSQL connections may not grow at all.
SOAK_MAX_RSS_GROWTH = 0.10
SOAK_WARMUP_S = 60.0
SOAK_LOAD_FRACTION = 0.7


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenario", choices=sorted(USER_CLASSES), default="both")
    parser.add_argument("--users", type=int, default=40, help="simulated users (default 40)")
    parser.add_argument("--spawn-rate", type=float, default=2.0, help="users started per second (default 2)")
    parser.add_argument("--run-time", default="60s", help="locust --run-time (default 60s)")
    parser.add_argument("--think", default=None, help="LOADTEST_THINK_S for the users: 'low,high' or '0'")
    parser.add_argument("--mode", choices=("wsgi", "asgi"), default=None, help="server model (default: the project's)")
    parser.add_argument("--workers", type=int, default=None, help="gunicorn workers (default: the project's formula)")
    parser.add_argument("--seed-users", type=int, default=100_000)
    parser.add_argument("--seed-posts", type=int, default=1_000_000)
    parser.add_argument("--database", default="postline_loadtest", help="database name on the configured server")
    parser.add_argument("--report-dir", type=Path, default=BASE_DIR / "out" / "loadtests")
    parser.add_argument("--name", default=None, help="report file prefix (default: the scenario)")
    parser.add_argument(
        "--capacity", action="store_true", help="then `manage.py capacity` against the server, with the measured rate"
    )
    parser.add_argument(
        "--soak",
        action="store_true",
        # argparse expands % in help texts: the percent sign is doubled.
        help=f"measure capacity closed-loop for 45 s, then run the mixed scenario at {SOAK_LOAD_FRACTION:.0%}% of it",
    )
    args = parser.parse_args()

    database_url, redis_url = server_urls()
    database_url = with_database(database_url, args.database)
    prepare_database(database_url, users=args.seed_users, posts=args.seed_posts)
    args.report_dir.mkdir(parents=True, exist_ok=True)
    logs = Path(tempfile.mkdtemp(prefix="postline-loadtest-"))
    env = production_env(database_url=database_url, redis_url=redis_url, mode=args.mode, workers=args.workers)
    if args.soak:
        # The soak measures whether a worker's memory grows: recycling would hide it.
        env["GUNICORN_MAX_REQUESTS"] = "0"
    with live_gunicorn(env, log=logs / "gunicorn.log") as server:
        base_url = server.base_url
        sampler = Sampler(database_url, master_pid=server.process.pid, interval_s=1.0)
        if args.soak:
            code = soak(args, base_url, sampler)
        else:
            with sampler.sampling():
                code, summary = run_locust(args, base_url, name=args.name or args.scenario)
            summary["max_db_connections"] = sampler.max_connections
            if args.capacity:
                measured = summary["requests_per_s"]
                summary["capacity"] = {
                    source: run_capacity(database_url, [*options, "--measured-rps", f"{measured:.1f}"])
                    for source, options in (
                        ("live", ["--url", f"{base_url}/api/users/1/"]),
                        ("metrics", ["--metrics-url", f"{base_url}/metrics"]),
                    )
                }
            write_summary(args.report_dir / f"{args.name or args.scenario}.json", summary)
    print(f"server log: {logs / 'gunicorn.log'}")  # noqa: T201
    return code


def run_locust(
    args: argparse.Namespace,
    base_url: str,
    *,
    name: str,
    extra_env: dict[str, str] | None = None,
    reset_stats: bool = False,
    **override: Any,
) -> tuple[int, dict[str, Any]]:
    """One headless locust run; returns its exit code and the aggregated figures."""
    options = {**vars(args), **override}
    prefix = args.report_dir / name
    env = {**os.environ, "LOADTEST_SEED_PASSWORD": SEED_PASSWORD, **(extra_env or {})}
    if options["think"] is not None:
        env["LOADTEST_THINK_S"] = options["think"]
    command = [
        str(BIN / "locust"),
        "-f",
        "loadtests/locustfile.py",
        "--headless",
        "--host",
        base_url,
        "--users",
        str(options["users"]),
        "--spawn-rate",
        str(options["spawn_rate"]),
        "--run-time",
        options["run_time"],
        "--stop-timeout",
        "10",
        "--html",
        f"{prefix}.html",
        "--csv",
        str(prefix),
        "--only-summary",
        *(["--reset-stats"] if reset_stats else []),
        *USER_CLASSES[options["scenario"]],
    ]
    started = time.monotonic()
    code = subprocess.run(command, cwd=BASE_DIR, env=env, check=False).returncode  # noqa: S603
    summary = aggregated(Path(f"{prefix}_stats.csv"))
    summary |= {"scenario": options["scenario"], "users": options["users"], "seconds": time.monotonic() - started}
    summary["command"] = " ".join(command[1:]).replace(str(BASE_DIR) + "/", "")
    summary["exit_code"] = code
    return code, summary


def aggregated(stats_csv: Path) -> dict[str, Any]:
    """The Aggregated row of locust's stats CSV, and every request type's percentiles."""
    rows = list(csv.DictReader(stats_csv.open()))
    figures: dict[str, Any] = {"by_request": {}}
    for row in rows:
        if int(row["Request Count"]) == 0:
            continue  # e.g. the sign-ins, when statistics were reset after every user signed in
        entry = {
            "requests": int(row["Request Count"]),
            "failures": int(row["Failure Count"]),
            "requests_per_s": float(row["Requests/s"]),
            "p50_ms": float(row["50%"]),
            "p95_ms": float(row["95%"]),
            "p99_ms": float(row["99%"]),
        }
        if row["Name"] == "Aggregated":
            figures |= entry
        else:
            figures["by_request"][f"{row['Type']} {row['Name']}".strip()] = entry
    return figures


def run_capacity(database_url: str, options: list[str]) -> str:
    """`manage.py capacity` against the running server: the average response time from a live
    measurement (--url) or from the server's /metrics after the load test (--metrics-url)."""
    command = [str(BIN / "python"), "manage.py", "capacity", *options]
    env = {**os.environ, "DATABASE_URL": database_url}
    output = subprocess.run(command, cwd=BASE_DIR, env=env, capture_output=True, text=True, check=True).stdout  # noqa: S603
    print(output)  # noqa: T201
    return output


def soak(args: argparse.Namespace, base_url: str, sampler: Sampler) -> int:
    """Capacity first (closed loop, 30 s), then the mixed scenario paced at 70 % of it."""
    # Saturated on purpose, so without the thresholds; counted once every user is signed in.
    _, probe = run_locust(
        args,
        base_url,
        name="soak-capacity",
        scenario="mixed",
        think="0",
        run_time="45s",
        spawn_rate=10,
        extra_env={"LOADTEST_THRESHOLDS": ""},
        reset_stats=True,
    )
    target_rps = probe["requests_per_s"] * SOAK_LOAD_FRACTION
    # A MixedUser task makes ~1.4 requests on average: of its 45 task weights, 18 page through
    # a feed (the first page, then up to 3 `next` links, fewer when a feed ends). Measured: the
    # 2026-11-25 soak, paced for 1.6, made 69.5 req/s of the 80.5 it aimed at.
    requests_per_task = 1.4
    tasks_per_user = target_rps / requests_per_task / args.users
    with sampler.sampling():
        code, summary = run_locust(
            args,
            base_url,
            name="soak",
            scenario="mixed",
            think=None,
            extra_env={"LOADTEST_TASKS_PER_S": f"{tasks_per_user:.4f}"},
        )
    verdict = soak_verdict(sampler.samples)
    summary |= {"capacity_probe": probe, "target_rps": target_rps, **verdict}
    write_summary(args.report_dir / "soak.json", summary)
    print(json.dumps({key: value for key, value in verdict.items() if key != "timeline"}, indent=2))  # noqa: T201
    return code or (0 if verdict["passed"] else 1)


def soak_verdict(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Worker RSS growth (after warm-up to the end) and PostgreSQL connections over the soak."""
    settled = [sample for sample in samples if sample["t"] >= SOAK_WARMUP_S] or samples
    first, last = settled[0], settled[-1]
    growth = {
        pid: (last["worker_rss_mib"][pid] - rss) / rss
        for pid, rss in first["worker_rss_mib"].items()
        if pid in last["worker_rss_mib"] and rss
    }
    recycled = sorted(set(first["worker_rss_mib"]) ^ set(last["worker_rss_mib"]))
    connections = [sample["db_connections"] for sample in settled]
    half = len(connections) // 2
    return {
        "worker_rss_mib_start": first["worker_rss_mib"],
        "worker_rss_mib_end": last["worker_rss_mib"],
        "worker_rss_growth": growth,
        "workers_recycled": recycled,
        "db_connections_start": connections[0],
        "db_connections_max": max(connections),
        "db_connections_end": connections[-1],
        # No growth: the second half of the run never holds more connections than the first.
        "passed": all(value < SOAK_MAX_RSS_GROWTH for value in growth.values())
        and max(connections[half:]) <= max(connections[: half or 1]),
        "timeline": samples,
    }


def write_summary(path: Path, summary: dict[str, Any]) -> None:
    path.write_text(json.dumps(summary, indent=2, default=str) + "\n")
    print(  # noqa: T201
        f"\n{summary.get('scenario')}: {summary.get('requests', 0):,} requests, {summary.get('failures', 0)} failures, "
        f"{summary.get('requests_per_s', 0):.1f} req/s, p50 {summary.get('p50_ms')} ms, "
        f"p95 {summary.get('p95_ms')} ms, p99 {summary.get('p99_ms')} ms -> {path}"
    )


if __name__ == "__main__":
    sys.exit(main())
