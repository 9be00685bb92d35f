"""GET /api/users/{id}/overview/: one database round trip, overlapped with the upstream call."""

import threading
import time
from collections.abc import Iterator

import psycopg
import pytest
from django.db import connection

from project.devservers.live import free_port
from tests.factories import PostFactory, UserFactory
from tests.live_server import database_url
from tests.upstream import Upstream, running_upstream
from users import enrichment


@pytest.fixture
def upstream(settings) -> Iterator[Upstream]:
    enrichment.breaker.reset()
    with running_upstream() as server:
        settings.PROFILE_ENRICHMENT_URL = server.template
        yield server
    enrichment.breaker.reset()


@pytest.mark.django_db
def test_overview_without_enrichment_is_profile_posts_and_count_in_one_query(client, django_assert_num_queries):
    author = UserFactory.create()
    posts = PostFactory.create_batch(12, author=author)
    with django_assert_num_queries(1):
        response = client.get(f"/api/users/{author.pk}/overview/")
    body = response.json()
    assert response.status_code == 200
    assert body["post_count"] == 12
    assert [post["id"] for post in body["latest_posts"]] == [post.pk for post in reversed(posts)][:10]
    assert body["latest_posts"][0]["author"] == {"id": author.pk, "name": author.name}
    assert (body["external"], body["degraded"]) == (None, False)
    assert "email" not in body


@pytest.mark.django_db
def test_latest_posts_render_like_the_post_endpoint(client):
    post = PostFactory.create()
    from_overview = client.get(f"/api/users/{post.author_id}/overview/").json()["latest_posts"][0]
    assert from_overview == client.get(f"/api/posts/{post.pk}/").json()


@pytest.mark.django_db
def test_unknown_user_overview_is_404(client, upstream: Upstream):
    assert client.get("/api/users/987654/overview/").status_code == 404


@pytest.mark.django_db
def test_fast_upstream_data_is_included_and_cached_briefly(client, user, upstream: Upstream):
    first = client.get(f"/api/users/{user.pk}/overview/").json()
    assert first["external"] == {"user_id": str(user.pk), "reputation": 42}
    assert first["degraded"] is False
    client.get(f"/api/users/{user.pk}/overview/")
    assert upstream.requests == 1


@pytest.mark.parametrize("mode", ["error", "malformed", "array"])
@pytest.mark.django_db
def test_a_failing_upstream_degrades_the_overview_but_never_fails_it(client, user, upstream: Upstream, mode):
    upstream.mode = mode
    response = client.get(f"/api/users/{user.pk}/overview/")
    assert response.status_code == 200
    assert (response.json()["external"], response.json()["degraded"]) == (None, True)
    assert response.json()["id"] == user.pk


@pytest.mark.django_db
def test_a_slow_upstream_is_cut_off_at_the_timeout(client, user, upstream: Upstream, settings):
    settings.PROFILE_ENRICHMENT_TIMEOUT = 0.2
    upstream.delay = 2.0
    started = time.monotonic()
    response = client.get(f"/api/users/{user.pk}/overview/")
    assert time.monotonic() - started < 1.0
    assert (response.json()["external"], response.json()["degraded"]) == (None, True)


@pytest.mark.django_db
def test_a_refused_connection_degrades_the_overview(client, user, settings):
    settings.PROFILE_ENRICHMENT_URL = f"http://127.0.0.1:{free_port()}/profiles/{{user_id}}"
    response = client.get(f"/api/users/{user.pk}/overview/")
    assert (response.status_code, response.json()["degraded"]) == (200, True)


@pytest.mark.django_db
def test_the_breaker_stops_calling_a_failing_upstream_and_closes_when_it_recovers(
    client, user, upstream: Upstream, monkeypatch
):
    monkeypatch.setattr(enrichment.breaker, "_threshold", 2)
    monkeypatch.setattr(enrichment.breaker, "_cooldown", lambda: 0.3)
    upstream.mode = "error"
    for _ in range(4):
        assert client.get(f"/api/users/{user.pk}/overview/").json()["degraded"] is True
    assert upstream.requests == 2  # open after two failures: the next calls never left the process
    assert enrichment.breaker.is_open

    upstream.mode = "fast"
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if client.get(f"/api/users/{user.pk}/overview/").json()["degraded"] is False:
            break
    assert not enrichment.breaker.is_open
    assert upstream.requests == 3  # one trial call after the cool-down, which succeeded


@pytest.mark.django_db(transaction=True)
def test_the_overview_takes_about_the_longest_part_not_the_sum(client, upstream: Upstream, settings):
    """The database part is held up by a lock for 0.6 s, the upstream answers after 0.6 s:
    run one after the other that is at least 1.2 s, overlapped about 0.6 s. The parts are long
    so that the test client's own overhead (0.2 s seen on a slow CI VM) cannot blur the two."""
    author = UserFactory.create()
    PostFactory.create_batch(3, author=author)
    settings.PROFILE_ENRICHMENT_TIMEOUT = 2.0
    upstream.delay = 0.6
    database_delay = 0.6
    locker = psycopg.connect(database_url(connection.settings_dict))
    locker.execute("LOCK TABLE posts IN ACCESS EXCLUSIVE MODE")
    release = threading.Timer(database_delay, locker.commit)
    release.start()
    try:
        started = time.monotonic()
        response = client.get(f"/api/users/{author.pk}/overview/")
        elapsed = time.monotonic() - started
    finally:
        release.join()
        locker.close()
    assert response.json()["post_count"] == 3
    assert response.json()["external"] is not None
    assert database_delay <= elapsed < database_delay + upstream.delay * 2 / 3, elapsed
