"""`manage.py clear_expired_tokens`: delete API tokens past their expiry, in batches.

A user's expired tokens are deleted at their next sign-in (users.tokens.token_issue); this
command removes those of users who never sign in again. Safe to run at any time, e.g. daily.
"""

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from project.observability.metrics import time_command
from users.tokens import tokens_delete_expired


class Command(BaseCommand):
    help = "Delete API tokens past their expiry (in batches; safe to run at any time)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--batch", type=int, default=10_000, help="tokens deleted per statement")

    @time_command("clear_expired_tokens")
    def handle(self, *args: Any, **options: Any) -> None:
        deleted = tokens_delete_expired(batch=options["batch"])
        self.stdout.write(f"clear_expired_tokens: {deleted} expired tokens deleted")
