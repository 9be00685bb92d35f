"""The three indexed queries of the brief use their indexes (search plans: tests/test_search.py).

A few thousand rows, of which the filtered ones are rare, and sequential scans disabled: the
planner then picks the index that matches each query, and a test fails when a query or an
index definition drifts so that they no longer match.
"""

from collections.abc import Iterator

import pytest
from django.db.models import QuerySet

from posts.models import Post
from posts.selectors import post_list
from tests.conftest import planner_without_seqscans
from tests.factories import PostFactory, UserFactory
from users.models import User
from users.selectors import user_list

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _rows_and_no_seqscan() -> Iterator[None]:
    crowd = User.objects.bulk_create(UserFactory.build(is_active=index % 50 != 0) for index in range(2000))
    Post.objects.bulk_create(
        PostFactory.build(author=crowd[index % len(crowd)], title="Gardening notes", body="Tomatoes and basil.")
        for index in range(3000)
    )
    for author in UserFactory.create_batch(5, metadata={"plan": "pro", "country": "FR"}):
        PostFactory.create_batch(4, author=author, title="Scaling PostgreSQL indexes")
    with planner_without_seqscans("users", "posts"):
        yield


def plan(queryset: QuerySet) -> str:
    return queryset.explain()


def test_one_users_posts_newest_first_use_the_composite_index() -> None:
    author_id = UserFactory.create().pk
    assert "posts_author_created_idx" in plan(post_list(author_id=author_id)[:20])


def test_global_feed_uses_the_created_at_index() -> None:
    assert "posts_created_idx" in plan(post_list()[:20])


def test_active_users_newest_first_use_the_partial_index() -> None:
    assert "users_active_created_idx" in plan(user_list()[:20])


def test_metadata_containment_uses_the_gin_index() -> None:
    assert "users_metadata_gin" in plan(user_list(metadata={"plan": "pro"}))
