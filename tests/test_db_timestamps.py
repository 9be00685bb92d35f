"""Timestamps read by psycopg's own loader (project/db/backends/datetimes.py): the values
Django's loader gives, on the real PostgreSQL."""

import datetime

import pytest
from django.db import connection, connections
from django.db.backends.postgresql.psycopg_any import register_tzloader
from psycopg import adapters
from psycopg.pq import Format

from project.db.backends.datetimes import UTCTimestamptzLoader

pytestmark = pytest.mark.django_db

TIMESTAMPTZ_OID = adapters.types["timestamptz"].oid
# Microseconds, both ends of Python's range, another offset, a daylight-saving change in Paris.
VALUES = """
SELECT value FROM (VALUES
    ('2026-12-06 10:11:12.345678+00'::timestamptz), ('1970-01-01 00:00:00+00'),
    ('0001-01-01 00:00:00+00'), ('9999-12-31 23:59:59.999999+00'),
    ('2026-03-29 01:30:00-05:30'), ('2026-03-29 02:30:00 Europe/Paris'), (NULL)
) AS t(value)
"""


def loader_of(context: object) -> type:
    return context.adapters.get_loader(TIMESTAMPTZ_OID, Format.TEXT)  # type: ignore[attr-defined]


def test_a_connection_in_utc_reads_timestamps_with_psycopgs_loader() -> None:
    with connection.cursor() as cursor:
        # Django's create_cursor compares the loader's time zone with the connection's.
        assert loader_of(cursor.cursor) is UTCTimestamptzLoader
    assert loader_of(connection.connection) is UTCTimestamptzLoader


def test_the_values_are_the_ones_djangos_loader_reads() -> None:
    with connection.cursor() as cursor:
        cursor.execute(VALUES)
        ours = cursor.fetchall()
    with connection.cursor() as cursor:
        register_tzloader(connection.timezone, cursor.cursor)
        assert loader_of(cursor.cursor) is not UTCTimestamptzLoader
        cursor.execute(VALUES)
        djangos = cursor.fetchall()
    assert ours == djangos
    assert [value.tzinfo for (value,) in ours if value is not None] == [datetime.UTC] * 6


def test_a_database_in_another_time_zone_keeps_djangos_loader() -> None:
    wrapper = type(connections["default"])({**connection.settings_dict, "TIME_ZONE": "Europe/Paris"}, alias="paris")
    assert loader_of(wrapper.get_connection_params()["context"]) is not UTCTimestamptzLoader
