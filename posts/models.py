from typing import ClassVar

from django.conf import settings
from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.search import SearchVector
from django.db import models
from django.utils import timezone

# The full-text document of a post. The GIN index is built on this exact expression, and the
# search selector must use the same one for PostgreSQL to pick the index.
SEARCH_CONFIG = "english"
SEARCH_VECTOR = SearchVector("title", "body", config=SEARCH_CONFIG)


class Post(models.Model):
    # No single-column index: posts_author_created_idx starts with author_id and serves it.
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="posts", db_index=False)
    title = models.CharField(max_length=200)
    body = models.TextField()
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "posts"
        indexes: ClassVar = [
            # One author's posts, newest first: the cursor order (-created_at, -id) within an author.
            models.Index(
                "author", models.F("created_at").desc(), models.F("id").desc(), name="posts_author_created_idx"
            ),
            # The global feed, newest first.
            models.Index(models.F("created_at").desc(), models.F("id").desc(), name="posts_created_idx"),
            GinIndex(SEARCH_VECTOR, name="posts_search_gin"),
        ]

    def __str__(self) -> str:
        return self.title
