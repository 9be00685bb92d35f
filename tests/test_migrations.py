"""Concurrent index migrations survive a retry after a failed run."""

import pytest
from django.core.management import call_command
from django.db import connection
from django.db.migrations.recorder import MigrationRecorder

POST_INDEXES = ("posts_author_created_idx", "posts_created_idx", "posts_search_gin")


def index_validity() -> dict[str, bool]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname, i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
            "WHERE c.relname = ANY(%s)",
            [list(POST_INDEXES)],
        )
        return dict(cursor.fetchall())


@pytest.mark.django_db(transaction=True)
def test_rerun_after_a_failure_skips_valid_indexes_and_rebuilds_an_invalid_one() -> None:
    # What a run interrupted while building the last index leaves: the migration unrecorded,
    # the first indexes built, the last one INVALID.
    MigrationRecorder.Migration.objects.filter(app="posts", name="0003_indexes").delete()
    with connection.cursor() as cursor:
        cursor.execute("UPDATE pg_index SET indisvalid = false WHERE indexrelid = 'posts_search_gin'::regclass")
    assert index_validity()["posts_search_gin"] is False

    call_command("migrate", "posts", verbosity=0)

    assert index_validity() == dict.fromkeys(POST_INDEXES, True)
    assert MigrationRecorder.Migration.objects.filter(app="posts", name="0003_indexes").exists()


@pytest.mark.django_db
def test_models_and_migrations_do_not_drift() -> None:
    call_command("makemigrations", "--check", "--dry-run", verbosity=0)
