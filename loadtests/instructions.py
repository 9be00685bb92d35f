"""Instructions per request, counted by valgrind's callgrind: an A/B that the VM's drift cannot move.

wrk's requests per second drift 20-50 % between minutes on these VMs, so a change worth a few
per cent cannot be resolved by timing, even interleaved (docs/performance.md). The instructions
a request executes repeat to about 0.1 %. This serves one path through Django's WSGI handler
in-process, with production settings, under callgrind, twice: WARM requests, then WARM + COUNT;
the difference divided by COUNT is what one request costs, start-up and imports excluded.

`--baseline DIR` counts another checkout the same way (a git worktree of the code without the
change), with this checkout's virtualenv, so that the two differ by their code alone; both run
at once, one per core (counts do not depend on the load).

    git worktree add /tmp/postline-a <commit>
    DATABASE_URL=... REDIS_URL=... python -m loadtests.instructions --path /api/users/42/ --baseline /tmp/postline-a

DATABASE_URL and REDIS_URL name the servers the requests use (the path should be one the
servers can answer: a seeded id; a cached path is served from the cache after the first).
"""

import argparse
import io
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

THIS_CHECKOUT = Path(__file__).resolve().parent.parent
WARM = 100
_TOTAL = re.compile(r"I\s+refs:\s+([\d,]+)")


def serve(path: str, requests: int) -> None:
    """In the child: `requests` GETs of `path` through the WSGI application, answers checked."""
    from loadtests.harness import production_env  # noqa: PLC0415 -- the checkout's own, from PYTHONPATH

    os.environ.update(
        production_env(database_url=os.environ["DATABASE_URL"], redis_url=os.environ["REDIS_URL"], mode="wsgi")
    )
    os.environ.update({"SECURE_SSL_REDIRECT": "false", "SECURE_HSTS_SECONDS": "0"})
    from project.wsgi import application  # noqa: PLC0415

    statuses: list[str] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[[bytes], object]:
        statuses.append(status)
        return sys.stdout.buffer.write

    for _ in range(requests):
        environ = {
            "REQUEST_METHOD": "GET",
            "PATH_INFO": path.partition("?")[0],
            "QUERY_STRING": path.partition("?")[2],
            "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": "8000",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "HTTP_HOST": "127.0.0.1:8000",
            "HTTP_ACCEPT": "application/json",
            "REMOTE_ADDR": "127.0.0.1",
            "wsgi.input": io.BytesIO(b""),
            "wsgi.errors": sys.stderr,
            "wsgi.url_scheme": "http",
            "wsgi.version": (1, 0),
            "wsgi.multithread": True,
            "wsgi.multiprocess": True,
            "wsgi.run_once": False,
        }
        b"".join(application(environ, start_response))
    if any(not status.startswith("200") for status in statuses):
        raise SystemExit(f"instructions: {path} answered {sorted(set(statuses))}, not only 200")


def count(checkout: Path, path: str, requests: int) -> int:
    """Instructions of a whole child process serving `requests` requests from `checkout`."""
    with tempfile.TemporaryDirectory() as scratch:
        log, output = Path(scratch) / "callgrind.log", Path(scratch) / "output.log"
        with output.open("wb") as sink:  # the access log's lines, as production writes them
            served = subprocess.run(  # noqa: S603 -- fixed binaries
                [
                    *("valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", f"--log-file={log}"),
                    *(sys.executable, __file__, "--serve", str(requests), "--path", path),
                ],
                cwd=checkout,
                env={**os.environ, "PYTHONPATH": str(checkout), "PYTHONHASHSEED": "0"},
                check=False,
                stdout=sink,
                stderr=sink,
            )
        if served.returncode:
            raise SystemExit(f"instructions: {checkout} failed:\n{output.read_text(errors='replace')[-3000:]}")
        found = _TOTAL.search(log.read_text())
        if found is None:
            raise SystemExit(f"instructions: no total in callgrind's log:\n{log.read_text()[-2000:]}")
        return int(found.group(1).replace(",", ""))


def per_request(checkout: Path, path: str, requests: int) -> float:
    return (count(checkout, path, WARM + requests) - count(checkout, path, WARM)) / requests


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--path", default="/api/users/42/")
    parser.add_argument("--requests", type=int, default=2000, help="requests counted (after WARM warm-up ones)")
    parser.add_argument("--baseline", type=Path, help="another checkout to count the same way (A/B)")
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve is not None:
        serve(args.path, args.serve)
        return 0
    for variable in ("DATABASE_URL", "REDIS_URL"):
        if not os.environ.get(variable):
            raise SystemExit(f"instructions: set {variable} to the server the requests should use")
    checkouts = {"this checkout": THIS_CHECKOUT, **({"baseline": args.baseline.resolve()} if args.baseline else {})}
    with ThreadPoolExecutor(max_workers=len(checkouts)) as pool:
        futures: dict[str, Any] = {
            name: pool.submit(per_request, checkout, args.path, args.requests) for name, checkout in checkouts.items()
        }
        results = {name: future.result() for name, future in futures.items()}
    for name, instructions in results.items():
        print(f"{name} ({checkouts[name]}): {instructions:,.0f} instructions per GET {args.path}")  # noqa: T201
    if args.baseline:
        change = results["this checkout"] / results["baseline"] - 1
        print(f"change against the baseline: {change:+.2%}")  # noqa: T201
    return 0


if __name__ == "__main__":
    sys.exit(main())
