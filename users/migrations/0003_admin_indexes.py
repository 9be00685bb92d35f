"""Indexes for the admin (email prefix search, the staff and inactive list filters), built
CONCURRENTLY (no write lock on a table of millions of users) and safe to re-run after a failure."""

import django.contrib.postgres.indexes
import django.db.models.functions.text
from django.db import migrations, models

from project.db.migration_operations import AddIndexConcurrentlyIdempotent


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("users", "0002_indexes"),
    ]

    operations = [
        AddIndexConcurrentlyIdempotent(
            model_name="user",
            index=models.Index(
                django.contrib.postgres.indexes.OpClass(
                    django.db.models.functions.text.Lower("email"), name="text_pattern_ops"
                ),
                name="users_email_like_idx",
            ),
        ),
        AddIndexConcurrentlyIdempotent(
            model_name="user",
            index=models.Index(condition=models.Q(("is_staff", True)), fields=["id"], name="users_staff_id_idx"),
        ),
        AddIndexConcurrentlyIdempotent(
            model_name="user",
            index=models.Index(condition=models.Q(("is_active", False)), fields=["id"], name="users_inactive_id_idx"),
        ),
    ]
