import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import cast

import pytest
from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django_redis.cache import RedisCache
from rest_framework.test import APIClient

from posts import search
from project.cache.redis_breaker import breaker
from project.devservers import embedded
from project.http import throttling
from tests.factories import UserFactory
from users.models import User
from users.tokens import token_issue


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """With DATABASE_REPLICA_URLS set, transactional tests may read through the replica aliases.

    They mirror the test database (TEST MIRROR), so their reads see the test's commits; tests
    in a transaction (TestCase) read from the primary anyway (project/db/routing.py).
    """
    if not settings.DATABASE_REPLICAS:
        return
    for item in items:
        marker = item.get_closest_marker("django_db")
        if marker is not None and marker.kwargs.get("transaction") and "databases" not in marker.kwargs:
            # Prepended: pytest-django reads the closest (first) django_db marker.
            item.add_marker(
                pytest.mark.django_db(*marker.args, **{**marker.kwargs, "databases": "__all__"}), append=False
            )


@pytest.fixture(autouse=True)
def _empty_cache() -> Iterator[None]:
    """Every test starts and ends with no Postline keys in Redis (other keys are left alone),
    no throttle counts held back in this process and a closed circuit breaker."""
    redis_cache = cast(RedisCache, cache)
    search.statistics.clear()  # each test's ANALYZE (or none) is what its searches see
    search.query_tree.cache_clear()  # query counts do not depend on the tests run before
    breaker.reset()
    throttling.local_counts.clear()
    redis_cache.delete_pattern("*")
    yield
    breaker.reset()
    redis_cache.delete_pattern("*")


@pytest.fixture
def own_redis(settings) -> Iterator[Path]:
    """A Redis server this test starts and stops itself (never the machine's own), as the cache."""
    directory = Path(tempfile.mkdtemp(prefix="pl-redis-", dir="/tmp"))
    # Through pytest-django's `settings`, so that it unwinds in order with the test's own changes.
    settings.CACHES = {"default": {**settings.CACHES["default"], "LOCATION": embedded.redis_url(directory)}}
    yield directory
    embedded.stop_redis(directory)
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def api_client() -> APIClient:
    return APIClient()


def client_for(user: User) -> APIClient:
    """A client that authenticates the way real clients do: with the user's API token."""
    _, key = token_issue(user=user)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


@pytest.fixture
def user(db: None) -> User:
    return UserFactory.create()


@pytest.fixture
def staff(db: None) -> User:
    return UserFactory.create(is_staff=True, name="Staff Member")


@contextmanager
def planner_without_seqscans(*tables: str) -> Iterator[None]:
    """ANALYZE the tables and forbid sequential scans, so EXPLAIN shows whether an index fits."""
    with connection.cursor() as cursor:
        cursor.execute("; ".join([*(f"ANALYZE {table}" for table in tables), "SET enable_seqscan = off"]))
    yield
    with connection.cursor() as cursor:
        cursor.execute("RESET enable_seqscan")


# The document migration 0003's expression index was built on, as the trigger of 0004 computes it.
EXPECTED_DOCUMENT = "to_tsvector('english'::regconfig, COALESCE(title, '') || ' ' || COALESCE(body, ''))"


def documents_are_right() -> bool:
    """Whether every post's search_document is its text's document (False for no posts)."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT bool_and(search_document IS NOT DISTINCT FROM {EXPECTED_DOCUMENT}) FROM posts")  # noqa: S608
        row = cursor.fetchone()
    return bool(row and row[0])
