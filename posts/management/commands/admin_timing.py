"""`manage.py admin_timing`: how long each admin page takes on the configured database.

Requests go through Django's test client (the full middleware stack, template rendering, the
real database; no network and no gunicorn), logged in as a staff user. Everything the command
writes (a temporary staff user, its session) is rolled back at the end: it can run against a
copy of production data and leave no trace. Results in docs/admin.md.
"""

import statistics
import time
from argparse import ArgumentParser
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from django.core.management.base import BaseCommand, CommandError
from django.db import connection, transaction
from django.test import Client

from posts.models import Post
from users.models import User

TIMING_EMAIL = "admin-timing@postline.invalid"


@dataclass
class Timing:
    name: str
    path: str
    queries: int
    seconds: list[float]

    def quantile(self, q: float) -> float:
        ordered = sorted(self.seconds)
        return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def pages() -> list[tuple[str, str]]:
    """The admin pages worth timing, built from the data: the newest user, the busiest author..."""
    newest = User.objects.order_by("-id").only("id", "email").first()
    post = Post.objects.order_by("-created_at", "-id").only("id", "title").first()
    if newest is None or post is None:
        raise CommandError("The database has no users or no posts: seed it first (manage.py seed).")
    # users.post_count has no index: one sequential read of the users table, before timing.
    busiest = User.objects.order_by("-post_count").only("id", "post_count").first() or newest
    prefix = newest.email[: max(3, newest.email.index("@") // 2)]
    words = sorted((w for w in post.title.split() if w.isalpha()), key=len, reverse=True) or post.title.split()
    pair = " ".join(words[:2])
    return [
        ("index", "/admin/"),
        ("users: changelist", "/admin/users/user/"),
        ("users: page 100 (deepest link)", "/admin/users/user/?p=100"),
        ("users: inactive", "/admin/users/user/?is_active__exact=0"),
        ("users: staff", "/admin/users/user/?is_staff__exact=1"),
        (f"users: search email prefix {prefix!r}", f"/admin/users/user/?{urlencode({'q': prefix})}"),
        ("users: search a full email", f"/admin/users/user/?{urlencode({'q': newest.email})}"),
        ("users: search an id", f"/admin/users/user/?q={newest.pk}"),
        (f"users: change page ({busiest.post_count:,} posts)", f"/admin/users/user/{busiest.pk}/change/"),
        ("posts: changelist", "/admin/posts/post/"),
        ("posts: page 100 (deepest link)", "/admin/posts/post/?p=100"),
        ("posts: busiest author's posts", f"/admin/posts/post/?author__id__exact={busiest.pk}"),
        ("posts: created in the last 7 days", "/admin/posts/post/?created_within=7d"),
        (f"posts: full-text search {words[0]!r}", f"/admin/posts/post/?{urlencode({'q': words[0]})}"),
        (f"posts: full-text search {pair!r}", f"/admin/posts/post/?{urlencode({'q': pair})}"),
        ("posts: full-text search 'zyzzyva' (no match)", "/admin/posts/post/?q=zyzzyva"),
        (f"posts: full-text search '-{words[0]}' (all but)", f"/admin/posts/post/?{urlencode({'q': '-' + words[0]})}"),
        ("posts: search an id", f"/admin/posts/post/?q={post.pk}"),
        ("posts: change page", f"/admin/posts/post/{post.pk}/change/"),
        ("posts: add page", "/admin/posts/post/add/"),
        ("tokens: changelist", "/admin/users/authtoken/"),
    ]


class Command(BaseCommand):
    help = "Time admin pages (median, p95) on the configured database, logged in as a temporary staff user."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--runs", type=int, default=20, help="timed requests per page (default 20)")
        parser.add_argument("--warmup", type=int, default=2, help="untimed requests per page first (default 2)")
        parser.add_argument("--host", default="localhost", help="Host header (must be in ALLOWED_HOSTS)")
        parser.add_argument("--path", action="append", default=[], help="time this path too (repeatable)")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["runs"] < 1:
            raise CommandError("--runs must be at least 1")
        timings: list[Timing] = []
        with transaction.atomic():
            try:
                targets = pages() + [(path, path) for path in options["path"]]
                staff = User.objects.create(email=TIMING_EMAIL, name="Admin timing", is_staff=True, is_superuser=True)
                client = Client(HTTP_HOST=options["host"])
                client.force_login(staff)
                for name, path in targets:
                    timings.append(self._time(client, name, path, runs=options["runs"], warmup=options["warmup"]))
            finally:
                # Whatever happened, nothing written here is committed.
                transaction.set_rollback(True)
        self._report(timings, runs=options["runs"])

    def _time(self, client: Client, name: str, path: str, *, runs: int, warmup: int) -> Timing:
        for _ in range(warmup):
            client.get(path)
        executed: list[str] = []

        def count(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
            executed.append(sql)
            return execute(sql, params, many, context)

        with connection.execute_wrapper(count):
            response = client.get(path)
        if response.status_code != 200:
            raise CommandError(f"{path}: HTTP {response.status_code}")
        seconds = []
        for _ in range(runs):
            started = time.perf_counter()
            client.get(path)
            seconds.append(time.perf_counter() - started)
        return Timing(name=name, path=path, queries=len(executed), seconds=seconds)

    def _report(self, timings: list[Timing], *, runs: int) -> None:
        vendor = connection.cursor().connection.info.server_version
        self.stdout.write(
            f"database {connection.settings_dict['NAME']} (PostgreSQL {vendor // 10000}.{vendor % 10000}): "
            f"{_estimate('users'):,} users, {_estimate('posts'):,} posts (estimates); {runs} runs per page\n"
        )
        self.stdout.write("| page | queries | median ms | p95 ms | max ms |")
        self.stdout.write("| --- | ---: | ---: | ---: | ---: |")
        for timing in timings:
            self.stdout.write(
                f"| {timing.name} | {timing.queries} | {statistics.median(timing.seconds) * 1000:.1f} "
                f"| {timing.quantile(0.95) * 1000:.1f} | {max(timing.seconds) * 1000:.1f} |"
            )


def _estimate(table: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT reltuples::bigint FROM pg_class WHERE oid = to_regclass(%s)", [table])
        row = cursor.fetchone()
    return max(0, int(row[0])) if row else 0
