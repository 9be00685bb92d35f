"""Indexes for big tables, built CONCURRENTLY (no write lock) and safe to re-run after a failure."""

import django.contrib.postgres.indexes
from django.db import migrations, models

from project.db.migration_operations import AddIndexConcurrentlyIdempotent


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("users", "0001_initial"),
    ]

    operations = [
        AddIndexConcurrentlyIdempotent(
            model_name="user",
            index=models.Index(condition=models.Q(("is_active", True)), fields=["id"], name="users_active_id_idx"),
        ),
        AddIndexConcurrentlyIdempotent(
            model_name="user",
            index=django.contrib.postgres.indexes.GinIndex(
                fields=["metadata"], name="users_metadata_gin", opclasses=["jsonb_path_ops"]
            ),
        ),
    ]
