"""Index operations for big tables that survive a retry.

`AddIndexConcurrently` cannot run in a transaction, so a failed run leaves a half-applied
migration behind: indexes built before the failure exist (and the next run's CREATE fails on
them), and the one being built is left INVALID (present, unused by the planner, and also
blocking CREATE). This operation skips a valid index and rebuilds an invalid one.
"""

from typing import Any

from django.contrib.postgres.operations import AddIndexConcurrently
from django.db.backends.base.schema import BaseDatabaseSchemaEditor
from django.db.migrations.state import ProjectState

INDEX_STATE_SQL = """
SELECT i.indisvalid
FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
WHERE c.relname = %s AND c.relnamespace = to_regnamespace(current_schema())
"""


class AddIndexConcurrentlyIdempotent(AddIndexConcurrently):
    def database_forwards(
        self, app_label: str, schema_editor: BaseDatabaseSchemaEditor, from_state: ProjectState, to_state: ProjectState
    ) -> Any:
        quote = schema_editor.quote_name
        with schema_editor.connection.cursor() as cursor:
            cursor.execute(INDEX_STATE_SQL, [self.index.name])
            row = cursor.fetchone()
            if row is not None and row[0]:
                return None
            if row is not None:
                cursor.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {quote(self.index.name)}")
        return super().database_forwards(app_label, schema_editor, from_state, to_state)
