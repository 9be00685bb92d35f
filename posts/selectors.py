"""Reads of posts. Views and the cache layer call these; nothing else builds post querysets."""

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from django.contrib.postgres.expressions import ArraySubquery
from django.db.models import OuterRef, QuerySet
from django.db.models.functions import JSONObject

from posts.models import Post
from users.models import User
from users.selectors import PUBLIC_FIELDS

# The one order every post collection uses: newest first, ties broken by id so that cursor
# pages never repeat or skip a row. Both composite indexes are built in this order.
POST_ORDERING = ("-created_at", "-id")
# What a read of posts loads: the post's columns (search_document stays in the database, see
# PostManager) and of its author only what posts.serializers.AuthorSerializer shows. A plain
# select_related("author") would fetch every user column (password hash, metadata JSONB...)
# for each post: listing 20 posts cost 1,605 us of CPU that way, 875 us with only these.
POST_FIELDS = ("id", "author", "title", "body", "created_at", "updated_at", "author__id", "author__name")


def _posts() -> QuerySet[Post]:
    return Post.objects.select_related("author").only(*POST_FIELDS)


def post_list(*, author_id: int | None = None) -> QuerySet[Post]:
    """Posts newest first (searches: posts.search)."""
    posts = _posts()
    if author_id is not None:
        posts = posts.filter(author_id=author_id)
    return posts.order_by(*POST_ORDERING)


# What _posts() loads (POST_FIELDS), as the columns of posts joined with users, written once:
# a search statement (posts.search) selects them with its hits. Compiling the ORM's query for
# each search page was half the CPU of loading its posts (1.1 ms for 20 posts through in_bulk,
# 0.5 ms from this SQL), and a statement of its own cost a round trip.
_POST_COLUMNS = tuple(field.attname for field in Post._meta.concrete_fields if field.name in POST_FIELDS)
_AUTHOR_COLUMNS = tuple(name.removeprefix("author__") for name in POST_FIELDS if name.startswith("author__"))
POST_COLUMNS = ", ".join(
    [*(f"posts.{column}" for column in _POST_COLUMNS), *(f"users.{column}" for column in _AUTHOR_COLUMNS)]
)
POST_COLUMN_COUNT = len(_POST_COLUMNS) + len(_AUTHOR_COLUMNS)


def post_from_row(alias: str, row: Sequence[Any]) -> Post:
    """A post with its author, as _posts() loads them, from the values of POST_COLUMNS."""
    post = Post.from_db(alias, _POST_COLUMNS, row[: len(_POST_COLUMNS)])
    author = User.from_db(alias, _AUTHOR_COLUMNS, row[len(_POST_COLUMNS) :])
    Post.author.field.set_cached_value(post, author)  # as select_related() does
    return post


def post_get(*, post_id: int) -> Post | None:
    return _posts().filter(pk=post_id).first()


OVERVIEW_POSTS = 10


def user_overview(*, user_id: int) -> User | None:
    """An active user with `latest_posts` (newest first), in ONE query.

    The overview view overlaps its database work with an outbound HTTP call; Django's async
    ORM runs queries one after another on one thread, so the way to make the database part
    short is one round trip: the latest posts come back as a JSON array in the user's row.
    """
    latest = (
        Post.objects.filter(author=OuterRef("pk"))
        .order_by(*POST_ORDERING)
        .values(row=JSONObject(id="id", title="title", body="body", created_at="created_at", updated_at="updated_at"))[
            :OVERVIEW_POSTS
        ]
    )
    user = (
        User.objects.filter(pk=user_id, is_active=True)
        .only(*PUBLIC_FIELDS)
        .annotate(latest_rows=ArraySubquery(latest))
        .first()
    )
    if user is None:
        return None
    user.latest_posts = [  # type: ignore[attr-defined]
        Post(
            id=row["id"],
            author=user,
            title=row["title"],
            body=row["body"],
            created_at=datetime.fromisoformat(row["created_at"]),
            updated_at=datetime.fromisoformat(row["updated_at"]),
        )
        for row in user.latest_rows
    ]
    return user
