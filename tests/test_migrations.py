"""Migrations on big tables survive a retry after a failed run."""

import pytest
from django.core.management import call_command
from django.db import connection
from django.db.migrations.recorder import MigrationRecorder

from tests.conftest import EXPECTED_DOCUMENT, documents_are_right
from tests.factories import PostFactory

POST_INDEXES = ("posts_author_created_idx", "posts_created_idx", "posts_search_document_gin", "posts_search_weeks_gin")


def index_validity() -> dict[str, bool]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname, i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
            "WHERE c.relname = ANY(%s)",
            [[*POST_INDEXES, "posts_search_gin"]],
        )
        return dict(cursor.fetchall())


@pytest.mark.django_db(transaction=True)
def test_rerun_of_the_search_document_migration_finishes_what_a_failure_left() -> None:
    # What a run of 0005 interrupted while building its index leaves: the migration (and the
    # ones after it) unrecorded, rows the backfill had not reached yet still NULL, the new index
    # INVALID, the old one there. The rerun applies 0006 again over what exists of it.
    PostFactory.create_batch(3)
    MigrationRecorder.Migration.objects.filter(app="posts", name__gte="0005").delete()
    with connection.cursor() as cursor:
        # No title or body in the SET list: the trigger leaves the NULL alone.
        cursor.execute("UPDATE posts SET search_document = NULL WHERE id IN (SELECT id FROM posts LIMIT 2)")
        cursor.execute(
            "UPDATE pg_index SET indisvalid = false WHERE indexrelid = 'posts_search_document_gin'::regclass"
        )
        cursor.execute(f"CREATE INDEX posts_search_gin ON posts USING gin ({EXPECTED_DOCUMENT})")
    assert not documents_are_right()

    call_command("migrate", "posts", verbosity=0)

    assert documents_are_right()
    assert index_validity() == dict.fromkeys(POST_INDEXES, True)
    assert MigrationRecorder.Migration.objects.filter(app="posts", name="0005_search_document_backfill").exists()
    assert MigrationRecorder.Migration.objects.filter(app="posts", name="0006_search_weeks").exists()


@pytest.mark.django_db
def test_models_and_migrations_do_not_drift() -> None:
    call_command("makemigrations", "--check", "--dry-run", verbosity=0)
