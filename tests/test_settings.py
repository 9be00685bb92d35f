"""Production settings fail loudly at start-up, and pass Django's deployment checklist; the
database URLs read as libpq reads them."""

import subprocess

import pytest

from project.env import ConfigurationError, database_from_url, env_urls
from tests.live_server import run_python

PRODUCTION_ENV = {
    "DJANGO_ENV": "production",
    "SECRET_KEY": "k3J9s!vQ2#pL8zX0wN5rT7yU1iO4aS6dF9gH2jK5lZ8xC1vB4nM7qW0eR3tY6uI9oP",
    "ALLOWED_HOSTS": "postline.example.com",
    "EMAIL_HOST": "smtp.example.com",
    "FRONTEND_URL": "https://postline.example.com",
}


def run_manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return run_python("manage.py", *args, env=env)


def test_check_deploy_is_clean_in_production() -> None:
    result = run_manage("check", "--deploy", "--fail-level", "WARNING", env=PRODUCTION_ENV)
    assert result.returncode == 0, result.stderr
    assert "System check identified no issues" in result.stdout


@pytest.mark.parametrize("variable", ["EMAIL_HOST", "FRONTEND_URL"])
def test_production_without_email_settings_fails_naming_them(variable: str) -> None:
    """Password reset and verification emails need a mail server and the links' origin."""
    result = run_manage("check", env={**PRODUCTION_ENV, variable: ""})
    assert result.returncode == 1
    assert f"{variable} must be set when DJANGO_ENV=production" in result.stderr


def test_production_without_secret_key_fails_with_one_line_naming_it() -> None:
    env = {**PRODUCTION_ENV, "SECRET_KEY": ""}
    result = run_manage("check", env=env)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "Postline configuration error: SECRET_KEY must be set when DJANGO_ENV=production"
    ]


def test_production_refuses_debug() -> None:
    result = run_manage("check", env={**PRODUCTION_ENV, "DEBUG": "true"})
    assert result.returncode == 1
    assert "DEBUG" in result.stderr


def test_a_malformed_number_names_its_variable() -> None:
    result = run_manage("check", env={"DB_POOL_SIZE": "many"})
    assert result.returncode == 1
    assert result.stderr.strip() == "Postline configuration error: DB_POOL_SIZE='many' is not an integer"


def test_a_database_url_with_several_hosts_gives_libpq_its_host_and_port_lists() -> None:
    url = "postgres://app:s%40cret@10.0.0.1:5432,[fd00::2]:5433,db3/postline?target_session_attrs=read-write"
    database = database_from_url(url, variable="DATABASE_URL")
    assert (database["HOST"], database["PORT"]) == ("10.0.0.1,fd00::2,db3", "5432,5433,")
    assert (database["USER"], database["PASSWORD"], database["NAME"]) == ("app", "s@cret", "postline")
    assert database["OPTIONS"] == {"target_session_attrs": "read-write"}
    single = database_from_url("postgres://postgres@127.0.0.1:5432/postgres", variable="DATABASE_URL")
    assert (single["HOST"], single["PORT"]) == ("127.0.0.1", "5432")


def test_a_host_port_that_is_not_a_number_names_its_variable() -> None:
    with pytest.raises(ConfigurationError, match="DATABASE_URL: the port of 'db1:54x2' is not a number"):
        database_from_url("postgres://db1:54x2,db2/postline", variable="DATABASE_URL")


def test_replica_urls_split_where_a_url_starts_not_at_every_comma(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "DATABASE_REPLICA_URLS", "postgres://h1:5432,h2:5432/db?target_session_attrs=prefer-standby, postgres://h3/db"
    )
    assert env_urls("DATABASE_REPLICA_URLS") == [
        "postgres://h1:5432,h2:5432/db?target_session_attrs=prefer-standby",
        "postgres://h3/db",
    ]
