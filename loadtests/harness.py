"""What every load run shares: a seeded database, gunicorn's environment as production sets it,
and samplers of PostgreSQL connections and worker memory.

Used by bench.py (wrk), run.py (locust: `make loadtest`, `make soak`, the CI smoke run) and
anchors.py (the side-by-side with the article's stack); the servers themselves start through
project.devservers.live. Only 127.0.0.1 is ever contacted.
"""

import os
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

from project.devservers import embedded

BASE_DIR = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
UNLIMITED_THROTTLE = "100000000/min"
# Cache keys of the servers these tools start (bench.py deletes them between runs).
CACHE_KEY_PREFIX = "postline-load"
# Nothing listens on port 1: a server given this REDIS_URL runs with the cache off (fail-open).
CLOSED_REDIS = "redis://127.0.0.1:1/0"


def server_urls() -> tuple[str, str]:
    """DATABASE_URL and REDIS_URL from the environment, or the embedded servers'."""
    embedded.hold()
    return os.environ["DATABASE_URL"], os.environ["REDIS_URL"]


def with_database(database_url: str, name: str) -> str:
    """The same server, another database."""
    parts = urlsplit(database_url)
    return urlunsplit(parts._replace(path=f"/{name}"))


def database_name(database_url: str) -> str:
    return urlsplit(database_url).path.lstrip("/")


def prepare_database(database_url: str, *, users: int, posts: int) -> None:
    """Create the database if needed, migrate it, and seed it once (`seed --if-empty`)."""
    name = database_name(database_url)
    with psycopg.connect(with_database(database_url, "postgres"), autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    env = {**os.environ, "DATABASE_URL": database_url}
    manage = [str(BIN / "python"), "manage.py"]
    subprocess.run([*manage, "migrate", "--verbosity", "0"], cwd=BASE_DIR, env=env, check=True)  # noqa: S603
    seed = [*manage, "seed", "--if-empty", "--users", str(users), "--posts", str(posts), "--seed", "1"]
    subprocess.run(seed, cwd=BASE_DIR, env=env, check=True)  # noqa: S603
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("ANALYZE")


def production_env(
    *,
    database_url: str,
    redis_url: str,
    port: int | None = None,
    mode: str | None = None,
    workers: int | None = None,
) -> dict[str, str]:
    """gunicorn's environment as a production deployment sets it. `port` is for a server that
    another harness starts (anchors.py); project.devservers.live.live_gunicorn binds a free
    port of 127.0.0.1 itself, and Django run in-process needs none.

    Two deliberate differences, both documented in docs/loadtests.md: the throttle rates are
    lifted (every simulated client shares one address), and clients send X-Forwarded-Proto as
    the TLS-terminating proxy in front of Postline would. Without `mode` and `workers` the
    project's defaults apply.
    """
    chosen = {
        "SERVER_MODE": mode,
        "WEB_CONCURRENCY": str(workers) if workers else None,
        "BIND": f"127.0.0.1:{port}" if port else None,
    }
    return {
        **os.environ,
        "DJANGO_ENV": "production",
        "SECRET_KEY": secrets.token_urlsafe(48),
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        # Nothing is sent during a load test: no worker runs the jobs it enqueues.
        "EMAIL_HOST": "127.0.0.1",
        "FRONTEND_URL": "http://127.0.0.1",
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "CACHE_KEY_PREFIX": CACHE_KEY_PREFIX,
        **{name: value for name, value in chosen.items() if value},
        # INFO: the access line of every request is written, as in production.
        "LOG_LEVEL": "INFO",
        **dict.fromkeys(("THROTTLE_ANON", "THROTTLE_USER", "THROTTLE_AUTH"), UNLIMITED_THROTTLE),
    }


def worker_pids(master_pid: int) -> list[int]:
    children = Path(f"/proc/{master_pid}/task/{master_pid}/children")
    try:
        return [int(pid) for pid in children.read_text().split()]
    except OSError:
        return []


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (/proc/<pid>/stat, clock ticks)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pid_alive(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists()


def rss_mib(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


class Sampler:
    """Samples PostgreSQL backends of one database and the RSS of gunicorn's workers."""

    def __init__(self, database_url: str, master_pid: int | None = None, interval_s: float = 0.25) -> None:
        self._url, self._database = database_url, database_name(database_url)
        self._master_pid, self._interval = master_pid, interval_s
        self._stop = threading.Event()
        self.samples: list[dict[str, Any]] = []

    @property
    def max_connections(self) -> int:
        return max((sample["db_connections"] for sample in self.samples), default=0)

    def _run(self) -> None:
        started = time.monotonic()
        with psycopg.connect(self._url, autocommit=True) as conn:
            while not self._stop.is_set():
                row = conn.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                    [self._database],
                ).fetchone()
                workers = worker_pids(self._master_pid) if self._master_pid else []
                self.samples.append(
                    {
                        "t": round(time.monotonic() - started, 2),
                        "db_connections": int(row[0]) if row else 0,
                        "worker_rss_mib": {pid: round(rss_mib(pid), 1) for pid in workers},
                    }
                )
                self._stop.wait(self._interval)

    @contextmanager
    def sampling(self) -> Iterator["Sampler"]:
        self._stop.clear()
        self.samples = []
        thread = threading.Thread(target=self._run, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            thread.join()
