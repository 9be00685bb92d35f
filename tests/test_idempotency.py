"""Idempotency-Key on create requests (project/http/idempotency.py): a retry gets the first
response and creates nothing, through a Redis outage and a worker killed after the commit."""

import io
import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.management import call_command
from django.utils import timezone

from posts.models import Post
from project.devservers import embedded
from project.models import IdempotencyKey
from tests.conftest import client_for
from tests.factories import PASSWORD
from tests.live_server import BASE_DIR, request, running_gunicorn, server_environment
from users.models import User
from users.tokens import token_issue

pytestmark = pytest.mark.django_db
POST = {"title": "Once", "body": "Created once, however often it is sent."}


def create_post(client, key: str, body: dict[str, str] = POST):
    return client.post("/api/posts/", body, format="json", HTTP_IDEMPOTENCY_KEY=key)


def test_a_retry_gets_the_first_response_and_creates_nothing(user) -> None:
    client = client_for(user)
    first = create_post(client, "key-1")
    assert first.status_code == 201
    assert "Idempotent-Replayed" not in first
    again = create_post(client, "key-1")
    assert (again.status_code, again.json()) == (201, first.json())
    assert again["Idempotent-Replayed"] == "true"
    assert Post.objects.count() == 1
    assert create_post(client, "key-2").status_code == 201  # another key, another post
    assert Post.objects.count() == 2


def test_the_same_key_with_another_body_is_refused(user) -> None:
    client = client_for(user)
    assert create_post(client, "key-1").status_code == 201
    response = create_post(client, "key-1", {**POST, "title": "Something else"})
    assert response.status_code == 422
    assert "another request" in response.json()["detail"]
    assert Post.objects.count() == 1


def test_keys_are_scoped_to_the_caller(user) -> None:
    other = User.objects.create_user("other@example.com", PASSWORD, name="Other")
    assert create_post(client_for(user), "shared").status_code == 201
    response = create_post(client_for(other), "shared")
    assert response.status_code == 201
    assert "Idempotent-Replayed" not in response
    assert Post.objects.count() == 2


def test_a_refused_request_leaves_no_key_behind(user) -> None:
    client = client_for(user)
    assert create_post(client, "fix-me", {"title": ""}).status_code == 400
    assert not IdempotencyKey.objects.exists()
    assert create_post(client, "fix-me").status_code == 201


def test_sign_up_is_idempotent_per_client_address(api_client) -> None:
    body = {"email": "once@example.com", "name": "Once", "password": PASSWORD}
    answers = [api_client.post("/api/users/", body, format="json", HTTP_IDEMPOTENCY_KEY="signup-1") for _ in range(2)]
    assert [a.status_code for a in answers] == [201, 201]
    assert answers[0].json() == answers[1].json()
    assert User.objects.filter(email="once@example.com").count() == 1


@pytest.mark.parametrize("key", ["", "x" * 256, "spaces are not allowed", "é"])
def test_a_malformed_key_is_a_400_naming_the_header(user, key: str) -> None:
    response = create_post(client_for(user), key)
    assert response.status_code == 400
    assert "Idempotency-Key" in response.json()


def test_a_key_past_its_time_to_live_may_be_used_again(user, settings) -> None:
    client = client_for(user)
    assert create_post(client, "old").status_code == 201
    IdempotencyKey.objects.update(created_at=timezone.now() - timedelta(hours=settings.IDEMPOTENCY_KEY_TTL_HOURS + 1))
    response = create_post(client, "old", {**POST, "title": "A new day"})
    assert response.status_code == 201
    assert "Idempotent-Replayed" not in response
    assert Post.objects.count() == 2
    call_command("clear_idempotency_keys", stdout=io.StringIO())
    assert IdempotencyKey.objects.count() == 1  # the fresh one


def test_a_replay_needs_no_redis(user, own_redis) -> None:
    client = client_for(user)
    first = create_post(client, "no-redis")
    embedded.stop_redis(own_redis)
    again = create_post(client, "no-redis")
    assert (again.status_code, again.json(), again["Idempotent-Replayed"]) == (201, first.json(), "true")
    assert Post.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_twenty_concurrent_posts_with_one_key_create_one_row(tmp_path: Path, user) -> None:
    _, token = token_issue(user=user)
    headers = {"Content-Type": "application/json", "Authorization": f"Token {token}", "Idempotency-Key": "burst"}
    with running_gunicorn(tmp_path, env={"GUNICORN_THREADS": "8"}) as server:

        def send(_: int) -> tuple[int, dict[str, str], bytes]:
            return request(
                f"{server.base_url}/api/posts/", method="POST", body=json.dumps(POST).encode(), headers=headers
            )

        with ThreadPoolExecutor(max_workers=20) as pool:
            answers = list(pool.map(send, range(20)))
    assert Post.objects.filter(author=user).count() == 1
    assert {status for status, _, _ in answers} == {201}
    assert len({body for _, _, body in answers}) == 1
    assert sum(headers.get("Idempotent-Replayed") == "true" for _, headers, _ in answers) == 19


KILL_AFTER_COMMIT = """
import os, signal, sys
import django
django.setup()
from django.db import transaction
from django.db.models.signals import post_save
from rest_framework.test import APIClient
from posts.models import Post

# The worker dies right after the commit, before any response is written.
post_save.connect(lambda **kw: transaction.on_commit(lambda: os.kill(os.getpid(), signal.SIGKILL)), sender=Post)
client = APIClient()
client.credentials(HTTP_AUTHORIZATION="Token " + sys.argv[1])
client.post("/api/posts/", {"title": "Once", "body": "Created once, however often it is sent."},
            format="json", HTTP_IDEMPOTENCY_KEY="killed")
print("answered")  # never reached
"""


@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_between_commit_and_response_leaves_a_replay(tmp_path: Path, user) -> None:
    _, token = token_issue(user=user)
    env = {**server_environment(tmp_path), "DJANGO_SETTINGS_MODULE": "project.settings"}
    killed = subprocess.run(
        [sys.executable, "-c", KILL_AFTER_COMMIT, token],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert killed.returncode == -9, killed.stderr
    assert b"answered" not in killed.stdout
    assert Post.objects.filter(author=user).count() == 1  # committed, never acknowledged
    client = client_for(user)
    retry = create_post(client, "killed")
    assert (retry.status_code, retry["Idempotent-Replayed"]) == (201, "true")
    assert Post.objects.filter(author=user).count() == 1
