"""Typed readers for the environment: the only way settings read configuration."""

import os
import re
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit


class ConfigurationError(SystemExit):
    """A setting is missing or unsafe.

    A SystemExit with a message, so that manage.py, gunicorn and the container all stop with
    one readable line naming the variable instead of a traceback.
    """

    def __init__(self, message: str) -> None:
        super().__init__(f"Postline configuration error: {message}")


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default).strip()


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return default
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ConfigurationError(f"{name}={raw!r} is not a boolean (use true or false)")


def env_int(name: str, default: int, *, minimum: int | None = None) -> int:
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigurationError(f"{name}={raw!r} is not an integer") from None
    if minimum is not None and value < minimum:
        raise ConfigurationError(f"{name}={value} must be at least {minimum}")
    return value


def env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        return float(raw)
    except ValueError:
        raise ConfigurationError(f"{name}={raw!r} is not a number") from None


def env_list(name: str, default: list[str] | None = None) -> list[str]:
    raw = os.environ.get(name)
    if raw is None:
        return list(default or [])
    return [item.strip() for item in raw.split(",") if item.strip()]


def env_urls(name: str) -> list[str]:
    """Comma-separated URLs, where a URL may hold commas of its own (libpq's host lists,
    `postgres://h1:5432,h2:5432/db`): a new URL starts only where a scheme does."""
    raw = os.environ.get(name, "")
    return [item.strip() for item in _URL_START.split(raw) if item.strip()]


_URL_START = re.compile(r",\s*(?=[a-z][a-z0-9+.-]*://)", re.IGNORECASE)


def env_choice(name: str, default: str, choices: set[str]) -> str:
    value = env_str(name, default).lower()
    if value not in choices:
        raise ConfigurationError(f"{name}={value!r} must be one of {', '.join(sorted(choices))}")
    return value


def database_from_url(url: str, *, variable: str) -> dict[str, Any]:
    """A Django DATABASES entry from `postgres://user:pass@host:port/name?option=value`.

    Several hosts (`host1:5432,host2:5432`) become libpq's host and port lists: with
    `target_session_attrs=read-write` libpq connects to whichever of them is the primary
    (docs/scale-out.md, failover). A `host` query parameter (a socket directory, as pgserver
    gives) wins over the netloc; other query parameters become libpq connection options
    (sslmode, connect_timeout, target_session_attrs...).
    """
    parts = urlsplit(url)
    if parts.scheme not in {"postgres", "postgresql"}:
        raise ConfigurationError(f"{variable} must start with postgres:// (got {parts.scheme or 'nothing'}://)")
    options = dict(parse_qsl(parts.query))
    hosts, ports = _hosts_and_ports(parts.netloc.rpartition("@")[2], variable=variable)
    host = options.pop("host", "") or hosts
    name = unquote(parts.path.lstrip("/"))
    if not name:
        raise ConfigurationError(f"{variable} names no database (postgres://user@host:port/DBNAME)")
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": name,
        "USER": unquote(parts.username or ""),
        "PASSWORD": unquote(parts.password or ""),
        "HOST": host,
        "PORT": ports,
        "OPTIONS": options,
    }


def _hosts_and_ports(addresses: str, *, variable: str) -> tuple[str, str]:
    """libpq's lists ("h1,h2", "5432,5433") from a URL's `h1:5432,h2:5433` (IPv6 in brackets)."""
    hosts, ports = [], []
    for address in addresses.split(",") if addresses else []:
        host, port = address, ""
        if address.startswith("["):
            host, _, rest = address[1:].partition("]")
            port = rest.removeprefix(":")
        elif ":" in address:
            host, _, port = address.rpartition(":")
        if port and not port.isdigit():
            raise ConfigurationError(f"{variable}: the port of {address!r} is not a number")
        hosts.append(unquote(host))
        ports.append(port)
    return ",".join(hosts), ",".join(ports) if any(ports) else ""


def redact_url(url: str) -> str:
    """The URL with its password replaced, for log lines."""
    parts = urlsplit(url)
    if not parts.password:
        return url
    return parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@", 1)).geturl()
