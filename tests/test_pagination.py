"""Keyset pagination: every row exactly once, in order, also while rows are being inserted."""

import base64
import json
from datetime import timedelta

import pytest
from django.utils import timezone

from posts.models import Post
from tests.factories import PostFactory, UserFactory

pytestmark = pytest.mark.django_db


def collect(client, url: str) -> list[int]:
    ids: list[int] = []
    while url:
        response = client.get(url)
        assert response.status_code == 200, response.content
        page = response.json()
        ids.extend(row["id"] for row in page["results"])
        url = page["next"]
    return ids


@pytest.fixture
def author_with_posts():
    author = UserFactory.create()
    moment = timezone.now()
    # Many rows share a timestamp, so the id must break ties.
    Post.objects.bulk_create(
        PostFactory.build(author=author, created_at=moment - timedelta(seconds=index // 4)) for index in range(45)
    )
    return author


def newest_first(author) -> list[int]:
    return list(Post.objects.filter(author=author).order_by("-created_at", "-id").values_list("id", flat=True))


@pytest.mark.parametrize("page_size", [7, 20])
def test_paging_returns_each_post_exactly_once_newest_first(api_client, author_with_posts, page_size) -> None:
    ids = collect(api_client, f"/api/users/{author_with_posts.pk}/posts/?page_size={page_size}")
    assert ids == newest_first(author_with_posts)


@pytest.mark.parametrize("page_size", [7, 20])
def test_posts_created_between_pages_neither_repeat_nor_shift_rows(api_client, author_with_posts, page_size) -> None:
    expected = newest_first(author_with_posts)
    url = f"/api/users/{author_with_posts.pk}/posts/?page_size={page_size}"
    seen: list[int] = []
    while url:
        page = api_client.get(url).json()
        seen.extend(row["id"] for row in page["results"])
        PostFactory.create(author=author_with_posts)  # a new post lands on page one meanwhile
        url = page["next"]
    assert seen == expected


def test_previous_link_walks_back(api_client, author_with_posts) -> None:
    first = api_client.get(f"/api/users/{author_with_posts.pk}/posts/?page_size=10").json()
    assert first["previous"] is None
    second = api_client.get(first["next"]).json()
    back = api_client.get(second["previous"]).json()
    assert [row["id"] for row in back["results"]] == [row["id"] for row in first["results"]]


def test_users_list_pages_cover_every_active_user(api_client) -> None:
    users = UserFactory.create_batch(12)
    assert collect(api_client, "/api/users/?page_size=5") == [user.pk for user in reversed(users)]


def test_search_results_page_by_rank(api_client) -> None:
    for index in range(9):
        PostFactory.create(title="database " * (index % 3 + 1), body="text")
    ids = collect(api_client, "/api/posts/?search=database&page_size=4")
    assert sorted(ids) == sorted(Post.objects.values_list("id", flat=True))
    assert len(ids) == 9


def encode(payload: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode()


@pytest.mark.parametrize(
    "cursor",
    [
        "garbage",
        "%%%",
        encode([1, 2]),
        encode({"p": ["not-a-date", 1], "r": False}),
        encode({"p": ["2024-01-01T00:00:00+00:00"], "r": False}),
        encode({"p": ["2024-01-01T00:00:00+00:00", "x"], "r": False}),
        encode({"p": ["2024-01-01T00:00:00+00:00", 10**30], "r": False}),
        encode({"p": ["2024-01-01T00:00:00+00:00", 1], "r": "yes"}),
        encode({"p": [None, 1], "r": False}),
        encode({"p": [{"a": 1}, 1], "r": False}),
        encode({"p": [True, 1], "r": False}),
        base64.urlsafe_b64encode(b"\xff\xfe").decode(),
    ],
)
def test_garbage_or_tampered_cursor_is_a_400(api_client, cursor) -> None:
    PostFactory.create()
    response = api_client.get("/api/posts/", {"cursor": cursor})
    assert response.status_code == 400
    assert response.json() == {"cursor": ["Invalid cursor."]}


@pytest.mark.parametrize("page_size", ["0", "101", "x", "-5"])
def test_page_size_outside_1_to_100_is_a_400(api_client, page_size) -> None:
    response = api_client.get("/api/posts/", {"page_size": page_size})
    assert response.status_code == 400
    assert "page_size" in response.json()


def test_page_size_100_is_allowed(api_client) -> None:
    assert api_client.get("/api/posts/", {"page_size": "100"}).status_code == 200
