"""Indexes for big tables, built CONCURRENTLY (no write lock) and safe to re-run after a failure."""

import django.contrib.postgres.indexes
import django.contrib.postgres.search
from django.db import migrations, models

from project.db.migration_operations import AddIndexConcurrentlyIdempotent


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("posts", "0002_initial"),
    ]

    operations = [
        AddIndexConcurrentlyIdempotent(
            model_name="post",
            index=models.Index(
                models.F("author"),
                models.OrderBy(models.F("created_at"), descending=True),
                models.OrderBy(models.F("id"), descending=True),
                name="posts_author_created_idx",
            ),
        ),
        AddIndexConcurrentlyIdempotent(
            model_name="post",
            index=models.Index(
                models.OrderBy(models.F("created_at"), descending=True),
                models.OrderBy(models.F("id"), descending=True),
                name="posts_created_idx",
            ),
        ),
        AddIndexConcurrentlyIdempotent(
            model_name="post",
            index=django.contrib.postgres.indexes.GinIndex(
                django.contrib.postgres.search.SearchVector("title", "body", config="english"),
                name="posts_search_gin",
            ),
        ),
    ]
