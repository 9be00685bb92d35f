import signal
import sys
from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from posts.seeding import DEFAULT_BATCH_ROWS, SEED_PASSWORD, SeedError, dataset_seed
from project.observability.metrics import time_command
from project.server.capacity import cpu_count


class Command(BaseCommand):
    help = (
        "Append realistic users and posts through PostgreSQL COPY "
        f"(every seeded user's password is {SEED_PASSWORD!r}; see docs/seed.md)."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--users", type=int, default=1_000, help="users to add (default 1000)")
        parser.add_argument("--posts", type=int, default=10_000, help="posts to add (default 10000)")
        parser.add_argument("--seed", type=int, default=0, help="random seed: same seed, same rows (default 0)")
        parser.add_argument(
            "--batch-size",
            type=int,
            default=DEFAULT_BATCH_ROWS,
            help=f"rows generated and sent per COPY write, per worker (default {DEFAULT_BATCH_ROWS})",
        )
        parser.add_argument(
            "--workers",
            type=int,
            default=cpu_count(),
            help="parallel connections for COPY and index builds (default: one per CPU)",
        )
        parser.add_argument("--if-empty", action="store_true", help="do nothing when the users table has rows")

    @time_command("seed")
    def handle(self, *args: Any, **options: Any) -> None:
        # SIGTERM (docker stop, timeout) exits through the service's `finally`, which re-creates
        # the indexes and foreign key it dropped.
        previous = signal.signal(signal.SIGTERM, _exit)
        try:
            report = dataset_seed(
                users=options["users"],
                posts=options["posts"],
                seed=options["seed"],
                batch_size=options["batch_size"],
                workers=options["workers"],
                if_empty=options["if_empty"],
                progress=sys.stderr if options["verbosity"] > 0 else None,
            )
        except SeedError as error:
            raise CommandError(str(error)) from error
        finally:
            signal.signal(signal.SIGTERM, previous)
        if report is None:
            self.stdout.write("users already has rows: nothing seeded (--if-empty)")
            return
        self.stdout.write(
            f"seeded {report.users:,} users and {report.posts:,} posts in {report.seconds:.1f}s: "
            f"{report.rows_per_second:,.0f} rows/s, peak RSS {report.peak_rss_mib:.0f} MiB"
        )
        if options["verbosity"] > 0:
            for phase, seconds in report.phases.items():
                self.stdout.write(f"  {phase:<45} {seconds:8.1f}s")


def _exit(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)
