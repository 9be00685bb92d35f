from typing import ClassVar

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.search import SearchVectorField
from django.db import models
from django.utils import timezone

# The text search configuration of search_document (set by the trigger of migration 0004) and
# of every query against it: a query parsed with another configuration stems words differently.
SEARCH_CONFIG = "english"


class PostManager(models.Manager["Post"]):
    """Leaves search_document out of ordinary reads: only the database filters and ranks on it,
    and a feed page would otherwise fetch and parse a tsvector per row for nothing."""

    def get_queryset(self) -> models.QuerySet["Post"]:
        return super().get_queryset().defer("search_document")


class Post(models.Model):
    # No single-column index: posts_author_created_idx starts with author_id and serves it.
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="posts", db_index=False)
    title = models.CharField(max_length=200)
    body = models.TextField()
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)
    # to_tsvector(title || ' ' || body), written by a trigger on every insert and on every update
    # of title or body, whoever writes (ORM, the seeder's COPY, raw SQL): search and ts_rank read
    # it instead of parsing the text of each match again. NULL only before migration 0005's backfill.
    search_document = SearchVectorField(null=True, editable=False)

    objects = PostManager()

    class Meta:
        db_table = "posts"
        indexes: ClassVar = [
            # One author's posts, newest first: the cursor order (-created_at, -id) within an author.
            models.Index(
                "author", models.F("created_at").desc(), models.F("id").desc(), name="posts_author_created_idx"
            ),
            # The global feed, newest first.
            models.Index(models.F("created_at").desc(), models.F("id").desc(), name="posts_created_idx"),
            GinIndex(fields=["search_document"], name="posts_search_document_gin"),
            # Each post's words keyed by its week ('2817:databas'): searches of several common
            # words read only the weeks they need (posts.search, migration 0006's functions).
            GinIndex(
                models.Func(
                    models.F("created_at"),
                    models.F("search_document"),
                    function="posts_search_keys",
                    output_field=ArrayField(models.TextField()),
                ),
                name="posts_search_weeks_gin",
                # No pending list: a WEEKS plan probes once per week, and each probe would
                # scan all of it (migration 0006).
                fastupdate=False,
            ),
        ]

    def __str__(self) -> str:
        return self.title
