"""Writes to posts and their side effects. Views and the admin call these, nothing else saves posts."""

from typing import Any

from posts.models import Post
from users.models import User

EDITABLE_FIELDS = ("title", "body")


def post_create(*, author: User, title: str, body: str) -> Post:
    return Post.objects.create(author=author, title=title, body=body)


def post_update(*, post: Post, data: dict[str, Any]) -> Post:
    changed = [field for field in EDITABLE_FIELDS if field in data]
    for field in changed:
        setattr(post, field, data[field])
    if changed:
        post.save(update_fields=[*changed, "updated_at"])
    return post


def post_delete(*, post: Post) -> None:
    post.delete()
