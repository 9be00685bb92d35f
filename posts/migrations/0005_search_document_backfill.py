"""Fill posts.search_document for existing rows, index it, drop the expression index.

Safe on a big, live table and safe to re-run after a failure (atomic = False):
- the backfill updates one id range at a time, each committed on its own, so row locks last
  a batch and a failure keeps the work done; it only touches rows still NULL, and rows
  written meanwhile already have their document from 0004's trigger;
- the GIN index is built CONCURRENTLY (an INVALID one left by a failure is rebuilt), then
  posts_search_gin is dropped CONCURRENTLY (IF EXISTS).
On 10M posts the backfill takes minutes (docs/performance.md): it prints its progress. It
rewrites every row, so the table and its btree indexes keep the space of the old versions
(reused by later writes once vacuumed).
"""

import sys
import time

import django.contrib.postgres.indexes
from django.contrib.postgres.operations import RemoveIndexConcurrently
from django.db import migrations

from project.db.migration_operations import AddIndexConcurrentlyIdempotent

BATCH_IDS = 10_000
PROGRESS_SECONDS = 10

# The trigger's expression (0004). Setting only search_document does not fire the trigger
# (UPDATE OF title, body), so each document is computed once.
BACKFILL = """
UPDATE posts SET search_document = to_tsvector('english'::regconfig, COALESCE(title, '') || ' ' || COALESCE(body, ''))
WHERE id >= %s AND id < %s AND search_document IS NULL
"""


def backfill(apps, schema_editor):
    with schema_editor.connection.cursor() as cursor:
        cursor.execute("SELECT min(id), max(id) FROM posts WHERE search_document IS NULL")
        first, last = cursor.fetchone()
        if first is None:
            return
        started = shown = time.monotonic()
        filled = 0
        for start in range(first, last + 1, BATCH_IDS):
            cursor.execute(BACKFILL, [start, start + BATCH_IDS])
            filled += cursor.rowcount
            now = time.monotonic()
            if now - shown >= PROGRESS_SECONDS:
                shown = now
                done = (start + BATCH_IDS - first) / (last + 1 - first)
                sys.stdout.write(
                    f"\n  search_document: {filled:,} rows, ids {done:.0%} done, "
                    f"{filled / (now - started):,.0f} rows/s, {(now - started) * (1 / done - 1):.0f} s left"
                )
                sys.stdout.flush()
        # Statistics for the new column now, not whenever autovacuum gets to it: the planner's
        # match estimates and posts.search's plan choice read them.
        cursor.execute("ANALYZE posts (search_document)")
        if shown != started:
            sys.stdout.write(f"\n  search_document: {filled:,} rows in {time.monotonic() - started:.0f} s\n")


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("posts", "0004_post_search_document"),
    ]

    operations = [
        migrations.RunPython(backfill, migrations.RunPython.noop, elidable=True),
        AddIndexConcurrentlyIdempotent(
            model_name="post",
            index=django.contrib.postgres.indexes.GinIndex(fields=["search_document"], name="posts_search_document_gin"),
        ),
        RemoveIndexConcurrently(model_name="post", name="posts_search_gin"),
    ]
