"""Where the time of one request goes: framework, ORM, serializer, driver, database, cache.

Runs requests in-process through Django's full handler (every middleware, DRF, the view,
the serializer, the renderer) with production settings against a seeded database, under
cProfile, and sums each function's own time into layers by the module it lives in. Waiting
for PostgreSQL's answer (psycopg's wait functions) is the database's share: its execution time
plus the loopback round trip.

    python -m loadtests.profile_request --database seedbench --path '/api/users/{id}/' --cache off

Prints a markdown table (ms per request and share) for docs/performance.md.
"""

import argparse
import cProfile
import os
import pstats
import random
import sys
import time
from typing import Any

from loadtests.harness import CLOSED_REDIS, production_env, server_urls, with_database

DATABASE = "database (server time + loopback, psycopg's wait)"
# First match wins: (layer, substring of the function's file path or name).
LAYERS = [
    ("driver (psycopg)", "psycopg"),
    ("cache client (Redis)", "redis"),
    ("serializer", "serializers"),
    ("serializer", "rest_framework/fields"),
    ("renderer (orjson)", "orjson"),
    ("renderer (orjson)", "renderers"),
    ("ORM (query building, model instances)", "django/db/"),
    ("framework (Django, DRF, middleware)", "django/"),
    ("framework (Django, DRF, middleware)", "rest_framework/"),
    ("framework (Django, DRF, middleware)", "django_prometheus"),
    ("framework (Django, DRF, middleware)", "/project/"),
    ("framework (Django, DRF, middleware)", "/users/"),
    ("framework (Django, DRF, middleware)", "/posts/"),
]
OTHER = "other (logging, standard library, interpreter)"


def layer_of(filename: str, function: str) -> str:
    where = f"{filename}:{function}"
    return next((layer for layer, needle in LAYERS if needle in where), OTHER)


def layer_totals(stats: dict[tuple[str, int, str], tuple[Any, ...]]) -> dict[str, float]:
    """Self time per layer; the time inside psycopg's Connection.wait (and what it calls
    directly: the poll on the socket) is the database's, not the driver's."""
    waits = {key for key in stats if key[0].endswith("psycopg/connection.py") and key[2] == "wait"}
    totals: dict[str, float] = {}
    for key, (_calls, _primitive, own_time, cumulative, callers) in stats.items():
        if key in waits:
            totals[DATABASE] = totals.get(DATABASE, 0.0) + cumulative
            continue
        inside_wait = sum(timing[2] for caller, timing in callers.items() if caller in waits)
        layer = layer_of(key[0], key[2])
        totals[layer] = totals.get(layer, 0.0) + max(own_time - inside_wait, 0.0)
    return totals


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database", default="postline_bench")
    parser.add_argument("--path", default="/api/users/{id}/", help="{id} becomes a random id in 1..--max-id")
    parser.add_argument("--max-id", type=int, default=1_000_000)
    parser.add_argument("--cache", choices=("on", "off"), default="off")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=200, help="unprofiled requests first (fill the cache)")
    args = parser.parse_args()

    database_url, redis_url = server_urls()
    os.environ.update(
        production_env(
            database_url=with_database(database_url, args.database),
            redis_url=redis_url if args.cache == "on" else CLOSED_REDIS,
        )
    )
    os.environ["DJANGO_SETTINGS_MODULE"] = "project.settings"
    import django  # noqa: PLC0415

    django.setup()
    from django.test import Client  # noqa: PLC0415

    client = Client(SERVER_NAME="127.0.0.1", HTTP_X_FORWARDED_PROTO="https")
    rng = random.Random(1)

    def one() -> int:
        return client.get(args.path.replace("{id}", str(rng.randint(1, args.max_id)))).status_code

    for _ in range(args.warmup):
        one()
    profiler = cProfile.Profile()
    started = time.perf_counter()
    profiler.enable()
    statuses = [one() for _ in range(args.requests)]
    profiler.disable()
    elapsed = time.perf_counter() - started

    totals = layer_totals(pstats.Stats(profiler).stats)  # type: ignore[attr-defined]
    profiled = sum(totals.values())
    print(  # noqa: T201
        f"{args.requests} x GET {args.path} (cache {args.cache}, database {args.database}), "
        f"statuses {sorted(set(statuses))}: {elapsed / args.requests * 1000:.2f} ms per request under cProfile\n"
    )
    print("| layer | ms per request | share |\n| --- | ---: | ---: |")  # noqa: T201
    for layer, seconds in sorted(totals.items(), key=lambda item: -item[1]):
        print(f"| {layer} | {seconds / args.requests * 1000:.3f} | {seconds / profiled:.0%} |")  # noqa: T201
    return 0


if __name__ == "__main__":
    sys.exit(main())
