"""Losing the primary under load, on a real Patroni cluster (tests/patroni_cluster.py): the app
follows the new primary through libpq's multi-host URL, failures are 503s inside the window,
and no post acknowledged with a 201 is lost.

One gunicorn per test, never restarted: DATABASE_URL names every node with
`target_session_attrs=read-write`, DATABASE_REPLICA_URLS the same nodes with `prefer-standby`.
docs/reliability.md has the measured runs, docs/scale-out.md the design.
"""

import json
import re
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from project.devservers.live import Server
from tests.live_server import request, run_python, running_gunicorn
from tests.patroni_cluster import HAPROXY, PatroniCluster, haproxy, missing_tools, patroni_cluster

pytestmark = [pytest.mark.faults, pytest.mark.skipif(missing_tools() is not None, reason=missing_tools() or "")]

DATABASE = "postline"
LIBPQ = "libpq multi-host"
WRITERS = 3
READERS = 2
FAULT_AFTER_S = 3.0
LOAD_AFTER_FAULT_S = 12.0
# Patroni notices the dead postmaster within loop_wait (1 s), hands the leader key over, and
# the synchronous standby promotes: seconds. Bounded by the leader key's ttl (10 s) and slack.
FIRST_WRITE_BOUND_S = 15.0
SWITCH_SLACK_S = 1.0
# How long after the first acknowledged write a failure may still end: with libpq a request
# fails as soon as no node takes writes; HAProxy holds a connection it has no server for up to
# its `timeout connect` (3 s, tests/patroni_cluster.py) before failing it.
FAILURES_END_AFTER_FIRST_WRITE_S = {LIBPQ: SWITCH_SLACK_S, "haproxy": 3.0 + SWITCH_SLACK_S}
# What the old primary's Patroni logs on its way back: the crash, the rewind, following the leader.
EVENTS = re.compile(r"crash|rewind|Failing over|demot|following a different leader|starting as a secondary", re.I)


@pytest.fixture(scope="module")
def cluster() -> Iterator[PatroniCluster]:
    root = Path(tempfile.mkdtemp(prefix="pl-patroni-", dir="/tmp"))  # nosec B108 -- the postgres user must reach it
    try:
        with patroni_cluster(root) as running:
            leader = running.node(running.leader() or "")
            leader.postgres.query(f"CREATE DATABASE {DATABASE}")
            migrated = run_python("manage.py", "migrate", "--noinput", env={"DATABASE_URL": running.url(DATABASE)})
            assert migrated.returncode == 0, migrated.stderr
            yield running
    finally:
        shutil.rmtree(root, ignore_errors=True)  # three data directories and etcd's: ~500 MB


@pytest.fixture
def route(request: pytest.FixtureRequest, cluster: PatroniCluster) -> Iterator[dict[str, str]]:
    """How the app finds the primary: libpq's multi-host URL (the default), or HAProxy checking
    Patroni's REST API (docs/scale-out.md compares them)."""
    if getattr(request, "param", LIBPQ) == LIBPQ:
        yield {
            "DATABASE_URL": cluster.url(DATABASE),
            "DATABASE_REPLICA_URLS": cluster.url(DATABASE, target_session_attrs="prefer-standby"),
        }
        return
    if not Path(HAPROXY).exists():
        pytest.skip("haproxy is not installed (Debian: apt-get install haproxy)")
    with haproxy(cluster) as proxy:
        yield {"DATABASE_URL": proxy.url(DATABASE), "DATABASE_REPLICA_URLS": proxy.url(DATABASE, replicas=True)}


@pytest.fixture
def server(cluster: PatroniCluster, route: dict[str, str], tmp_path: Path) -> Iterator[Server]:
    env = {**route, "DATABASE_REPLICA_COOLDOWN": "1", "GUNICORN_THREADS": "4"}
    cluster.wait_for(cluster.whole, what="the cluster whole before the test")
    with running_gunicorn(tmp_path, env=env) as running:
        yield running
    booted = running.log().count("Booting worker")
    assert booted == 2, f"gunicorn restarted workers ({booted} boots):\n{running.log()[-3000:]}"


@dataclass
class Outcome:
    started: float
    ended: float
    status: int  # 0: no HTTP answer at all
    method: str


@dataclass
class Load:
    """Writers posting with a token and readers reading, from when `start` is called until `stop`."""

    server: Server
    outcomes: list[Outcome] = field(default_factory=list)
    acknowledged: list[int] = field(default_factory=list)
    replayed: int = 0  # acknowledgements of a retry that found its post already committed
    unresolved: int = 0  # posts still being retried when the load stopped
    lock: threading.Lock = field(default_factory=threading.Lock)
    stopping: threading.Event = field(default_factory=threading.Event)
    threads: list[threading.Thread] = field(default_factory=list)

    def call(
        self, path: str, *, method: str = "GET", token: str | None = None, body: Any = None, key: str | None = None
    ) -> tuple[int, dict[str, str], Any]:
        headers = {"Content-Type": "application/json", **({"Authorization": f"Token {token}"} if token else {})}
        if key is not None:
            headers["Idempotency-Key"] = key
        started = time.monotonic()
        try:
            status, answer_headers, raw = request(
                f"{self.server.base_url}{path}",
                method=method,
                body=json.dumps(body).encode() if body is not None else None,
                headers=headers,
            )
        except OSError:
            status, answer_headers, raw = 0, {}, b""
        with self.lock:
            self.outcomes.append(Outcome(started, time.monotonic(), status, method))
        return status, answer_headers, (json.loads(raw) if raw.startswith(b"{") else raw)

    def writer(self, token: str) -> None:
        """Each post under its own Idempotency-Key, sent again after a failure until it is
        acknowledged: a post committed before its answer was lost is replayed, not doubled."""
        while not self.stopping.is_set():
            key = uuid.uuid4().hex
            while True:
                status, headers, post = self.call(
                    "/api/posts/", method="POST", token=token, body={"title": key, "body": "x"}, key=key
                )
                if status == 201:
                    with self.lock:
                        self.acknowledged.append(int(post["id"]))
                        self.replayed += headers.get("Idempotent-Replayed") == "true"
                    break
                if self.stopping.is_set():
                    with self.lock:
                        self.unresolved += 1
                    return
                time.sleep(0.05)

    def reader(self) -> None:
        while not self.stopping.is_set():
            self.call("/api/posts/?search=failover")
            self.call("/api/posts/")

    @contextmanager
    def running(self) -> Iterator["Load"]:
        """The clients run inside the block, and stop on the way out whatever happened."""
        tokens = [sign_up(self) for _ in range(WRITERS)]
        self.threads = [threading.Thread(target=self.writer, args=(token,), daemon=True) for token in tokens]
        self.threads += [threading.Thread(target=self.reader, daemon=True) for _ in range(READERS)]
        for thread in self.threads:
            thread.start()
        try:
            yield self
        finally:
            self.stopping.set()
            for thread in self.threads:
                thread.join(timeout=60)

    def failures(self) -> list[Outcome]:
        return [outcome for outcome in self.outcomes if outcome.status not in {200, 201}]

    def first_write_after(self, moment: float) -> float | None:
        return min(
            (
                each.ended
                for each in self.outcomes
                if each.method == "POST" and each.status == 201 and each.started >= moment
            ),
            default=None,
        )


def sign_up(load: Load) -> str:
    email = f"{uuid.uuid4().hex[:12]}@example.com"
    password = "correct-horse-battery-staple"
    status, _, user = load.call("/api/users/", method="POST", body={"email": email, "name": "F", "password": password})
    assert status == 201, user
    status, _, token = load.call("/api/auth/token/", method="POST", body={"email": email, "password": password})
    assert status == 200, token
    return str(token["token"])


def missing_posts(cluster: PatroniCluster, leader: str, ids: list[int]) -> list[int]:
    rows = cluster.node(leader).postgres.query("SELECT id FROM posts WHERE id = ANY(%s)", (ids,), database=DATABASE)
    return sorted(set(ids) - {row[0] for row in rows})


def check_posts(cluster: PatroniCluster, leader: str, load: Load) -> str:
    """Every acknowledged post is on `leader`, none twice (retries carried their key), and no
    more posts than acknowledged but for those still being retried at the end."""
    assert not missing_posts(cluster, leader, load.acknowledged)
    titles = cluster.node(leader).postgres.query(
        "SELECT count(*), count(DISTINCT title) FROM posts WHERE author_id IN "
        "(SELECT author_id FROM posts WHERE id = ANY(%s))",
        (load.acknowledged,),
        database=DATABASE,
    )[0]
    assert titles[0] == titles[1], f"{titles[0] - titles[1]} posts written twice"
    assert len(load.acknowledged) <= titles[0] <= len(load.acknowledged) + load.unresolved
    return (
        f"{len(load.acknowledged)} posts acknowledged ({load.replayed} of them replayed for a retry), "
        f"0 missing and none twice on {leader}; {load.unresolved} still retried at the end"
    )


def summary(load: Load, moment: float) -> str:
    by_status: dict[int, int] = {}
    for outcome in load.outcomes:
        by_status[outcome.status] = by_status.get(outcome.status, 0) + 1
    failures = load.failures()
    window = (
        f"failures from +{(min(f.started for f in failures) - moment) * 1000:.0f} ms to "
        f"+{(max(f.ended for f in failures) - moment) * 1000:.0f} ms"
        if failures
        else "no failures"
    )
    return f"{len(load.outcomes)} requests, by status {dict(sorted(by_status.items()))}, {window}"


@pytest.mark.parametrize("route", [LIBPQ, "haproxy"], indirect=True)
def test_the_primary_killed_under_load_fails_over_and_loses_no_acknowledged_post(
    cluster: PatroniCluster, route: dict[str, str], server: Server, request: pytest.FixtureRequest
) -> None:
    route_name = request.node.callspec.params["route"]
    old_leader = cluster.leader()
    assert old_leader is not None
    with Load(server).running() as load:
        time.sleep(FAULT_AFTER_S)
        killed = time.monotonic()
        cluster.crash_primary(old_leader)
        new_leader = cluster.wait_for(
            lambda: (leader := cluster.leader()) != old_leader and leader,
            what="Patroni promotes a replica",
            deadline_s=30,
        )
        promoted = time.monotonic()
        time.sleep(LOAD_AFTER_FAULT_S)

    first_write = load.first_write_after(killed)
    rejoined = cluster.wait_for(cluster.whole, what=f"{old_leader} rejoins as a replica", deadline_s=90)
    rejoin_s = time.monotonic() - killed
    events = [line for line in cluster.node(old_leader).log().splitlines() if EVENTS.search(line)]
    failures = load.failures()
    print(
        f"\nfailover through {route_name} ({route['DATABASE_URL']}): {old_leader} crashed, {new_leader} promoted "
        f"after {(promoted - killed) * 1000:.0f} ms (Patroni's view); first acknowledged write "
        f"{((first_write or killed) - killed) * 1000:.0f} ms after the crash\n  {summary(load, killed)}\n"
        f"  {old_leader} whole again {rejoin_s:.1f} s after the crash; its Patroni said:\n    " + "\n    ".join(events)
    )
    print(f"  {check_posts(cluster, new_leader, load)}")
    assert rejoined
    assert any("pg_rewind" in line for line in events), "the old primary came back without pg_rewind"
    assert {failure.status for failure in failures} <= {503, 0}, server.log()[-3000:]
    assert all(failure.started >= killed - SWITCH_SLACK_S for failure in failures)
    assert first_write is not None
    assert first_write - killed < FIRST_WRITE_BOUND_S
    window_end = first_write + FAILURES_END_AFTER_FIRST_WRITE_S[route_name]
    assert all(failure.ended <= window_end for failure in failures)
    # The old primary, a replica now, replays every acknowledged post too.
    cluster.wait_for(
        lambda: not missing_posts(cluster, old_leader, load.acknowledged),
        what=f"{old_leader} replays every acknowledged post",
        deadline_s=30,
    )


def test_a_planned_switchover_under_load_fails_only_requests_in_flight(cluster: PatroniCluster, server: Server) -> None:
    old_leader = cluster.leader()
    assert old_leader is not None
    candidate = cluster.sync_standby()
    assert candidate is not None
    with Load(server).running() as load:
        time.sleep(FAULT_AFTER_S)
        began = time.monotonic()
        switched = cluster.switchover(old_leader, candidate)
        assert switched.returncode == 0, switched.stdout + switched.stderr
        cluster.wait_for(lambda: cluster.leader() == candidate, what=f"{candidate} leads", deadline_s=30)
        done = time.monotonic()
        time.sleep(LOAD_AFTER_FAULT_S)

    failures = load.failures()
    first_write = load.first_write_after(done)
    print(
        f"\nswitchover {old_leader} -> {candidate} (the synchronous standby): {(done - began) * 1000:.0f} ms "
        f"until it leads\n  {summary(load, began)}\n  {check_posts(cluster, candidate, load)}"
    )
    assert {failure.status for failure in failures} <= {503, 0}, server.log()[-3000:]
    # In flight during the switch: begun before it was done, ended after it began.
    assert all(began - SWITCH_SLACK_S <= f.ended and f.started <= done + SWITCH_SLACK_S for f in failures)
    assert first_write is not None
    cluster.wait_for(cluster.whole, what=f"{old_leader} follows {candidate}", deadline_s=60)
