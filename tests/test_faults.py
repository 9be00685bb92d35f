"""Fault tests: a live gunicorn under steady load while Redis, PostgreSQL or a worker fails.

Each test breaks a server that this module started itself (tests/faults.py: a PostgreSQL
cluster and a redis-server in temporary directories on free ports, never the machine's own)
while a bounded client sends profile, post, feed and create requests, then checks every
answer against the fault's time window and the database's truth, and prints one line of
counts (`make faults` shows them; docs/reliability.md has a run).
"""

import os
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from project.devservers.live import Server
from project.devservers.postgres import PG_BIN, postgres_available
from tests.faults import (
    REDIS_SERVER,
    Outcome,
    OwnPostgres,
    OwnRedis,
    SteadyLoad,
    Writer,
    by_status,
    failing,
    metric_sum,
    own_servers,
    poll,
    requests_counted_by,
    sign_up_writer,
    steady_load,
    summary,
)
from tests.live_server import request, run_python, running_gunicorn

pytestmark = [
    pytest.mark.faults,
    pytest.mark.skipif(
        not (postgres_available() and REDIS_SERVER.exists()),
        reason=f"needs PostgreSQL 15 binaries in {PG_BIN} (and runuser, as root) and {REDIS_SERVER}",
    ),
]

WORKERS = 2
THREADS = 4
WARM_UP_S = 3.0
REDIS_OUTAGE_S = 10.0
# Long enough for the replacement workers to boot and serve while Redis is still down.
REPLACED_OUTAGE_S = 6.0
POSTGRES_OUTAGE_S = 3.0
RECOVERY_LIMIT_S = 2.0
CACHE_HITS = "postline_cache_requests_total"
REQUESTS = "postline_http_requests_total"
LOAD_ROUTES = frozenset({"/api/users/{pk}/", "/api/posts/{pk}/", "/api/posts/", "/api/users/{pk}/posts/"})


def hold(seconds: float) -> None:
    """Let the load run for a stretch of the scenario's timeline (not a wait for a condition)."""
    time.sleep(seconds)


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[OwnPostgres, OwnRedis]]:
    """PostgreSQL and Redis of this module's own, migrated and seeded once for its tests."""
    with own_servers() as (postgres, cache):
        env = {"DATABASE_URL": postgres.app_url, "REDIS_URL": cache.url}
        for command in (["migrate", "--no-input"], ["seed", "--users", "30", "--posts", "300"]):
            result = run_python("manage.py", *command, env=env)
            assert result.returncode == 0, result.stderr
        yield postgres, cache


@pytest.fixture
def server(servers: tuple[OwnPostgres, OwnRedis], tmp_path: Path) -> Iterator[Server]:
    """gunicorn (2 gthread workers x 4 threads) on this module's servers, throttles out of the way."""
    postgres, cache = servers
    env = {
        "DATABASE_URL": postgres.app_url,
        "REDIS_URL": cache.url,
        "DJANGO_ENV": "development",
        "DEBUG": "false",
        "WEB_CONCURRENCY": str(WORKERS),
        "GUNICORN_THREADS": str(THREADS),
        "GUNICORN_MAX_REQUESTS": "0",
        "THROTTLE_ANON": "1000000/min",
        "THROTTLE_USER": "1000000/min",
        "LOG_LEVEL": "WARNING",
    }
    with running_gunicorn(tmp_path, env=env) as live:
        yield live


def load_for(server: Server, postgres: OwnPostgres, writer: Writer, watched_post_id: int | None = None) -> SteadyLoad:
    user_ids = [int(row[0]) for row in postgres.query("SELECT id FROM users WHERE is_active ORDER BY id LIMIT 20")]
    post_ids = [int(row[0]) for row in postgres.query("SELECT id FROM posts ORDER BY id LIMIT 50")]
    return SteadyLoad(
        base_url=server.base_url,
        writer=writer,
        user_ids=[writer.user_id, *user_ids],
        post_ids=post_ids,
        watched_post_id=watched_post_id,
    )


def new_writer(server: Server) -> Writer:
    return sign_up_writer(server.base_url, email=f"writer-{uuid.uuid4().hex[:10]}@example.com")


def api_json(server: Server, path: str, *, method: str = "GET", body: object = None, writer: Writer) -> dict[str, Any]:
    """One API call outside the load: writes as `writer`, reads anonymously (the cached path)."""
    status, _, answer = request(
        f"{server.base_url}{path}",
        method=method,
        body=None if body is None else orjson.dumps(body),
        headers=writer.headers if method != "GET" else {},
    )
    assert status in {200, 201}, (status, answer)
    decoded = orjson.loads(answer)
    assert isinstance(decoded, dict)
    return decoded


def worker_pids(master: int) -> set[int]:
    """gunicorn's workers: the master's child processes."""
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    return {int(pid) for pid in children}


def watched_post(server: Server, writer: Writer) -> int:
    """A post of `writer`'s that the load reads and the test edits."""
    return int(
        api_json(server, "/api/posts/", method="POST", body={"title": "before", "body": "x"}, writer=writer)["id"]
    )


def cache_hits(server: Server) -> float:
    return metric_sum(server.base_url, CACHE_HITS, lambda labels: labels["result"] == "hit")


def stale_reads(outcomes: list[Outcome], *, since: float, title: str) -> tuple[list[Outcome], list[Outcome]]:
    """Reads of the watched post sent after its edit was answered, and those that missed the edit."""
    reads = [outcome for outcome in outcomes if outcome.kind == "watched" and outcome.started > since]
    return reads, [outcome for outcome in reads if orjson.loads(outcome.body)["title"] != title]


def wait_for_cache_hits(server: Server, *, above: float) -> float | None:
    """Seconds until some request is answered from the cache again (the breaker's cool-down is 5 s)."""
    return poll(lambda: cache_hits(server) > above, deadline_s=15.0, interval_s=0.1)


def test_redis_outage_serves_from_postgres_without_errors_or_stale_data(
    servers: tuple[OwnPostgres, OwnRedis], server: Server
) -> None:
    """The only write during the outage is one edit, so only the worker that made it knows an
    invalidation was lost; Redis comes back with the entries it saved, the old post among them."""
    postgres, cache = servers
    writer = new_writer(server)
    watched_id = watched_post(server, writer)
    edited_title = f"edited during the outage {uuid.uuid4().hex[:6]}"
    load = load_for(server, postgres, writer, watched_post_id=watched_id)

    with steady_load(load):
        hold(WARM_UP_S)
        assert cache_hits(server) > 0
        load.creating.clear()
        cache.stop()
        down_at = time.monotonic()
        hold(REDIS_OUTAGE_S / 3)
        api_json(server, f"/api/posts/{watched_id}/", method="PATCH", body={"title": edited_title}, writer=writer)
        edited_at = time.monotonic()
        hold(REDIS_OUTAGE_S - (edited_at - down_at))
        hits_while_down = cache_hits(server)
        cache.start()
        up_at = time.monotonic()
        resumed_s = wait_for_cache_hits(server, above=hits_while_down)
        # Writes resume only now: one made while a worker's breaker is still open would start
        # a new epoch by itself and hide a stale entry.
        load.creating.set()
        hold(3.0)

    outcomes = load.snapshot()
    reads, stale = stale_reads(outcomes, since=edited_at, title=edited_title)
    during = [outcome for outcome in outcomes if down_at <= outcome.started < up_at]
    print(
        "\n"
        + summary(
            "redis-outage",
            outcomes,
            outage_s=round(up_at - down_at, 1),
            during_outage_by_status=by_status(during),
            reads_of_edited_post=len(reads),
            stale=len(stale),
            cache_hits_resumed_after_s=None if resumed_s is None else round(resumed_s, 2),
        )
    )
    assert failing(outcomes) == []
    assert during, "the load sent nothing while Redis was down"
    assert reads, "the load never read the edited post afterwards"
    assert stale == []
    assert resumed_s is not None, "no cache hit within 15 s of Redis' return"

    # Settled: what the API says now is what the database says.
    assert api_json(server, f"/api/posts/{watched_id}/", writer=writer)["title"] == edited_title
    post_count = postgres.query("SELECT count(*) FROM posts WHERE author_id = %s", [writer.user_id])[0][0]
    assert api_json(server, f"/api/users/{writer.user_id}/", writer=writer)["post_count"] == post_count
    newest = postgres.query(
        "SELECT id FROM posts WHERE author_id = %s ORDER BY created_at DESC, id DESC LIMIT 20", [writer.user_id]
    )
    page = api_json(server, f"/api/users/{writer.user_id}/posts/", writer=writer)
    assert [post["id"] for post in page["results"]] == [row[0] for row in newest]


def test_edit_during_redis_outage_holds_when_the_workers_are_replaced_before_it_returns(
    servers: tuple[OwnPostgres, OwnRedis], server: Server
) -> None:
    """The worker that made the edit, the one that knew its invalidation was lost, is gone when
    Redis returns (a crash or a deploy during the outage): the workers serving then must still
    not answer from the entry cached before the edit. Without every worker starting a new
    cache epoch after an outage it saw, this read the old title for CACHE_TTL seconds."""
    postgres, cache = servers
    writer = new_writer(server)
    watched_id = watched_post(server, writer)
    edited_title = f"edited during the outage {uuid.uuid4().hex[:6]}"
    load = load_for(server, postgres, writer, watched_post_id=watched_id)

    with steady_load(load):
        hold(WARM_UP_S)
        # No other write until the end: any would start a new epoch by itself and hide a stale entry.
        load.creating.clear()
        cache.stop()
        down_at = time.monotonic()
        api_json(server, f"/api/posts/{watched_id}/", method="PATCH", body={"title": edited_title}, writer=writer)
        edited_at = time.monotonic()
        replaced = worker_pids(server.process.pid)
        for pid in replaced:
            os.kill(pid, signal.SIGKILL)
        killed_at = time.monotonic()
        respawned_s = poll(lambda: len(worker_pids(server.process.pid) - replaced) == WORKERS, deadline_s=30.0)
        hold(max(0.0, REPLACED_OUTAGE_S - (time.monotonic() - down_at)))
        hits_while_down = cache_hits(server)
        cache.start()
        up_at = time.monotonic()
        resumed_s = wait_for_cache_hits(server, above=hits_while_down)
        hold(3.0)

    outcomes = load.snapshot()
    reads, stale = stale_reads(outcomes, since=edited_at, title=edited_title)
    failures = failing(outcomes)
    print(
        "\n"
        + summary(
            "redis-outage-workers-replaced",
            outcomes,
            outage_s=round(up_at - down_at, 1),
            failures_by_status=by_status(failures),
            workers_respawned_after_s=None if respawned_s is None else round(respawned_s, 2),
            reads_of_edited_post=len(reads),
            stale=len(stale),
            cache_hits_resumed_after_s=None if resumed_s is None else round(resumed_s, 2),
        )
    )
    assert respawned_s is not None
    # Only requests in flight on the killed workers may fail, with a dropped connection.
    assert {outcome.status for outcome in failures} <= {0}
    assert [outcome for outcome in failures if outcome.started > killed_at] == []
    assert reads, "the load never read the edited post afterwards"
    assert stale == []
    assert resumed_s is not None, "no cache hit within 15 s of Redis' return"


def test_postgres_restart_fails_only_while_down_and_recovers_without_an_app_restart(
    servers: tuple[OwnPostgres, OwnRedis], server: Server
) -> None:
    postgres, _ = servers
    writer = new_writer(server)
    load = load_for(server, postgres, writer)

    with steady_load(load):
        hold(WARM_UP_S)
        connections_before = postgres.app_connections()
        stop_began = time.monotonic()
        postgres.stop()
        down_at = time.monotonic()
        hold(POSTGRES_OUTAGE_S)
        postgres.start()
        up_at = time.monotonic()
        hold(5.0)

    outcomes = load.snapshot()
    failures = failing(outcomes)
    after_return = [outcome for outcome in outcomes if outcome.started >= up_at]
    first_success_s = min(
        (outcome.ended - up_at for outcome in after_return if 200 <= outcome.status < 500), default=None
    )
    last_failure_s = max((outcome.ended - up_at for outcome in failures), default=None)
    connections_leak_free_s = poll(lambda: postgres.app_connections() <= WORKERS * THREADS, deadline_s=10.0)
    connections_after = postgres.app_connections()
    print(
        "\n"
        + summary(
            "postgres-restart",
            outcomes,
            down_s=round(up_at - down_at, 1),
            failures_by_status=by_status(failures),
            first_success_after_return_s=None if first_success_s is None else round(first_success_s, 3),
            last_failure_after_return_s=None if last_failure_s is None else round(last_failure_s, 3),
            db_connections_before=connections_before,
            db_connections_after=connections_after,
        )
    )
    assert failures, "the load sent nothing while PostgreSQL was down"
    # A 503 (never a 500), and only for requests that overlapped the outage or the 2 s after it.
    assert {outcome.status for outcome in failures} == {503}
    assert [outcome for outcome in failures if outcome.ended < stop_began] == []
    assert [outcome for outcome in failures if outcome.started >= up_at + RECOVERY_LIMIT_S] == []
    assert first_success_s is not None
    assert first_success_s < RECOVERY_LIMIT_S
    assert connections_leak_free_s is not None, f"{connections_after} connections, more than one per gunicorn thread"


def test_worker_killed_with_sigkill_is_replaced_and_metrics_stay_consistent(
    servers: tuple[OwnPostgres, OwnRedis], server: Server
) -> None:
    postgres, _ = servers
    writer = new_writer(server)
    load = load_for(server, postgres, writer)

    def load_requests_counted() -> float:
        return metric_sum(server.base_url, REQUESTS, lambda labels: labels["route"] in LOAD_ROUTES)

    counted_before = load_requests_counted()
    scrapes: list[float] = []
    with steady_load(load):
        hold(WARM_UP_S)
        workers_before = worker_pids(server.process.pid)
        assert len(workers_before) == WORKERS
        victim = min(workers_before)
        scrapes.append(metric_sum(server.base_url, REQUESTS))
        os.kill(victim, signal.SIGKILL)
        killed_at = time.monotonic()
        respawned_s = poll(lambda: len(worker_pids(server.process.pid) - workers_before) == 1, deadline_s=30.0)
        (replacement,) = worker_pids(server.process.pid) - workers_before
        metrics_dir = server.log_path.parent / "prometheus"
        serving_s = poll(lambda: requests_counted_by(metrics_dir, replacement) > 0, deadline_s=30.0)
        deadline = time.monotonic() + 4.0
        while time.monotonic() < deadline:
            scrapes.append(metric_sum(server.base_url, REQUESTS))
            hold(0.25)

    outcomes = load.snapshot()
    failures = failing(outcomes)
    answered = [outcome for outcome in outcomes if outcome.status != 0]
    counted = load_requests_counted() - counted_before
    print(
        "\n"
        + summary(
            "worker-sigkill",
            outcomes,
            failures_by_status=by_status(failures),
            worker_respawned_after_s=None if respawned_s is None else round(respawned_s, 2),
            replacement_serving_after_s=None if serving_s is None else round(serving_s, 2),
            answered=len(answered),
            counted_by_metrics=int(counted),
            scrapes=len(scrapes),
        )
    )
    assert respawned_s is not None, "gunicorn did not replace the killed worker"
    assert serving_s is not None, "the replacement worker answered nothing"
    assert server.process.poll() is None
    # Only requests in flight on the killed worker may fail, and only with a dropped connection.
    assert {outcome.status for outcome in failures} <= {0}
    assert len(failures) <= load.threads
    assert [outcome for outcome in failures if outcome.started > killed_at] == []
    # Totals summed over live and dead workers never go backwards, and count what was answered.
    assert scrapes == sorted(scrapes)
    assert len(answered) <= counted <= len(outcomes)
