"""Read replicas against a real streaming replica: reads go to it, a client reads its own
writes, and losing the replica under load costs no request.

The test builds its own primary (initdb) and hot standby (`pg_basebackup -R`) on free ports
of 127.0.0.1, never touching the machine's PostgreSQL. The standby applies WAL
REPLICA_DELAY_MS late, so that a read from it right after a write would miss the write: a
client that sees its writes is pinned to the primary, not lucky.
"""

import json
import shutil
import statistics
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from project.devservers.live import Server
from project.devservers.postgres import Cluster, postgres_available
from tests.live_server import request, run_python, running_gunicorn
from tests.pg_cluster import init_primary, init_replica

pytestmark = [
    pytest.mark.faults,
    pytest.mark.skipif(not postgres_available(), reason="PostgreSQL 15 server binaries (initdb) are not installed"),
]

DATABASE = "postline"
REPLICA_DELAY_MS = 1500
READS_BEFORE_LOAD = 60
LOAD_SECONDS = 12.0
STOP_REPLICA_AFTER_S = 4.0
MAX_REQUESTS_PER_CLIENT = 2000
POLL_DEADLINE_S = 15.0


@pytest.fixture
def streaming_pair() -> Iterator[tuple[Cluster, Cluster]]:
    """A migrated primary and its delayed streaming replica, both stopped afterwards."""
    root = Path(tempfile.mkdtemp(prefix="pl-replica-", dir="/tmp"))
    primary = init_primary(root)
    replica: Cluster | None = None
    try:
        primary.start()
        primary.query("CREATE DATABASE postline")
        migrated = run_python("manage.py", "migrate", "--noinput", env={"DATABASE_URL": primary.url(DATABASE)})
        assert migrated.returncode == 0, migrated.stderr
        replica = init_replica(primary, root, apply_delay_ms=REPLICA_DELAY_MS)
        replica.start()
        yield primary, replica
    finally:
        if replica is not None:
            replica.stop("immediate")
        primary.stop("immediate")
        shutil.rmtree(root, ignore_errors=True)


def transactions(cluster: Cluster) -> int:
    """Transactions the server has counted in the app's database (its own statistics)."""
    rows = cluster.query("SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = %s", (DATABASE,))
    return int(str(rows[0][0]))


def poll(condition: Any, *, what: str) -> None:
    deadline = time.monotonic() + POLL_DEADLINE_S
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"not within {POLL_DEADLINE_S:.0f} s: {what}")
        time.sleep(0.1)


def api(
    server: Server, path: str, *, token: str | None = None, method: str = "GET", body: dict[str, Any] | None = None
) -> tuple[int, Any]:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Token {token}"
    status, _, raw = request(
        f"{server.base_url}{path}",
        method=method,
        body=json.dumps(body).encode() if body is not None else None,
        headers=headers,
    )
    return status, (json.loads(raw) if raw.startswith((b"{", b"[")) else raw)


def sign_up(server: Server) -> tuple[int, str]:
    """A new user and its token, through the API (the token is used at once: see
    users.authentication)."""
    email = f"{uuid.uuid4().hex[:12]}@example.com"
    password = "correct-horse-battery-staple"
    status, user = api(server, "/api/users/", method="POST", body={"email": email, "name": "Rep", "password": password})
    assert status == 201, user
    status, token = api(server, "/api/auth/token/", method="POST", body={"email": email, "password": password})
    assert status == 200, token
    return int(user["id"]), str(token["token"])


@dataclass
class Tally:
    """What the clients saw, shared between their threads."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    statuses: Counter[int] = field(default_factory=Counter)
    own_write_missing: int = 0
    own_write_checks: int = 0
    # (when, stale) of a stranger's read of a post just written
    stranger_reads: list[tuple[float, bool]] = field(default_factory=list)
    # (start, end, status) of every anonymous read
    reads: list[tuple[float, float, int]] = field(default_factory=list)

    def count(self, status: int) -> None:
        with self.lock:
            self.statuses[status] += 1


def writer(server: Server, tally: Tally, deadline: float, user_id: int, token: str) -> None:
    """Post, then read the post back at once: as its author (must see it) and as a stranger."""
    for number in range(MAX_REQUESTS_PER_CLIENT // 4):
        if time.monotonic() > deadline:
            return
        status, post = api(
            server, "/api/posts/", token=token, method="POST", body={"title": f"t{number}", "body": "replica"}
        )
        tally.count(status)
        if status != 201:
            continue
        mine = f"/api/posts/?author={user_id}&page_size=5"
        status, page = api(server, mine, token=token)
        tally.count(status)
        status_detail, detail = api(server, f"/api/posts/{post['id']}/", token=token)
        tally.count(status_detail)
        seen = status == 200 and post["id"] in [row["id"] for row in page["results"]]
        seen_detail = status_detail == 200 and detail["title"] == f"t{number}"
        status, stranger_page = api(server, mine)
        tally.count(status)
        with tally.lock:
            tally.own_write_checks += 1
            tally.own_write_missing += not (seen and seen_detail)
            if status == 200:
                stale = post["id"] not in [row["id"] for row in stranger_page["results"]]
                tally.stranger_reads.append((time.monotonic(), stale))


def reader(server: Server, tally: Tally, deadline: float, author_id: int) -> None:
    """Anonymous reads no cache answers (an author's posts, a search)."""
    paths = [f"/api/posts/?author={author_id}", "/api/posts/?search=replica", f"/api/users/{author_id}/posts/"]
    for number in range(MAX_REQUESTS_PER_CLIENT):
        if time.monotonic() > deadline:
            return
        started = time.monotonic()
        status, _ = api(server, paths[number % len(paths)])
        tally.count(status)
        with tally.lock:
            tally.reads.append((started, time.monotonic(), status))


def test_reads_use_the_replica_own_writes_are_read_back_and_losing_it_fails_nothing(
    streaming_pair: tuple[Cluster, Cluster], tmp_path: Path
) -> None:
    primary, replica = streaming_pair
    env = {
        "DATABASE_URL": primary.url(DATABASE),
        "DATABASE_REPLICA_URLS": replica.url(DATABASE),
        "DATABASE_REPLICA_COOLDOWN": "1",
        "READ_YOUR_WRITES_SECONDS": "5",
        "GUNICORN_THREADS": "4",
    }
    with running_gunicorn(tmp_path, env=env) as server:
        author_id, _ = sign_up(server)
        poll(
            lambda: replica.query("SELECT count(*) FROM users WHERE id = %s", (author_id,), database=DATABASE)[0][0]
            == 1,
            what="the replica replays the sign-up",
        )

        # 1. Anonymous reads, nobody writing: the replica answers them, the primary is idle.
        replica_before, primary_before = transactions(replica), transactions(primary)
        for _ in range(READS_BEFORE_LOAD):
            assert api(server, f"/api/posts/?author={author_id}")[0] == 200
        poll(
            lambda: transactions(replica) - replica_before >= READS_BEFORE_LOAD,
            what=f"{READS_BEFORE_LOAD} read transactions counted on the replica",
        )
        primary_during_reads = transactions(primary) - primary_before
        replica_during_reads = transactions(replica) - replica_before
        assert primary_during_reads < READS_BEFORE_LOAD // 4

        # 2. Steady load: two writers reading their own posts back, two anonymous readers;
        #    the replica is stopped (immediate: like a crash) in the middle.
        tally = Tally()
        writers = [sign_up(server) for _ in range(2)]
        started = time.monotonic()
        deadline = started + LOAD_SECONDS
        clients = [threading.Thread(target=writer, args=(server, tally, deadline, *user)) for user in writers]
        clients += [threading.Thread(target=reader, args=(server, tally, deadline, author_id)) for _ in range(2)]
        for client in clients:
            client.start()
        time.sleep(STOP_REPLICA_AFTER_S)
        stop_began = time.monotonic()
        replica.stop("immediate")
        stopped = time.monotonic()
        primary_at_stop = transactions(primary)
        for client in clients:
            client.join(timeout=LOAD_SECONDS + 60)
        elapsed = time.monotonic() - started

    after_stop = [(begin, end, status) for begin, end, status in tally.reads if begin >= stop_began]
    first_served = min(end for _, end, status in after_stop if status == 200)
    latencies_ms = sorted((end - begin) * 1000 for begin, end, _ in after_stop)
    stale_while_up = [stale for when, stale in tally.stranger_reads if when < stop_began]
    errors = {status: count for status, count in tally.statuses.items() if status >= 400}
    print(
        f"\nreplica test: {sum(tally.statuses.values())} requests in {elapsed:.1f} s, by status "
        f"{dict(sorted(tally.statuses.items()))}, errors {errors or 'none'}\n"
        f"  before load: {READS_BEFORE_LOAD} anonymous reads -> replica +{replica_during_reads} transactions, "
        f"primary +{primary_during_reads}\n"
        f"  read-your-writes: {tally.own_write_checks} writes read back by their author, "
        f"{tally.own_write_missing} missing; while the replica ({REPLICA_DELAY_MS} ms behind) was up, strangers "
        f"read {sum(stale_while_up)} of {len(stale_while_up)} fresh posts as absent\n"
        f"  replica stop took {(stopped - stop_began) * 1000:.0f} ms; first read served after it began: "
        f"{(first_served - stop_began) * 1000:.0f} ms later; {len(after_stop)} reads after the stop, latency "
        f"median {statistics.median(latencies_ms):.1f} ms, max {latencies_ms[-1]:.1f} ms"
    )
    unusual = [line for line in server.log().splitlines() if " 200 " not in line and " 201 " not in line]
    assert not [status for status in tally.statuses if status >= 500], "\n".join(unusual[-60:])
    assert set(tally.statuses) <= {200, 201}
    assert tally.own_write_checks > 10
    assert tally.own_write_missing == 0
    # The replica really lagged: strangers missed fresh posts that their authors saw.
    assert stale_while_up
    assert all(stale_while_up)
    # After the stop, reads were served by the primary.
    assert len(after_stop) > 20
    poll(lambda: transactions(primary) - primary_at_stop >= len(after_stop), what="reads counted on the primary")
    assert "replica replica_1 unavailable" in server.log()


# Run by `manage.py shell`: a read transaction whose replica connection is terminated in its
# middle (pg_terminate_backend on the standby, like a crash of that backend).
_LOST_IN_TRANSACTION = """
import os

import psycopg
from django.db import connections
from posts.models import Post
from project.db.routing import RequestRouting, read_transaction, replica_health, request_routing

request_routing.set(RequestRouting(pinned=False))
replica_url = os.environ["DATABASE_REPLICA_URLS"]
attempts = []

def read(alias):
    with connections[alias].cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid(), pg_is_in_recovery()")
        pid, standby = cursor.fetchone()
        attempts.append((alias, standby))
        if standby:
            with psycopg.connect(replica_url, autocommit=True) as other:
                other.execute("SELECT pg_terminate_backend(%s)", [pid])
        cursor.execute("SELECT count(*) FROM posts")
        return cursor.fetchone()[0]

print(read_transaction(Post, read), attempts, replica_health.is_up("replica_1"))
"""


def test_a_read_transaction_whose_replica_is_lost_runs_again_on_the_primary(
    streaming_pair: tuple[Cluster, Cluster],
) -> None:
    primary, replica = streaming_pair
    env = {"DATABASE_URL": primary.url(DATABASE), "DATABASE_REPLICA_URLS": replica.url(DATABASE)}
    shell = run_python("manage.py", "shell", "-c", _LOST_IN_TRANSACTION, env=env)
    assert shell.returncode == 0, shell.stderr
    assert shell.stdout.split("\n")[-2] == "0 [('replica_1', True), ('default', False)] False", shell.stdout
