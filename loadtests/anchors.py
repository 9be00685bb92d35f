"""`make compare`: Postline side by side with the article's stack, measured by the anchors' own harness.

../shared/anchors holds the brief's FastAPI + SQLAlchemy + Redis stack and a wrk harness
(bench.py, targets.py). That directory is read-only and its harness must stay what it is, so
this script copies it to a scratch directory, adds Postline as two more targets there
(gunicorn with 2 workers, the same count the article's stack gets, once WSGI and once ASGI),
and runs the copy's bench.py unchanged. Postline uses its own database on the anchors'
PostgreSQL (127.0.0.1:55432), seeded with the same counts (100k users / 1M posts) by
`manage.py seed`, and the anchors' Redis (127.0.0.1:56379, database 1).

Postline's JSON differs from the reference shapes (DRF pages: results/next, opaque cursors),
so the anchors' contract check is replaced by Postline's own functional checks. The deep-page
scenario gets 1,000 real cursors at uniformly random positions of the feed, where the
reference gets random post ids: the same kind of page, anywhere in the table.

    python -m loadtests.anchors --rounds 3        # writes docs/anchors/<date>.md and .json

An A/B of a change: `--baseline DIR` adds the checkout in DIR (a git worktree of the commit
without the change, its own `make install` done) as the target postline_wsgi_baseline, served
exactly as postline_wsgi is; the rounds interleave the two, and the report ends with the
median of the per-round ratios, scenario by scenario:

    git worktree add /tmp/postline-a <commit> && make -C /tmp/postline-a install
    python -m loadtests.anchors --rounds 5 --targets postline_wsgi --baseline /tmp/postline-a
"""

import argparse
import json
import os
import random
import shutil
import stat
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from loadtests.harness import BASE_DIR, prepare_database, production_env
from project.devservers.live import GUNICORN_COMMAND

ANCHORS_DIR = Path(os.environ.get("ANCHORS_DIR", BASE_DIR.parent / "shared" / "anchors"))
DATABASE_URL = "postgres://postgres@127.0.0.1:55432/postline"
REDIS_URL = "redis://127.0.0.1:56379/1"
REPORT_DIR = BASE_DIR / "docs" / "anchors"
PORTS = {"postline_wsgi": 18003, "postline_asgi": 18004}
# Django's own ceiling in the same run, the way hello_asgi gives the server's: Postline's trivial
# view (/healthz, a constant through the whole middleware stack) under the user_detail script.
CEILING_TARGET, CEILING_PORT = "postline_trivial_view", 18005
# And the floor under it: Django with no middleware (loadtests/bare_django.py), same server.
FLOOR_TARGET, FLOOR_PORT = "django_bare_view", 18006
# `--baseline`: another checkout served as postline_wsgi is, for an A/B in the same run.
BASELINE_TARGET, BASELINE_PORT = "postline_wsgi_baseline", 18007
DEEP_CURSORS = 1_000
USERS, POSTS = 100_000, 1_000_000
REFERENCE = "fastapi_ref"


def deep_cursors(count: int) -> list[str]:
    """Cursors to `count` uniformly random positions of the global feed (created_at, id)."""
    os.environ |= {"DATABASE_URL": DATABASE_URL, "REDIS_URL": REDIS_URL, "DJANGO_SETTINGS_MODULE": "project.settings"}
    import django  # noqa: PLC0415

    django.setup()
    from project.http.pagination import encode_cursor  # noqa: PLC0415

    rng = random.Random(42)
    with psycopg.connect(DATABASE_URL) as conn:
        max_id = conn.execute("SELECT max(id) FROM posts").fetchone()[0]  # type: ignore[index]
        ids = [rng.randint(1, max_id) for _ in range(count)]
        rows = conn.execute("SELECT created_at, id FROM posts WHERE id = ANY(%s)", [ids]).fetchall()
    return [encode_cursor([created_at.isoformat(), post_id]) for created_at, post_id in rows]


def postline_targets(cursors: list[str]) -> dict[str, dict[str, Any]]:
    """Postline as anchors targets: the fields targets.py documents, in JSON."""
    targets = {name: _postline_server(port, name.removeprefix("postline_")) for name, port in PORTS.items()}
    for name in PORTS:
        targets[name] |= {
            "scenarios": {
                "user_detail": "/api/users/{id}/",
                "user_detail_hot": "/api/users/{hot_id}/",
                "users_list": "/api/users/?page_size=20",
                "user_posts_page": "/api/users/{id}/posts/?page_size=20",
                "posts_page": [[1, f"/api/posts/?cursor={cursor}"] for cursor in cursors],
                "mix": [[1, "/api/users/?page_size=20"], [3, "/api/users/{id}/"]],
            },
            "contract": False,
            "checks": [
                ["GET", "/api/users/4242/", None, 200, '"id":4242'],
                ["GET", "/api/users/999999999/", None, 404, None],
                ["GET", "/api/users/?page_size=20", None, 200, '"next":'],
                ["GET", f"/api/posts/?cursor={cursors[0]}", None, 200, '"results":['],
            ],
        }
    targets[CEILING_TARGET] = _postline_server(CEILING_PORT, "wsgi") | {
        "description": "framework ceiling: Postline's trivial view /healthz (a constant, every middleware), wsgi",
        "scenarios": {"user_detail": "/healthz"},
        "contract": False,
    }
    targets[FLOOR_TARGET] = _postline_server(FLOOR_PORT, "wsgi") | {
        "description": "floor: Django with no middleware and one constant view, Postline's gunicorn config, wsgi",
        "scenarios": {"user_detail": "/healthz"},
        "contract": False,
    }
    targets[FLOOR_TARGET]["start"] = [*targets[FLOOR_TARGET]["start"], "loadtests.bare_django:application"]
    return targets


def baseline_target(targets: dict[str, dict[str, Any]], checkout: Path) -> dict[str, Any]:
    """postline_wsgi's target served from `checkout` with that checkout's own virtualenv."""
    gunicorn = checkout / ".venv" / "bin" / "gunicorn"
    if not gunicorn.is_file():
        raise SystemExit(f"anchors: {gunicorn} is missing; run `make install` in {checkout} first")
    revision = subprocess.run(  # noqa: S603
        ["git", "-C", str(checkout), "log", "-1", "--format=%h %s"],  # noqa: S607
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return (
        targets["postline_wsgi"]
        | _postline_server(BASELINE_PORT, "wsgi")
        | {
            "description": f"baseline for the A/B: {checkout} ({revision or 'not a git checkout'}), wsgi",
            "cwd": str(checkout),
            "start": [str(gunicorn), *GUNICORN_COMMAND[1:]],
        }
    )


def ab_table(raw: dict[str, Any]) -> str:
    """postline_wsgi against the baseline: per scenario, the median of the per-round ratios."""
    by_round: dict[tuple[str, str, int], float] = {
        (row["target"], row["scenario"], row["round"]): float(row["rps"])
        for row in raw["rows"]
        if row.get("scenario") and row.get("rps")
    }
    lines = [
        "| scenario | baseline req/s (median) | this checkout req/s (median) | change (median of the rounds') "
        "| per round |",
        "| --- | ---: | ---: | ---: | --- |",
    ]
    for scenario in sorted({scenario for target, scenario, _ in by_round if target == BASELINE_TARGET}):
        rounds = sorted(r for target, s, r in by_round if target == BASELINE_TARGET and s == scenario)
        pairs = [
            (by_round[(BASELINE_TARGET, scenario, r)], by_round[("postline_wsgi", scenario, r)])
            for r in rounds
            if ("postline_wsgi", scenario, r) in by_round
        ]
        if not pairs:
            continue
        changes = sorted(b / a - 1 for a, b in pairs)
        baseline, current = (sorted(side)[len(side) // 2] for side in zip(*pairs, strict=True))
        per_round = ", ".join(f"{b / a - 1:+.1%}" for a, b in pairs)
        lines.append(
            f"| {scenario} | {baseline:,.0f} | {current:,.0f} | {changes[len(changes) // 2]:+.1%} | {per_round} |"
        )
    return "\n".join(lines)


def _postline_server(port: int, mode: str) -> dict[str, Any]:
    """gunicorn with production settings and 2 workers, as the reference gets."""
    env = production_env(database_url=DATABASE_URL, redis_url=REDIS_URL, port=port, mode=mode, workers=2)
    # wrk speaks plain HTTP to the port and sends no X-Forwarded-Proto: no redirect to https.
    env |= {"SECURE_SSL_REDIRECT": "false", "SECURE_HSTS_SECONDS": "0"}
    return {
        "kind": "http",
        "description": f"Postline: Django 5.2 + DRF + psycopg 3 + django-redis, gunicorn -w 2 {mode}",
        "cwd": str(BASE_DIR),
        "start": [*GUNICORN_COMMAND],
        "env": {key: value for key, value in env.items() if os.environ.get(key) != value},
        "base_url": f"http://127.0.0.1:{port}",
        "ready_path": "/healthz",
    }


def scratch_copy(targets: dict[str, dict[str, Any]]) -> Path:
    """The anchors directory, writable, with Postline's targets appended to its targets.py."""
    copy = Path(tempfile.mkdtemp(prefix="postline-anchors-")) / "anchors"
    shutil.copytree(ANCHORS_DIR, copy, ignore=shutil.ignore_patterns("results", "__pycache__"))
    for path in [copy, *copy.rglob("*")]:
        path.chmod(path.stat().st_mode | stat.S_IWUSR)
    (copy / "postline_targets.json").write_text(json.dumps(targets))
    with (copy / "targets.py").open("a") as targets_py:
        targets_py.write(
            "\n# Added by Postline's loadtests/anchors.py: Postline as two more targets.\n"
            "import json as _json\n"
            "TARGETS.update(_json.loads((HERE / 'postline_targets.json').read_text()))\n"
        )
    return copy


def ratios(raw: dict[str, Any]) -> str:
    """Postline vs reference requests per second for every scenario (median over rounds)."""
    runs: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in raw["rows"]:
        if row.get("scenario") and row.get("rps"):
            runs.setdefault((row["target"], row["scenario"]), []).append(row)
    medians = {key: sorted(rows, key=lambda row: row["rps"])[len(rows) // 2] for key, rows in runs.items()}
    rps = {key: float(row["rps"]) for key, row in medians.items()}
    p99 = {key: float(row["p99_ms"]) for key, row in medians.items()}
    scenarios = sorted({scenario for target, scenario in rps if target == REFERENCE})
    lines = [
        "| scenario | fastapi_ref req/s | Postline WSGI req/s | ratio | Postline ASGI req/s | ratio | target ratio | "
        "p99 ms (ref / WSGI / ASGI) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for scenario in scenarios:
        reference = rps[(REFERENCE, scenario)]
        cells = []
        for target in PORTS:
            value = rps.get((target, scenario))
            cells += [f"{value:,.0f}", f"{value / reference:.2f}"] if value else ["-", "-"]
        target_ratio = "2.0" if scenario == "user_detail_hot" else "1.5"
        latencies = " / ".join(f"{p99.get((t, scenario), float('nan')):.1f}" for t in (REFERENCE, *PORTS))
        lines.append(f"| {scenario} | {reference:,.0f} | {' | '.join(cells)} | {target_ratio} | {latencies} |")
    ceilings = {target: rps.get((target, "user_detail")) for target in (CEILING_TARGET, FLOOR_TARGET, "hello_asgi")}
    lines += ["", *(f"- ceiling, {target}: {value:,.0f} req/s" for target, value in ceilings.items() if value)]
    hot, trivial = rps.get(("postline_wsgi", "user_detail_hot")), ceilings.get(CEILING_TARGET)
    if hot and trivial:
        lines.append(f"- cached profile (user_detail_hot, WSGI) / trivial view: {hot / trivial:.0%}")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=1, help="anchors bench.py --rounds (3 for decisions)")
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument(
        "--targets",
        default=f"postline_wsgi,postline_asgi,fastapi_ref,{CEILING_TARGET},{FLOOR_TARGET},hello_asgi,pgbench_pk",
    )
    parser.add_argument("--report-dir", type=Path, default=REPORT_DIR)
    parser.add_argument("--baseline", type=Path, help="another checkout to serve as postline_wsgi_baseline (A/B)")
    args = parser.parse_args()
    if args.baseline and BASELINE_TARGET not in args.targets.split(","):
        args.targets = f"{BASELINE_TARGET},{args.targets}"
    if not (ANCHORS_DIR / "bench.py").is_file():
        raise SystemExit(f"anchors: no harness at {ANCHORS_DIR} (set ANCHORS_DIR)")

    subprocess.run([str(ANCHORS_DIR / "services.sh"), "up"], check=True)  # noqa: S603
    prepare_database(DATABASE_URL, users=USERS, posts=POSTS)
    targets = postline_targets(deep_cursors(DEEP_CURSORS))
    if args.baseline:
        targets[BASELINE_TARGET] = baseline_target(targets, args.baseline.resolve())
    copy = scratch_copy(targets)
    args.report_dir.mkdir(parents=True, exist_ok=True)
    stem = args.report_dir / datetime.now(UTC).strftime("%Y-%m-%d-%H%M")
    command = [
        sys.executable,
        str(copy / "bench.py"),
        "--no-services",
        "--targets",
        args.targets,
        "--rounds",
        str(args.rounds),
        "--duration",
        str(args.duration),
        "--users",
        str(USERS),
        "--posts",
        str(POSTS),
        "--out",
        f"{stem}.md",
        "--json",
        f"{stem}.json",
    ]
    code = subprocess.run(command, check=False).returncode  # noqa: S603
    if Path(f"{stem}.json").is_file():
        raw = json.loads(Path(f"{stem}.json").read_text())
        if args.baseline:
            heading, table = f"## A/B: this checkout against {args.baseline}", ab_table(raw)
        else:
            heading, table = "## Postline vs the article stack (ratio of requests per second)", ratios(raw)
        with Path(f"{stem}.md").open("a") as report:
            report.write(f"\n{heading}\n\n{table}\n\ncommand: python -m loadtests.anchors {' '.join(sys.argv[1:])}\n")
        print(f"\n{table}\n\nreport: {stem}.md")  # noqa: T201
    shutil.rmtree(copy.parent, ignore_errors=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
