"""Importing settings starts nothing; a command stops the embedded servers it started.

Each test gives the embedded servers a data directory of its own (POSTLINE_DATA_DIR) and
unsets DATABASE_URL / REDIS_URL, so that it starts and stops its own PostgreSQL and Redis,
never the test session's or the machine's.
"""

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from project.devservers import embedded
from tests.live_server import BASE_DIR

HOLD_UNTIL_STDIN_CLOSES = (
    "import sys; from project.devservers import embedded; embedded.hold(); print('held', flush=True); sys.stdin.read()"
)


@pytest.fixture
def data_dir() -> Iterator[Path]:
    directory = Path(tempfile.mkdtemp(prefix="pl-emb-", dir="/tmp"))
    directory.chmod(0o755)  # pgserver runs PostgreSQL as its own OS user when we are root
    yield directory
    subprocess.run(
        [sys.executable, "-m", "project.devservers.embedded", "stop"],
        cwd=BASE_DIR,
        env=_env(directory),
        capture_output=True,
        timeout=60,
        check=False,
    )
    shutil.rmtree(directory, ignore_errors=True)


def _env(data_dir: Path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key not in {"DATABASE_URL", "REDIS_URL", "DJANGO_ENV"}}
    return {**env, "POSTLINE_DATA_DIR": str(data_dir)}


def _python(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args],
        cwd=BASE_DIR,
        env=_env(data_dir),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _servers_of(data_dir: Path) -> list[str]:
    """Command lines of the processes that run on this data directory."""
    commands = (" ".join(process.info["cmdline"] or ()) for process in psutil.process_iter(["cmdline"]))
    return [command for command in commands if str(data_dir) in command and "pytest" not in command]


def test_importing_settings_starts_nothing(data_dir: Path) -> None:
    result = _python(data_dir, "-c", "import project.settings as s; print(s.DATABASES['default']['HOST'])")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "embedded-servers-not-started.invalid"
    assert list(data_dir.iterdir()) == []
    assert _servers_of(data_dir) == []


def test_a_command_stops_the_servers_it_started(data_dir: Path) -> None:
    result = _python(data_dir, "manage.py", "check", "--database", "default")
    assert result.returncode == 0, result.stderr
    assert (data_dir / "postgres" / "PG_VERSION").exists(), "the command ran on the embedded PostgreSQL"
    assert _servers_of(data_dir) == []


def test_servers_stay_up_while_another_command_holds_them(data_dir: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_UNTIL_STDIN_CLOSES],
        cwd=BASE_DIR,
        env=_env(data_dir),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "held"
        assert _python(data_dir, "manage.py", "check").returncode == 0
        assert _servers_of(data_dir), "the holder still needs them"
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=60)
    assert _servers_of(data_dir) == [], "the last holder stops what a holder started"


def test_servers_found_running_are_left_running(data_dir: Path) -> None:
    started = _python(
        data_dir, "-c", "from project.devservers import embedded; embedded.postgres_url(); embedded.redis_url()"
    )
    assert started.returncode == 0, started.stderr
    running = _servers_of(data_dir)
    assert running
    assert _python(data_dir, "manage.py", "check").returncode == 0
    assert len(_servers_of(data_dir)) == len(running)


def test_the_data_lives_in_the_checkouts_own_data_directory() -> None:
    assert embedded.BASE_DIR == BASE_DIR
    assert os.environ.get("POSTLINE_DATA_DIR") or embedded.DATA_DIR == BASE_DIR / ".data"
