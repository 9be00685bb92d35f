"""Reads of users. Views and the cache layer call these; nothing else builds user querysets."""

from django.db.models import Count, IntegerField, OuterRef, QuerySet, Subquery
from django.db.models.functions import Coalesce

from posts.models import Post
from users.models import User


def _post_count() -> Coalesce:
    """A correlated COUNT per user row, answered from posts_author_created_idx.

    A subquery rather than JOIN + GROUP BY: it runs only for the rows of the page, where a
    grouped join would aggregate every user before the LIMIT.
    """
    count = Post.objects.filter(author=OuterRef("pk")).order_by().values("author").annotate(n=Count("*")).values("n")
    return Coalesce(Subquery(count, output_field=IntegerField()), 0)


def user_list(*, metadata: dict[str, str] | None = None) -> QuerySet[User]:
    """Active users, newest (highest id) first; the partial index users_active_id_idx serves it."""
    users = User.objects.filter(is_active=True)
    if metadata:
        users = users.filter(metadata__contains=metadata)
    return users.annotate(post_count=_post_count()).order_by("-id")


def user_get(*, user_id: int, include_inactive: bool = False) -> User | None:
    users = User.objects.annotate(post_count=_post_count())
    if not include_inactive:
        users = users.filter(is_active=True)
    return users.filter(pk=user_id).first()
