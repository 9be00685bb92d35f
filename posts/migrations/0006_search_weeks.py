"""posts_search_weeks_gin: the words of each post keyed by its week, for searches of several
common words (posts/search.py, the WEEKS plan).

The GIN index on search_document answers "which posts hold 'database' and 'ocean'" by reading
both words' posting lists whole: 13-15 ms on 10M posts for two words in 1.5 % of posts each,
whatever page is asked for. Keyed by week ('2817:databas'), a search reads only the weeks it
needs, newest first: a page of such a search reads one or two weeks' lists.

The keys come from an IMMUTABLE function of two columns that never change together with the
week (created_at is set once; search_document follows title and body), so the index is an
expression index: no column, no backfill. Without GIN's pending list (fastupdate off): a WEEKS
plan probes the index once per week, and every probe would scan the whole pending list of
recent inserts (a bench run's new posts made two-word searches 1.3 s). Built CONCURRENTLY (1 min 51 s on 10M posts,
docs/performance.md); a rerun after a failure replaces the functions and rebuilds an INVALID index.
"""

import django.contrib.postgres.fields
import django.contrib.postgres.indexes
import django.db.models.expressions
from django.db import migrations, models

from project.db.migration_operations import AddIndexConcurrentlyIdempotent

FUNCTIONS = """
CREATE OR REPLACE FUNCTION posts_search_week(created timestamptz) RETURNS bigint
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$ SELECT floor(extract(epoch FROM created) / 604800)::bigint $$;

CREATE OR REPLACE FUNCTION posts_search_week_keys(week bigint, words text[]) RETURNS text[]
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$ SELECT ARRAY(SELECT week::text || ':' || word FROM unnest(words) AS word) $$;

CREATE OR REPLACE FUNCTION posts_search_keys(created timestamptz, document tsvector) RETURNS text[]
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
AS $$
DECLARE
    prefix text := posts_search_week(created)::text || ':';
    keys text[] := '{}';
    word text;
BEGIN
    FOREACH word IN ARRAY tsvector_to_array(document) LOOP
        keys := keys || (prefix || word);
    END LOOP;
    RETURN keys;
END
$$;
"""
DROP_FUNCTIONS = """
DROP FUNCTION posts_search_keys(timestamptz, tsvector);
DROP FUNCTION posts_search_week_keys(bigint, text[]);
DROP FUNCTION posts_search_week(timestamptz);
"""


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("posts", "0005_search_document_backfill"),
    ]

    operations = [
        migrations.RunSQL(FUNCTIONS, reverse_sql=DROP_FUNCTIONS),
        AddIndexConcurrentlyIdempotent(
            model_name="post",
            index=django.contrib.postgres.indexes.GinIndex(
                django.db.models.expressions.Func(
                    models.F("created_at"),
                    models.F("search_document"),
                    function="posts_search_keys",
                    output_field=django.contrib.postgres.fields.ArrayField(base_field=models.TextField()),
                ),
                name="posts_search_weeks_gin",
                fastupdate=False,
            ),
        ),
    ]
