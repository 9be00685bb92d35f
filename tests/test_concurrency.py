"""Data integrity under concurrent requests, against a real multi-worker gunicorn."""

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from posts.models import Post
from tests.factories import PostFactory
from tests.live_server import request, running_gunicorn
from users.models import User
from users.tokens import token_issue

pytestmark = pytest.mark.django_db(transaction=True)


def call(base_url: str, method: str, path: str, body: dict, token: str | None = None) -> int:
    headers = {"Content-Type": "application/json", **({"Authorization": f"Token {token}"} if token else {})}
    status, _, _ = request(f"{base_url}{path}", method=method, body=json.dumps(body).encode(), headers=headers)
    return status


def concurrently(count: int, task) -> list[int]:
    with ThreadPoolExecutor(max_workers=min(count, 32)) as pool:
        return list(pool.map(task, range(count)))


def test_concurrent_writes_keep_exact_rows_counts_and_errors(tmp_path: Path, user) -> None:
    _, token = token_issue(user=user)
    post = PostFactory.create(author=user)
    with running_gunicorn(tmp_path, env={"WEB_CONCURRENCY": "2", "GUNICORN_THREADS": "8"}) as server:
        base = server.base_url

        creates = concurrently(
            100, lambda i: call(base, "POST", "/api/posts/", {"title": f"Post {i}", "body": "Concurrent"}, token)
        )
        assert creates == [201] * 100
        assert Post.objects.filter(author=user, body="Concurrent").count() == 100
        assert len(set(Post.objects.filter(body="Concurrent").values_list("title", flat=True))) == 100

        edits = concurrently(50, lambda i: call(base, "PATCH", f"/api/posts/{post.pk}/", {"title": f"Edit {i}"}, token))
        assert edits == [200] * 50
        post.refresh_from_db()
        assert post.title.startswith("Edit ")

        signup = {"email": "race@example.com", "name": "Racer", "password": "a-long-enough-secret-42"}
        signups = concurrently(
            20,
            lambda i: call(
                base, "POST", "/api/users/", {**signup, "email": "RACE@example.com" if i % 2 else signup["email"]}
            ),
        )
        assert sorted(signups) == [201] + [400] * 19
        assert User.objects.filter(email__iexact="race@example.com").count() == 1

        _, _, profile = request(f"{base}/api/users/{user.pk}/")
        assert json.loads(profile)["post_count"] == 101
    assert "Internal Server Error" not in server.log()
