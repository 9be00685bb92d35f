"""The public user list ordered by (created_at, id), newest first: a partial index on active
users in that order, built CONCURRENTLY (no write lock on a table of millions), safe to re-run."""

from django.db import migrations, models

from project.db.migration_operations import AddIndexConcurrentlyIdempotent


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("users", "0006_user_email_verified"),
    ]

    operations = [
        AddIndexConcurrentlyIdempotent(
            model_name="user",
            index=models.Index(
                condition=models.Q(("is_active", True)),
                fields=["-created_at", "-id"],
                name="users_active_created_idx",
            ),
        ),
    ]
