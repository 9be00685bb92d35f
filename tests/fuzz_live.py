"""`make fuzz`: schemathesis against a live gunicorn on 127.0.0.1, from /api/schema/.

Runs on a scratch database (postline_fuzz, recreated each time) next to the configured one,
signs up a user and passes a token of it, so authenticated operations are fuzzed too. Fails on
any 5xx and on any response that does not match the schema. Bounded by --max-time.

    python -m tests.fuzz_live --max-examples 60 --max-time 300
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
from psycopg import sql

from project.devservers import embedded
from project.devservers.live import REPO_DIR, live_gunicorn
from project.env import database_from_url

SCRATCH_DB = "postline_fuzz"
CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"


def scratch_database_url() -> str:
    embedded.hold()
    url = os.environ["DATABASE_URL"]
    config = database_from_url(url, variable="DATABASE_URL")
    with psycopg.connect(
        dbname="postgres",
        user=config["USER"],
        password=config["PASSWORD"],
        host=config["HOST"],
        port=config["PORT"] or None,
        autocommit=True,
    ) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(SCRATCH_DB)))
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(SCRATCH_DB)))
    return urlsplit(url)._replace(path=f"/{SCRATCH_DB}").geturl()


PASSWORD = "fuzz-password-2026"  # a scratch database's throwaway account
# Operations that revoke the token they are called with: fuzzed last, with a token of their own,
# so that the other operations keep theirs.
REVOKING = ("auth_logout_create", "auth_logout_all_create", "auth_tokens_destroy")


def post(base: str, path: str, payload: dict[str, str]) -> dict[str, str]:
    request = urllib.request.Request(  # noqa: S310
        f"{base}{path}", data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
        return dict(json.loads(response.read()))


def fuzz_token(base: str, run: int) -> str:
    """The token of a fuzz user of its own for each run: a run's fuzzed password change (which
    revokes the user's other tokens) leaves the next run's token alone."""
    credentials = {"email": f"fuzz{run}@example.com", "password": PASSWORD}
    post(base, "/api/users/", {**credentials, "name": "Fuzz"})
    return str(post(base, "/api/auth/token/", credentials)["token"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--max-examples", type=int, default=60, help="examples per operation and phase")
    parser.add_argument("--max-time", type=int, default=300, help="time budget in seconds")
    args = parser.parse_args()

    database_url = scratch_database_url()
    throttles = dict.fromkeys(("THROTTLE_ANON", "THROTTLE_USER", "THROTTLE_AUTH"), "100000/min")
    env = {**os.environ, **throttles, "DATABASE_URL": database_url, "LOG_LEVEL": "WARNING", "DEBUG": "false"}
    python = Path(sys.executable)
    subprocess.run([python, "manage.py", "prestart", "-v", "0"], cwd=REPO_DIR, env=env, check=True)
    # The fuzz user gets an id the generator will not guess, so a fuzzed DELETE /api/users/{id}/
    # cannot deactivate it (and revoke the token) halfway through the run.
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("SELECT setval(pg_get_serial_sequence('users', 'id'), 7000000000000)")
    log = Path(tempfile.mkdtemp(prefix="postline-fuzz-")) / "gunicorn.log"
    with live_gunicorn({**env, "WEB_CONCURRENCY": "2"}, log=log, ready_path="/readyz", deadline_s=30) as server:
        base = server.base_url
        base_command = [
            str(python.with_name("schemathesis")), "run", f"{base}/api/schema/",
            "--checks", CHECKS,
            "--max-examples", str(args.max_examples),
            "--workers", "1",  # hypothesis' code inspection is not thread-safe
            "--seed", "20261125",
        ]  # fmt: skip
        # Stateful runs follow links (GET /me/ gives the caller's id), so DELETE /api/users/{id}/
        # would deactivate the fuzz user itself; it is fuzzed in the stateless phases only.
        keep_token = [option for operation in REVOKING for option in ("--exclude-operation-id", operation)]
        only_revoking = [option for operation in REVOKING for option in ("--include-operation-id", operation)]
        runs = [
            ["--phases", "examples,coverage,fuzzing", *keep_token],
            ["--phases", "stateful", "--exclude-operation-id", "users_destroy", *keep_token],
            ["--phases", "examples,coverage,fuzzing", *only_revoking],
        ]
        codes = [
            subprocess.run(
                [
                    *base_command,
                    *("--max-time", str(args.max_time // len(runs))),
                    *("--header", f"Authorization: Token {fuzz_token(base, number)}"),
                    *run,
                ],
                cwd=REPO_DIR,
                check=False,
            ).returncode
            for number, run in enumerate(runs)
        ]
    print(f"server log: {log}")
    return max(codes)


if __name__ == "__main__":
    sys.exit(main())
