"""API tokens as digests (users.AuthToken, django-rest-knox's model), replacing DRF's authtoken.

Tokens issued before the upgrade keep working: each DRF token (plain text in authtoken_token)
becomes a row holding its SHA-512 digest, as knox hashes a presented token, expiring
AUTH_TOKEN_IDLE_DAYS after the upgrade unless used (then sliding like any token). The plain
text table is dropped, so no dump taken afterwards holds a usable token.
"""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

CARRY_OVER = """
INSERT INTO auth_tokens (digest, token_key, user_id, created, expiry, user_agent)
SELECT encode(sha512(convert_to(t.key, 'UTF8')), 'hex'), left(t.key, 15), t.user_id, t.created,
    now() + make_interval(days => %s), 'signed in before tokens expired'
FROM authtoken_token AS t
JOIN users AS u ON u.id = t.user_id AND u.is_active
"""


def carry_over_drf_tokens(apps, schema_editor) -> None:
    with schema_editor.connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass('authtoken_token') IS NOT NULL")
        if not cursor.fetchone()[0]:
            return
        cursor.execute(CARRY_OVER, [settings.AUTH_TOKEN_IDLE_DAYS])
        cursor.execute("DROP TABLE authtoken_token")


class Migration(migrations.Migration):
    dependencies = [
        ("users", "0004_user_post_count"),
    ]

    operations = [
        migrations.CreateModel(
            name="AuthToken",
            fields=[
                ("id", models.BigAutoField(primary_key=True, serialize=False)),
                ("digest", models.CharField(max_length=128, unique=True)),
                ("token_key", models.CharField(db_index=True, max_length=25)),
                (
                    "user",
                    models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="auth_token_set",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                ("created", models.DateTimeField(auto_now_add=True)),
                ("expiry", models.DateTimeField(blank=True, null=True)),
                ("last_used", models.DateTimeField(blank=True, null=True)),
                ("user_agent", models.CharField(blank=True, max_length=200)),
            ],
            options={
                "db_table": "auth_tokens",
                "indexes": [models.Index(fields=["user", "-created"], name="auth_tokens_user_created_idx")],
            },
        ),
        migrations.RunPython(carry_over_drf_tokens, migrations.RunPython.noop),
    ]
