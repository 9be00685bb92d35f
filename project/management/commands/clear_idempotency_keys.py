"""`manage.py clear_idempotency_keys`: delete Idempotency-Key records past their time to live.

A key past IDEMPOTENCY_KEY_TTL_HOURS is already treated as unused (project/http/idempotency.py);
this command takes its row away. Safe to run at any time, e.g. hourly.
"""

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser
from django.utils import timezone

from project.db.maintenance import delete_in_batches
from project.models import IdempotencyKey
from project.observability.metrics import time_command


class Command(BaseCommand):
    help = "Delete Idempotency-Key records older than IDEMPOTENCY_KEY_TTL_HOURS (in batches)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--batch", type=int, default=10_000, help="records deleted per statement")

    @time_command("clear_idempotency_keys")
    def handle(self, *args: Any, **options: Any) -> None:
        expired = timezone.now() - timedelta(hours=settings.IDEMPOTENCY_KEY_TTL_HOURS)
        deleted = delete_in_batches(IdempotencyKey.objects.filter(created_at__lt=expired), batch=options["batch"])
        self.stdout.write(f"clear_idempotency_keys: {deleted} expired keys deleted")
