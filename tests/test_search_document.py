"""posts.search_document: written by the database for every writer, read only by searches."""

import pytest
from django.contrib.postgres.search import SearchQuery
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from posts.models import Post
from tests.conftest import client_for, documents_are_right
from tests.factories import PostFactory, UserFactory

pytestmark = pytest.mark.django_db


def found(client: APIClient, term: str) -> list[int]:
    return [row["id"] for row in client.get("/api/posts/", {"search": term}).json()["results"]]


def test_the_document_follows_an_edit(api_client) -> None:
    post = PostFactory.create(title="Gardening notes", body="Tomatoes and basil.")
    assert found(api_client, "tomatoes") == [post.pk]

    client_for(post.author).patch(f"/api/posts/{post.pk}/", {"body": "Indexes for a database."}, format="json")

    assert found(api_client, "tomatoes") == []
    assert found(api_client, "database") == [post.pk]
    assert found(api_client, "gardening") == [post.pk]


def test_rows_written_by_raw_sql_get_their_document() -> None:
    author = UserFactory.create()
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO posts (author_id, title, body, created_at, updated_at) "
            "VALUES (%s, 'Raw', 'Written without the ORM.', now(), now()), (%s, 'Other', 'Text.', now(), now())",
            [author.pk, author.pk],
        )
        # A client cannot write a document of its own: the trigger recomputes it from the text.
        cursor.execute("UPDATE posts SET title = 'Edited raw', search_document = 'wrong' WHERE title = 'Raw'")

    assert documents_are_right()
    assert Post.objects.filter(search_document=SearchQuery("edited", config="english")).get().title == "Edited raw"


def test_ordinary_reads_do_not_fetch_the_document(api_client) -> None:
    post = PostFactory.create()
    with CaptureQueriesContext(connection) as queries:
        for path in ("/api/posts/", f"/api/posts/{post.pk}/", f"/api/users/{post.author_id}/posts/"):
            assert api_client.get(path).status_code == 200
    selected = [query["sql"].split(" FROM ")[0] for query in queries.captured_queries]
    assert any('"posts"."title"' in columns for columns in selected)
    assert not any("search_document" in columns for columns in selected)
