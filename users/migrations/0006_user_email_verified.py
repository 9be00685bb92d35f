"""users.email_verified, and the admin's filter on it: a column with a database default (instant
in PostgreSQL 11+, and COPY in `manage.py seed` may leave it out), and one partial index per
value, built CONCURRENTLY (no write lock on a table of millions of users), safe to re-run."""

from django.db import migrations, models

from project.db.migration_operations import AddIndexConcurrentlyIdempotent


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("users", "0005_auth_tokens"),
    ]

    operations = [
        migrations.AddField(
            model_name="user",
            name="email_verified",
            field=models.BooleanField(db_default=False, default=False),
        ),
        AddIndexConcurrentlyIdempotent(
            model_name="user",
            index=models.Index(condition=models.Q(("email_verified", True)), fields=["id"], name="users_verified_id_idx"),
        ),
        AddIndexConcurrentlyIdempotent(
            model_name="user",
            index=models.Index(
                condition=models.Q(("email_verified", False)), fields=["id"], name="users_unverified_id_idx"
            ),
        ),
    ]
