"""The one pre-start step: the same in `make run`, the container and the Kubernetes Job."""

from typing import Any

from django.core.management import call_command
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Prepare the database before the server starts: apply migrations (idempotent, safe to re-run)."

    def handle(self, *args: Any, **options: Any) -> None:
        call_command("migrate", interactive=False, verbosity=options["verbosity"])
