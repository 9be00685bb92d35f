"""What the fault tests need besides a gunicorn: servers they may break, and a steady client.

`OwnPostgres` and `OwnRedis` are servers a test starts in a temporary directory on a free
127.0.0.1 port (PostgreSQL: a private cluster of project.devservers.postgres; Redis: the
system's redis-server), so it can stop and restart them without touching the machine's own.
`SteadyLoad` is a bounded client: a few threads, each pacing its requests, recording when
every request started and ended and what it answered, so a test can tell which failures fell
inside the fault window.
"""

import http.client
import random
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, LiteralString

import orjson
import redis
from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from project.devservers.live import free_port
from project.devservers.postgres import Cluster, private_cluster
from tests.live_server import request

REDIS_SERVER = Path("/usr/bin/redis-server")
SERVER_DEADLINE_S = 30.0
APP_DATABASE = "postline"
# A scratch cluster: durability only costs time here.
SCRATCH_SETTINGS = "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"


@dataclass(frozen=True)
class OwnPostgres:
    """A private PostgreSQL 15 cluster holding the application's database, which `query` reads."""

    cluster: Cluster

    @property
    def app_url(self) -> str:
        return self.cluster.url(APP_DATABASE)

    def start(self) -> None:
        """Returns once the server accepts connections."""
        self.cluster.start()

    def stop(self) -> None:
        """`fast`: every session ends (in-flight queries fail), as a restart by an operator does."""
        self.cluster.stop("fast")

    def app_connections(self) -> int:
        """Sessions open on the application's database (this monitoring one is on `postgres`)."""
        rows = self.cluster.query("SELECT count(*) FROM pg_stat_activity WHERE datname = %s", [APP_DATABASE])
        return int(rows[0][0]) if rows else 0

    def query(self, sql: LiteralString, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        """The database's truth, on a connection of the test's own."""
        return self.cluster.query(sql, params, database=APP_DATABASE)


class OwnRedis:
    """A redis-server on a free port that saves its data when stopped and loads it when started.

    Persistence makes the restart the hard case: entries cached before the outage come back,
    so an invalidation lost during it would show as stale data.
    """

    def __init__(self) -> None:
        self.port = free_port()
        self.directory = Path(tempfile.mkdtemp(prefix="pl-faults-redis-", dir="/tmp"))
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=2)

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                *(str(REDIS_SERVER), "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.directory)),
                *("--save", "3600 1", "--appendonly", "no", "--logfile", str(self.directory / "redis.log")),
            ],
            start_new_session=True,
        )
        deadline = time.monotonic() + SERVER_DEADLINE_S
        while time.monotonic() < deadline:
            try:
                if self.client().ping():
                    return
            except redis.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError(f"redis-server did not answer; see {self.directory / 'redis.log'}")

    def stop(self) -> None:
        """SIGTERM: Redis saves its data set to dump.rdb and exits."""
        if self.process is None:
            return
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=SERVER_DEADLINE_S)
        self.process = None

    def destroy(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)
            self.process = None
        shutil.rmtree(self.directory, ignore_errors=True)


@contextmanager
def own_servers() -> Iterator[tuple[OwnPostgres, OwnRedis]]:
    cache = OwnRedis()
    with private_cluster(settings=SCRATCH_SETTINGS, prefix="pl-faults-pg-") as cluster:
        cluster.query(f"CREATE DATABASE {APP_DATABASE}")
        try:
            cache.start()
            yield OwnPostgres(cluster), cache
        finally:
            cache.destroy()


# --- the steady client -------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    kind: str
    started: float
    ended: float
    status: int  # 0: no HTTP answer (connection refused or reset)
    body: bytes


@dataclass
class Writer:
    """A signed-up user the load creates posts as."""

    user_id: int
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Token {self.token}", "Content-Type": "application/json"}


@dataclass
class SteadyLoad:
    """`threads` clients, each sending about `per_thread_rps` requests a second on new connections.

    A request on a new connection may be handed to any gunicorn worker, as a load balancer's
    would. Requests: profiles, post details, the feed and a user's posts (all cached), and
    every tenth one a post created by `writer`; with `watched_post_id`, reads of that post too,
    which a test compares with the database.
    """

    base_url: str
    writer: Writer
    user_ids: list[int]
    post_ids: list[int]
    watched_post_id: int | None = None
    threads: int = 4
    per_thread_rps: float = 20.0
    outcomes: list[Outcome] = field(default_factory=list)
    creating: threading.Event = field(default_factory=threading.Event)
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _workers: list[threading.Thread] = field(default_factory=list)

    def _next_request(self, rng: random.Random, counter: int) -> tuple[str, str, str, bytes | None]:
        if counter % 10 == 9 and self.creating.is_set():
            body = orjson.dumps({"title": f"load {counter}", "body": "steady load"})
            return "create", "POST", "/api/posts/", body
        choices = [
            ("profile", "GET", f"/api/users/{rng.choice(self.user_ids)}/", None),
            ("post", "GET", f"/api/posts/{rng.choice(self.post_ids)}/", None),
            ("feed", "GET", "/api/posts/", None),
            ("user-posts", "GET", f"/api/users/{rng.choice(self.user_ids)}/posts/", None),
        ]
        if self.watched_post_id is not None:
            choices.append(("watched", "GET", f"/api/posts/{self.watched_post_id}/", None))
        return rng.choice(choices)

    def _run(self, seed: int) -> None:
        rng = random.Random(seed)  # noqa: S311  -- request mix, not security
        interval = 1.0 / self.per_thread_rps
        counter = 0
        while not self._stop.is_set():
            kind, method, path, body = self._next_request(rng, counter)
            counter += 1
            headers = self.writer.headers if method == "POST" else {}
            started = time.monotonic()
            try:
                status, _, answer = request(f"{self.base_url}{path}", method=method, body=body, headers=headers)
            except (OSError, http.client.HTTPException):
                # No answer, or a cut one (IncompleteRead: a worker killed while answering).
                status, answer = 0, b""
            ended = time.monotonic()
            with self._lock:
                self.outcomes.append(Outcome(kind, started, ended, status, answer))
            # Pacing, not waiting for something: stop() interrupts it at once.
            self._stop.wait(max(0.0, interval - (ended - started)))

    def start(self) -> None:
        self.creating.set()
        for index in range(self.threads):
            worker = threading.Thread(target=self._run, args=(index,), name=f"load-{index}", daemon=True)
            worker.start()
            self._workers.append(worker)

    def stop(self) -> None:
        self._stop.set()
        for worker in self._workers:
            worker.join(timeout=60)

    def snapshot(self) -> list[Outcome]:
        with self._lock:
            return list(self.outcomes)


@contextmanager
def steady_load(load: SteadyLoad) -> Iterator[SteadyLoad]:
    load.start()
    try:
        yield load
    finally:
        load.stop()


def by_status(outcomes: list[Outcome]) -> dict[int, int]:
    return dict(sorted(Counter(outcome.status for outcome in outcomes).items()))


def summary(name: str, outcomes: list[Outcome], **figures: object) -> str:
    """One line a person can read in the test output, and copy into docs/reliability.md."""
    extra = " ".join(f"{key}={value}" for key, value in figures.items())
    return f"FAULT {name}: requests={len(outcomes)} by_status={by_status(outcomes)} {extra}".rstrip()


def failing(outcomes: list[Outcome]) -> list[Outcome]:
    return [outcome for outcome in outcomes if outcome.status == 0 or outcome.status >= 500]


# --- reading the server ------------------------------------------------------------------------


def sign_up_writer(base_url: str, *, email: str) -> Writer:
    """A user signed up and signed in through the API, as a real client would."""
    password = "steady-load-password-42"
    payload = orjson.dumps({"email": email, "name": "Load Writer", "password": password})
    status, _, body = request(
        f"{base_url}/api/users/", method="POST", body=payload, headers={"Content-Type": "application/json"}
    )
    assert status == 201, body
    user_id = int(orjson.loads(body)["id"])
    payload = orjson.dumps({"email": email, "password": password})
    status, _, body = request(
        f"{base_url}/api/auth/token/", method="POST", body=payload, headers={"Content-Type": "application/json"}
    )
    assert status == 200, body
    return Writer(user_id=user_id, token=str(orjson.loads(body)["token"]))


def metric_sum(base_url: str, name: str, where: Callable[[dict[str, str]], bool] = lambda labels: True) -> float:
    """The sum of a metric's samples whose labels pass `where`, over every worker (/metrics is multiprocess)."""
    status, _, body = request(f"{base_url}/metrics")
    assert status == 200, body
    return sum(
        sample.value
        for family in text_string_to_metric_families(body.decode())
        for sample in family.samples
        if sample.name == name and where(sample.labels)
    )


def poll(condition: Callable[[], bool], *, deadline_s: float, interval_s: float = 0.05) -> float | None:
    """Seconds until `condition()` held, or None if it did not within the deadline."""
    started = time.monotonic()
    while time.monotonic() - started < deadline_s:
        if condition():
            return time.monotonic() - started
        time.sleep(interval_s)
    return None


def requests_counted_by(metrics_dir: Path, pid: int) -> float:
    """Requests one worker process has counted, read from its own multiprocess file.

    /metrics sums every process's file; reading one alone tells whether a given worker (a
    replacement, say) is serving yet.
    """
    path = metrics_dir / f"counter_{pid}.db"
    if not path.exists():
        return 0.0
    with tempfile.TemporaryDirectory(prefix="pl-faults-metrics-") as single:
        shutil.copyfile(path, Path(single) / path.name)
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=single)
        return sum(
            sample.value
            for family in registry.collect()
            for sample in family.samples
            if sample.name == "postline_http_requests_total"
        )
