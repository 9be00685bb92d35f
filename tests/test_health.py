import time
from pathlib import Path

import pytest

from project.devservers import embedded


def test_healthz_answers_while_the_process_runs(client) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.django_db
def test_readyz_is_ok_when_database_and_cache_answer(client) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["checks"] == {"database": "ok", "cache": "ok"}


@pytest.mark.django_db
def test_readyz_turns_503_within_a_second_when_redis_stops_and_recovers(client, own_redis: Path) -> None:
    assert client.get("/readyz").status_code == 200

    embedded.stop_redis(own_redis)
    started = time.monotonic()
    response = client.get("/readyz")
    elapsed = time.monotonic() - started
    assert response.status_code == 503
    assert list(response.json()["failing"]) == ["cache"]
    assert elapsed < 1.0
    assert client.get("/healthz").status_code == 200

    embedded.redis_url(own_redis)
    assert client.get("/readyz").status_code == 200


def test_landing_page_links_docs_admin_and_metrics(client) -> None:
    page = client.get("/").content.decode()
    for link in ("/api/docs/", "/admin/", "/metrics"):
        assert f'href="{link}"' in page
