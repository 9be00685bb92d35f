"""Reads of users. Views and the cache layer call these; nothing else builds user querysets."""

from datetime import datetime

from django.contrib.postgres.expressions import ArraySubquery
from django.db.models import OuterRef, QuerySet
from django.db.models.functions import JSONObject

from posts.models import Post
from posts.selectors import POST_ORDERING
from users.models import User

# The columns of a user anyone may see (users.serializers.UserPublicSerializer): public reads
# load these only, not the password hash, email, last_login and flags nobody shows.
PUBLIC_FIELDS = ("id", "name", "metadata", "created_at", "post_count")


def user_list(*, metadata: dict[str, str] | None = None) -> QuerySet[User]:
    """Active users, newest (highest id) first; the partial index users_active_id_idx serves it."""
    users = User.objects.filter(is_active=True).only(*PUBLIC_FIELDS)
    if metadata:
        users = users.filter(metadata__contains=metadata)
    return users.order_by("-id")


def user_get(*, user_id: int, include_inactive: bool = False) -> User | None:
    """The whole user: for the private profile and for services (passwords, flags, email)."""
    users = User.objects.all()
    if not include_inactive:
        users = users.filter(is_active=True)
    return users.filter(pk=user_id).first()


def user_public_get(*, user_id: int) -> User | None:
    """An active user's public profile: only the columns anyone may see."""
    return User.objects.filter(pk=user_id, is_active=True).only(*PUBLIC_FIELDS).first()


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
