"""Locust scenarios for Postline; `make loadtest` runs them (see docs/loadtests.md).

- `BriefReader`: the brief's scenario, 1 x `GET /api/users/` to 3 x `GET /api/users/{id}/`.
- `MixedUser`: signs in once as a seeded user, pages through feeds by following `next`, reads
  posts and profiles, searches, and writes (creates, edits and deletes its own posts) at about
  one write request to twenty reads.

Ids come from the seeded database (the newest user and post ids, read once through the API),
so any seed size works. At the end of a headless run every request type is checked against
loadtests/thresholds.toml; a breach sets a non-zero exit code.

    LOADTEST_SEED_PASSWORD=... locust -f loadtests/locustfile.py --headless -H http://127.0.0.1:8000 -u 40 -r 4 -t 60s

locust imports this file by path, as a top-level module (`locustfile`, with loadtests/ and the
working directory put on sys.path), so it imports nothing of the project's: the seeded users'
password (posts.seeding.SEED_PASSWORD) comes in LOADTEST_SEED_PASSWORD, which
`python -m loadtests.run` sets.
"""

import os
import random
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from locust import HttpUser, between, constant, constant_throughput, events, task
from locust.env import Environment

BASE_DIR = Path(__file__).resolve().parent.parent
SEED_PASSWORD = os.environ.get("LOADTEST_SEED_PASSWORD", "")
if not SEED_PASSWORD:
    sys.exit(
        "loadtest: LOADTEST_SEED_PASSWORD is not set. `python -m loadtests.run` sets it from "
        "posts.seeding.SEED_PASSWORD; to run locust by hand, export it first (docs/loadtests.md)."
    )
# LOADTEST_THRESHOLDS="" turns the check off, for runs that saturate on purpose (the soak's
# capacity probe).
THRESHOLDS_FILE = os.environ.get("LOADTEST_THRESHOLDS", str(BASE_DIR / "loadtests" / "thresholds.toml"))
SEARCH_TERMS = ("database", "python", "cache", "design", "latency", "coffee", "weekend", "release")
# Production sits behind a TLS-terminating proxy; this is the header that proxy adds.
PROXY_HEADERS = {"X-Forwarded-Proto": "https", "Accept": "application/json"}


def think_time() -> Any:
    """How long a simulated user waits between tasks.

    LOADTEST_TASKS_PER_S paces every user at that many tasks per second (an open-ish load of
    a chosen rate, used by the soak); otherwise LOADTEST_THINK_S="low,high" seconds of think
    time, where "0" drives the server closed-loop (capacity measurements).
    """
    if rate := os.environ.get("LOADTEST_TASKS_PER_S"):
        return constant_throughput(float(rate))
    low, _, high = os.environ.get("LOADTEST_THINK_S", "0.5,1.5").partition(",")
    return constant(0) if float(low) == 0 and not high else between(float(low), float(high or low))


@dataclass
class SeededData:
    """What the seeded database holds, learnt once per locust process."""

    max_user_id: int = 0
    max_post_id: int = 0
    accounts: list[int] = field(default_factory=list)

    def learn(self, user: HttpUser) -> None:
        if self.max_user_id:
            return
        users = _json(user, "/api/users/?page_size=100", "GET /api/users/ (setup)")["results"]
        posts = _json(user, "/api/posts/?page_size=1", "GET /api/posts/ (setup)")["results"]
        if not users or not posts:
            raise RuntimeError("loadtest: the database holds no users or posts; seed it first (make loadtest does)")
        self.accounts = [row["id"] for row in users]
        self.max_user_id = max(self.accounts)
        self.max_post_id = posts[0]["id"]

    def user_id(self) -> int:
        return random.randint(1, self.max_user_id)

    def post_id(self) -> int:
        return random.randint(1, self.max_post_id)


SEEDED = SeededData()


def _json(user: HttpUser, path: str, name: str) -> Any:
    with user.client.get(path, name=name, catch_response=True) as response:
        if response.status_code != 200:
            response.failure(f"{response.status_code}: {response.text[:200]}")
            raise RuntimeError(f"loadtest: {path} answered {response.status_code}")
        return response.json()


def get_allowing_404(user: HttpUser, path: str, name: str) -> None:
    """A random id may name an inactive user or a deleted post: 404 is the right answer."""
    with user.client.get(path, name=name, catch_response=True) as response:
        if response.status_code in (200, 404):
            response.success()
        else:
            response.failure(f"{response.status_code}: {response.text[:200]}")


class PostlineUser(HttpUser):
    abstract = True
    wait_time = think_time()

    def on_start(self) -> None:
        self.client.headers.update(PROXY_HEADERS)
        SEEDED.learn(self)


class BriefReader(PostlineUser):
    """The brief's locust scenario: list users once for every three profile reads."""

    @task(1)
    def list_users(self) -> None:
        self.client.get("/api/users/", name="GET /api/users/")

    @task(3)
    def read_profile(self) -> None:
        get_allowing_404(self, f"/api/users/{SEEDED.user_id()}/", "GET /api/users/{id}/")


class MixedUser(PostlineUser):
    """A signed-in reader who sometimes writes: about one write request per twenty reads."""

    def on_start(self) -> None:
        super().on_start()
        account = random.choice(SEEDED.accounts)
        response = self.client.post(
            "/api/auth/token/",
            json={"email": f"user{account}@example.com", "password": SEED_PASSWORD},
            name="POST /api/auth/token/",
        )
        response.raise_for_status()
        self.client.headers["Authorization"] = f"Token {response.json()['token']}"
        self.own_posts: list[int] = []

    def follow_pages(self, path: str, name: str) -> None:
        """Read a first page, then follow `next` for up to three more, as a scrolling client does."""
        page = self.client.get(path, name=name).json()
        for _ in range(random.randint(0, 3)):
            if not page.get("next"):
                return
            # `next` is absolute and says https (the proxy's scheme); follow it on this host.
            link = urlsplit(page["next"])
            page = self.client.get(f"{link.path}?{link.query}", name=f"{name} next").json()

    @task(12)
    def browse_feed(self) -> None:
        self.follow_pages("/api/posts/", "GET /api/posts/")

    @task(10)
    def read_post(self) -> None:
        get_allowing_404(self, f"/api/posts/{SEEDED.post_id()}/", "GET /api/posts/{id}/")

    @task(8)
    def read_profile(self) -> None:
        get_allowing_404(self, f"/api/users/{SEEDED.user_id()}/", "GET /api/users/{id}/")

    @task(6)
    def browse_author(self) -> None:
        author = random.choice(SEEDED.accounts)
        self.follow_pages(f"/api/users/{author}/posts/", "GET /api/users/{id}/posts/")

    @task(4)
    def search(self) -> None:
        self.client.get(f"/api/posts/?search={random.choice(SEARCH_TERMS)}", name="GET /api/posts/?search=")

    @task(2)
    def overview(self) -> None:
        get_allowing_404(self, f"/api/users/{SEEDED.user_id()}/overview/", "GET /api/users/{id}/overview/")

    @task(3)
    def write(self) -> None:
        """Create until the client has a few posts, then edit or delete one of them."""
        if len(self.own_posts) < 3 or random.random() < 0.4:
            body = {"title": "Load test post", "body": f"Written by a locust user, {random.random():.6f}."}
            created = self.client.post("/api/posts/", json=body, name="POST /api/posts/")
            if created.status_code == 201:
                self.own_posts.append(created.json()["id"])
        elif random.random() < 0.7:
            post_id = random.choice(self.own_posts)
            self.client.patch(f"/api/posts/{post_id}/", json={"title": "Edited"}, name="PATCH /api/posts/{id}/")
        else:
            post_id = self.own_posts.pop(random.randrange(len(self.own_posts)))
            self.client.delete(f"/api/posts/{post_id}/", name="DELETE /api/posts/{id}/")


def threshold_breaches(environment: Environment, thresholds: dict[str, Any]) -> list[str]:
    """Every limit of thresholds.toml that this run's statistics break, in words."""
    stats = environment.stats
    breaches = []
    total = stats.total
    if total.num_requests == 0:
        return ["no requests were made"]
    if total.fail_ratio > thresholds["max_failure_ratio"]:
        breaches.append(
            f"failure ratio {total.fail_ratio:.4f} > {thresholds['max_failure_ratio']} "
            f"({total.num_failures} of {total.num_requests})"
        )
    defaults = thresholds["default"]
    for (name, _method), entry in sorted(stats.entries.items()):
        if entry.num_requests == 0 or name.endswith("(setup)"):
            continue
        limits = {**defaults, **thresholds.get("requests", {}).get(name, {})}
        for percentile, key in ((0.95, "p95_ms"), (0.99, "p99_ms")):
            measured = entry.get_response_time_percentile(percentile)
            if measured > limits[key]:
                breaches.append(f"{name}: {key[:3]} {measured:.0f} ms > {limits[key]} ms")
    return breaches


@events.quitting.add_listener
def check_thresholds(environment: Environment, **_: Any) -> None:
    if not THRESHOLDS_FILE or (environment.parsed_options is not None and not environment.parsed_options.headless):
        return
    thresholds = tomllib.loads(Path(THRESHOLDS_FILE).read_text())
    breaches = threshold_breaches(environment, thresholds)
    for breach in breaches:
        print(f"THRESHOLD BROKEN: {breach}", file=sys.stderr)  # noqa: T201
    if breaches:
        environment.process_exit_code = 1
    else:
        print(f"thresholds: all met ({Path(THRESHOLDS_FILE).name})", file=sys.stderr)  # noqa: T201
