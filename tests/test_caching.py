"""Hot reads come from Redis, are never stale after a write, and survive Redis failing."""

import json
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

import orjson
import pytest
from django.db import connection
from django_redis import get_redis_connection

from posts.views import post_detail_read
from project.cache import local_cache, store
from project.devservers import embedded
from project.devservers.live import Server
from tests.conftest import client_for
from tests.factories import PostFactory, UserFactory
from tests.live_server import request, running_gunicorn
from users.models import User


def cached_paths(user_id: int, post_id: int) -> list[str]:
    return [
        f"/api/users/{user_id}/",
        f"/api/posts/{post_id}/",
        "/api/posts/",
        f"/api/users/{user_id}/posts/",
        "/api/users/",
    ]


@pytest.mark.django_db
def test_a_cached_read_costs_no_query(api_client, django_assert_num_queries) -> None:
    post = PostFactory.create()
    for path in cached_paths(post.author_id, post.pk):
        first = api_client.get(path)
        with django_assert_num_queries(0):
            again = api_client.get(path)
        assert again.status_code == 200
        assert again.content == first.content


def redis_commands() -> dict[str, int]:
    stats = get_redis_connection("default").info("commandstats")
    return {name.removeprefix("cmdstat_"): int(stat["calls"]) for name, stat in stats.items()}


def commands_of(call: Callable[[], object]) -> dict[str, int]:
    before = redis_commands()
    call()
    after = redis_commands()
    # Less this helper's own INFO.
    ran = {name: after[name] - before.get(name, 0) for name in after if after[name] != before.get(name, 0)}
    ran["info"] -= 1
    return {name: count for name, count in ran.items() if count}


@pytest.mark.django_db
def test_a_hot_cached_read_costs_no_redis_round_trip(api_client, own_redis) -> None:
    """The throttle counts in this process and the entry and its tokens are in its memory
    (project/cache/local_cache.py): a read this process served before needs no Redis command."""
    post = PostFactory.create()
    for path in cached_paths(post.author_id, post.pk):
        first = api_client.get(path)
        # The first read's own token writes come back as invalidations: the second may read Redis
        # once more (unless an earlier path already brought the same tokens).
        assert commands_of(partial(api_client.get, path)) in ({}, {"mget": 1}), path
        assert commands_of(partial(api_client.get, path)) == {}, path
        assert api_client.get(path).content == first.content


@pytest.mark.django_db
def test_detail_responses_carry_an_etag_and_answer_304(api_client, user) -> None:
    post = PostFactory.create(author=user)
    response = api_client.get(f"/api/posts/{post.pk}/")
    assert response["Cache-Control"] == "no-cache, public"
    not_modified = api_client.get(f"/api/posts/{post.pk}/", HTTP_IF_NONE_MATCH=response["ETag"])
    assert not_modified.status_code == 304
    assert not_modified.content == b""
    private = client_for(user).get(f"/api/users/{user.pk}/")
    assert "private" in private["Cache-Control"]
    assert "email" in private.json()


@pytest.mark.django_db
def test_the_private_profile_is_never_served_from_the_cache_to_others(api_client, user) -> None:
    client_for(user).get(f"/api/users/{user.pk}/")
    assert "email" not in api_client.get(f"/api/users/{user.pk}/").json()
    api_client.get(f"/api/users/{user.pk}/")
    assert client_for(user).get(f"/api/users/{user.pk}/").json()["email"] == user.email


# --- read-after-write, through another process ----------------------------------------------


@pytest.fixture
def reader(tmp_path: Path) -> Iterator[Server]:
    """gunicorn workers: processes other than this one, sharing its Redis and database."""
    with running_gunicorn(tmp_path) as server:
        yield server


def read(server: Server, path: str) -> tuple[int, dict]:
    status, _, body = request(f"{server.base_url}{path}")
    return status, json.loads(body)


@pytest.mark.django_db(transaction=True)
def test_every_write_is_visible_to_the_next_read_in_another_process(reader: Server) -> None:
    user = UserFactory.create(name="Before")
    writer = client_for(user)
    profile, feed, own_posts = f"/api/users/{user.pk}/", "/api/posts/", f"/api/users/{user.pk}/posts/"
    assert read(reader, profile)[1]["post_count"] == 0
    assert read(reader, feed)[1]["results"] == []

    created = writer.post("/api/posts/", {"title": "First", "body": "Hello"}, format="json").json()
    detail = f"/api/posts/{created['id']}/"
    assert read(reader, profile)[1]["post_count"] == 1
    assert [row["id"] for row in read(reader, feed)[1]["results"]] == [created["id"]]
    assert [row["id"] for row in read(reader, own_posts)[1]["results"]] == [created["id"]]
    assert read(reader, detail)[1]["title"] == "First"

    writer.patch(detail, {"title": "Edited"}, format="json")
    assert read(reader, detail)[1]["title"] == "Edited"
    assert read(reader, feed)[1]["results"][0]["title"] == "Edited"
    assert read(reader, own_posts)[1]["results"][0]["title"] == "Edited"

    writer.patch(profile, {"name": "After", "metadata": {"plan": "pro"}}, format="json")
    assert read(reader, profile)[1]["name"] == "After"
    assert read(reader, profile)[1]["metadata"] == {"plan": "pro"}
    assert read(reader, detail)[1]["author"]["name"] == "After"
    assert read(reader, feed)[1]["results"][0]["author"]["name"] == "After"

    writer.delete(detail)
    assert read(reader, detail)[0] == 404
    assert read(reader, feed)[1]["results"] == []
    assert read(reader, profile)[1]["post_count"] == 0

    writer.delete(profile)
    assert read(reader, profile)[0] == 404


@pytest.mark.django_db(transaction=True)
def test_a_write_reaches_workers_that_serve_the_read_from_memory(reader: Server) -> None:
    """Both workers have served the profile (so hold it and its tokens in memory) before each
    write in this process; every read right after the write, on either worker, is fresh."""
    user = UserFactory.create(name="v0")
    writer = client_for(user)
    profile = f"/api/users/{user.pk}/"
    for version in range(1, 6):
        for _ in range(8):  # new connections each: both workers serve some of them
            assert read(reader, profile)[1]["name"] == f"v{version - 1}"
        assert writer.patch(profile, {"name": f"v{version}"}, format="json").status_code == 200
        assert [read(reader, profile)[1]["name"] for _ in range(8)] == [f"v{version}"] * 8


@pytest.mark.django_db(transaction=True)
def test_the_cached_users_list_follows_sign_ups_posts_and_deactivations(reader: Server) -> None:
    def listed() -> dict[int, int]:
        return {row["id"]: row["post_count"] for row in read(reader, "/api/users/")[1]["results"]}

    assert listed() == {}
    first = UserFactory.create()
    signed_up = client_for(first).post(
        "/api/users/", {"email": "new@example.com", "name": "New", "password": "a-long-passphrase-9"}, format="json"
    )
    new_id = signed_up.json()["id"]
    assert new_id in listed()
    new_user = client_for(User.objects.get(pk=new_id))
    new_user.post("/api/posts/", {"title": "Hi", "body": "There"}, format="json")
    assert listed()[new_id] == 1
    new_user.delete(f"/api/users/{new_id}/")
    assert new_id not in listed()


@pytest.mark.django_db
def test_local_entries_stop_being_trusted_when_redis_stops_answering(api_client, own_redis) -> None:
    """A paused Redis keeps its connections open and sends no invalidation, as a partitioned one
    would: within TRUST_SECONDS the layer stops serving from memory (project/cache/local_cache.py)."""
    post = PostFactory.create()
    path = f"/api/posts/{post.pk}/"
    read = post_detail_read(post.pk)
    for _ in range(3):
        api_client.get(path)
    assert commands_of(lambda: api_client.get(path)) == {}
    assert store.local_tokens(read) is not None
    get_redis_connection("default").execute_command("CLIENT", "PAUSE", 4000)
    deadline = time.monotonic() + local_cache.TRUST_SECONDS + 2
    while store.local_tokens(read) is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert store.local_tokens(read) is None


def test_the_in_process_layer_keeps_at_most_max_bytes_least_recently_used_out_first() -> None:
    layer = local_cache.LocalLayer()
    page = b"x" * (local_cache.MAX_BYTES // 4 - 1024)  # four fit, with what each entry holds besides
    for number in range(4):
        layer.remember_entry(f"page:{number}", ("tokens", page))
    assert layer.entry("page:0") is not None  # read: now the most recently used
    layer.remember_entry("page:4", ("tokens", page))
    assert layer.entry("page:1") is None
    assert all(layer.entry(f"page:{number}") is not None for number in (0, 2, 3, 4))


def test_the_in_process_layer_keeps_at_most_max_tokens(monkeypatch) -> None:
    layer = local_cache.LocalLayer()
    monkeypatch.setattr(layer, "_connection", object())  # as if tracking: tokens are kept
    layer.remember_tokens({f"gen:{number}": "t" for number in range(local_cache.MAX_TOKENS + 10)}, read_since=0)
    assert len(layer._tokens) == local_cache.MAX_TOKENS
    assert "gen:0" not in layer._tokens
    assert f"gen:{local_cache.MAX_TOKENS + 9}" in layer._tokens


# --- stampede -------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("after_an_outage", [False, True])
def test_fifty_concurrent_misses_on_one_key_query_the_database_at_most_twice(after_an_outage: bool) -> None:
    """After an outage the burst's first lookup starts a new epoch: once, not once per thread."""
    if after_an_outage:
        store._pending_epoch.mark()
    queries = []
    start = threading.Barrier(50)
    bodies: list[bytes] = []

    def slow_query() -> dict:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_sleep(0.2), 1")
            queries.append(cursor.fetchone())
        return {"answer": 42}

    def miss() -> None:
        start.wait()
        try:
            bodies.append(store.cached_json(store.CachedRead("stampede", (1,), ("test",)), compute=slow_query))
        finally:
            connection.close()

    threads = [threading.Thread(target=miss) for _ in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(bodies) == 50
    assert set(bodies) == {b'{"answer":42}'}
    assert len(queries) <= 2


# --- Redis failure --------------------------------------------------------------------------


def served_from_cache(name: str) -> bool:
    return bool(get_redis_connection("default").keys(f"*:{store.API_VERSION}:{name}:*"))


@pytest.mark.django_db
def test_redis_outage_serves_correct_data_and_caching_resumes(api_client, own_redis: Path, settings) -> None:
    settings.CACHE_BREAKER_COOLDOWN = 0.2
    post = PostFactory.create(title="Original")
    author = client_for(post.author)
    paths = cached_paths(post.author_id, post.pk)
    assert all(api_client.get(path).status_code == 200 for path in paths)
    assert served_from_cache("post-detail")

    embedded.stop_redis(own_redis)
    edit = author.patch(f"/api/posts/{post.pk}/", {"title": "Written while Redis was down"}, format="json")
    assert edit.status_code == 200
    for _ in range(3):
        responses = [api_client.get(path) for path in paths]
        assert [response.status_code for response in responses] == [200] * len(paths)
    assert responses[1].json()["title"] == "Written while Redis was down"
    assert responses[2].json()["results"][0]["title"] == "Written while Redis was down"

    embedded.redis_url(own_redis)
    deadline = time.monotonic() + 10
    while not served_from_cache("post-detail") and time.monotonic() < deadline:
        assert api_client.get(f"/api/posts/{post.pk}/").json()["title"] == "Written while Redis was down"
    assert served_from_cache("post-detail")


@pytest.mark.django_db
def test_a_failed_fill_releases_the_waiters_at_once() -> None:
    """A compute that raises (a 404) must not leave a lock that makes the next requests wait."""

    def missing() -> dict:
        raise LookupError("no such row")

    for _ in range(2):
        started = time.monotonic()
        with pytest.raises(LookupError):
            store.cached_json(store.CachedRead("missing", (1,), ("test",)), compute=missing)
        assert time.monotonic() - started < store.FILL_WAIT_SECONDS / 2


def test_an_outage_is_logged_once_not_per_cache_call(db, api_client, own_redis, caplog) -> None:
    """While the breaker is open, django-redis' ignored errors are not logged again for every
    call: formatting several tracebacks per request cost more CPU than serving it."""
    post = PostFactory.create()
    embedded.stop_redis(own_redis)
    with caplog.at_level("WARNING"):
        for _ in range(5):
            assert api_client.get(f"/api/posts/{post.pk}/").status_code == 200
    ignored = [record for record in caplog.records if record.name == "project.cache"]
    opened = [record for record in caplog.records if "circuit open" in record.getMessage()]
    assert len(opened) == 1
    assert len(ignored) <= 1  # the call that found Redis down and opened the breaker


def test_local_entries_hold_the_memory_of_their_length() -> None:
    """A body fresh from orjson holds a 4 KiB buffer however short it is: kept as it came, a
    worker's 4 MiB of entries took over 100 MiB (the soak's growth). The layer keeps copies."""
    layer = local_cache.LocalLayer()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for number in range(1000):
            layer.remember_entry(f"entry-{number}", ("1", orjson.dumps({"id": number, "name": "short"})))
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert held < 1000 * 512
