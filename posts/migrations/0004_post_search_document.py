"""posts.search_document, the stored full-text document, kept current by a trigger.

Adding a nullable column without a default only changes the catalog, so this migration is
instant on a big table; migration 0005 fills the existing rows and indexes the column.

A trigger, not the ORM, writes the document, so that every writer keeps it right: the API's
services, the seeder's COPY, raw SQL. It fires on INSERT and on an UPDATE that sets title or
body, and always recomputes from them (a value written by the client is overwritten). A
generated column would do the same, but adding one rewrites the whole table under an
exclusive lock.
"""

from django.db import migrations
import django.contrib.postgres.search

# The document of migration 0003's posts_search_gin expression, as the backfill of 0005 computes it.
TRIGGER = """
CREATE FUNCTION posts_search_document() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.search_document := to_tsvector('english'::regconfig, COALESCE(NEW.title, '') || ' ' || COALESCE(NEW.body, ''));
    RETURN NEW;
END
$$;
CREATE TRIGGER posts_search_document BEFORE INSERT OR UPDATE OF title, body ON posts
FOR EACH ROW EXECUTE FUNCTION posts_search_document();
"""
DROP_TRIGGER = """
DROP TRIGGER posts_search_document ON posts;
DROP FUNCTION posts_search_document();
"""


class Migration(migrations.Migration):
    dependencies = [
        ("posts", "0003_indexes"),
    ]

    operations = [
        migrations.AddField(
            model_name="post",
            name="search_document",
            field=django.contrib.postgres.search.SearchVectorField(editable=False, null=True),
        ),
        migrations.RunSQL(TRIGGER, reverse_sql=DROP_TRIGGER),
    ]
