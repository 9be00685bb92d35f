"""The test session's hold on the embedded servers (`-p project.devservers.pytest_plugin` in
pyproject.toml's addopts).

A hook wrapper around pytest_load_initial_conftests: it runs before pytest-django's own
implementation imports the settings, which read DATABASE_URL and REDIS_URL once. The hold
ends with the session's process (embedded.hold registers the release at exit).
"""

from collections.abc import Iterator

import pytest

from project.devservers import embedded


@pytest.hookimpl(wrapper=True)
def pytest_load_initial_conftests() -> Iterator[None]:
    embedded.hold()
    return (yield)
