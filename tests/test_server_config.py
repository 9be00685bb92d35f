"""gunicorn's part of the lean request path: what was measured to matter must not come back.

Each worker gets a listening socket of its own (SO_REUSEPORT), or one worker takes every
keep-alive connection of a burst and the other idles; requests are parsed by gunicorn_h1c's
C parser, not the pure-Python one (docs/performance.md has the A/B numbers). These read the
configuration the way gunicorn itself loads it, from project/gunicorn.conf.py.
"""

import runpy
from pathlib import Path

import pytest
from gunicorn.config import Config
from gunicorn.http import message

BASE_DIR = Path(__file__).resolve().parent.parent


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
def test_every_worker_listens_on_its_own_socket(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, server_mode: str
) -> None:
    assert gunicorn_config(monkeypatch, tmp_path, server_mode).reuse_port is True


def test_requests_are_parsed_by_the_c_parser(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = gunicorn_config(monkeypatch, tmp_path, "wsgi")
    assert config.http_parser == "auto"  # the pure-Python parser stays the fallback
    assert message._check_fast_parser(config) is True
