"""posts.seeding.load: a run that cannot succeed stops before it changes anything."""

import os
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

import pytest
from django.db import connection

from posts.seeding import SeedError, dataset_seed
from posts.seeding.rows import UserRows
from users.models import User


def indexes() -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexrelid::regclass::text FROM pg_index WHERE indrelid IN ('users'::regclass, 'posts'::regclass)"
        )
        return {name for (name,) in cursor.fetchall()}


@pytest.mark.django_db(transaction=True)
def test_a_model_column_no_builder_fills_stops_the_run_before_any_index_is_dropped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fills = UserRows.values

    def without_name(self: UserRows, offset: int, count: int) -> dict[str, Iterable[str]]:
        return {column: values for column, values in fills(self, offset, count).items() if column != "name"}

    monkeypatch.setattr(UserRows, "values", without_name)
    before = indexes()

    with pytest.raises(SeedError, match=r"User\.name: NOT NULL without a database default"):
        dataset_seed(users=200, posts=2000)

    assert indexes() == before
    assert not User.objects.exists()


def test_the_seed_password_imports_without_django_set_up() -> None:
    # The load tests import SEED_PASSWORD without configuring Django.
    env = {key: value for key, value in os.environ.items() if key != "DJANGO_SETTINGS_MODULE"}
    result = subprocess.run(
        [sys.executable, "-c", "from posts.seeding import SEED_PASSWORD; print(SEED_PASSWORD)"],
        cwd=Path(__file__).resolve().parent.parent,
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )

    assert result.stdout == "postline-seed\n"
