"""posts_search_week_keys() built a week's keys for posts/search.py's WEEKS plan. As a SQL
function with a sub-SELECT it is not inlined: PostgreSQL ran it through the SQL-function
executor once per week a search read. With the keys written into the query, the window of
"database ocean" (26 weeks, 10M posts) takes 3.2-4.5 ms instead of 3.5-5.0 ms (interleaved, 40
runs each, docs/performance.md). Nothing else called it.
"""

from django.db import migrations

WEEK_KEYS = """
CREATE OR REPLACE FUNCTION posts_search_week_keys(week bigint, words text[]) RETURNS text[]
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$ SELECT ARRAY(SELECT week::text || ':' || word FROM unnest(words) AS word) $$;
"""


class Migration(migrations.Migration):
    dependencies = [
        ("posts", "0006_search_weeks"),
    ]

    operations = [
        migrations.RunSQL("DROP FUNCTION posts_search_week_keys(bigint, text[]);", reverse_sql=WEEK_KEYS),
    ]
