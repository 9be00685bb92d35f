"""gunicorn's part of the request path, read the way gunicorn loads project/gunicorn.conf.py.

Requests are parsed by gunicorn_h1c's C parser, not the pure-Python one. The workers share the
master's listening socket (no SO_REUSEPORT): a socket of each worker's own would die with the
worker and reset the connections queued on it (tests/test_faults.py, docs/performance.md).
"""

import runpy
from pathlib import Path

import pytest
from gunicorn.config import Config
from gunicorn.http import message

from tests.live_server import BASE_DIR


def gunicorn_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, server_mode: str) -> Config:
    monkeypatch.setenv("SERVER_MODE", server_mode)
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    config = Config()
    # What gunicorn's Application.load_config_from_file does: every setting the file names.
    for name, value in runpy.run_path(str(BASE_DIR / "project" / "gunicorn.conf.py")).items():
        if name in config.settings:
            config.set(name, value)
    return config


@pytest.mark.parametrize("server_mode", ["wsgi", "asgi"])
def test_workers_share_the_masters_listening_socket(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, server_mode: str
) -> None:
    assert gunicorn_config(monkeypatch, tmp_path, server_mode).reuse_port is False


def test_requests_are_parsed_by_the_c_parser(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = gunicorn_config(monkeypatch, tmp_path, "wsgi")
    assert config.http_parser == "auto"  # the pure-Python parser stays the fallback
    assert message._check_fast_parser(config) is True
