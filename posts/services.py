"""Writes to posts and their side effects. Views and the admin call these, nothing else saves posts."""

from typing import Any

from django.db import transaction
from django.db.models import F

from posts.models import Post
from project.cache import store
from users.models import User

EDITABLE_FIELDS = ("title", "body")


def _invalidate_after_commit(post: Post) -> None:
    """The post, its author's profile (post_count) and first page, the users list (post_count)
    and the global feed."""
    scopes = (
        store.post_scope(post.pk),
        store.user_scope(post.author_id),
        store.USERS_SCOPE,
        store.FEED_SCOPE,
    )
    transaction.on_commit(lambda: store.invalidate(*scopes))


def _count_posts(author_id: int, delta: int) -> None:
    """Adjust users.post_count in the writing transaction (a row lock serialises concurrent writers)."""
    User.objects.filter(pk=author_id).update(post_count=F("post_count") + delta)


@transaction.atomic
def post_create(*, author: User, title: str, body: str) -> Post:
    post = Post.objects.create(author=author, title=title, body=body)
    _count_posts(author.pk, +1)
    _invalidate_after_commit(post)
    return post


def post_update(*, post: Post, data: dict[str, Any]) -> Post:
    changed = [field for field in EDITABLE_FIELDS if field in data]
    for field in changed:
        setattr(post, field, data[field])
    if changed:
        post.save(update_fields=[*changed, "updated_at"])
        _invalidate_after_commit(post)
    return post


@transaction.atomic
def post_delete(*, post: Post) -> None:
    _invalidate_after_commit(post)
    post.delete()
    _count_posts(post.author_id, -1)
