"""DRF's browsable API for people in a browser; JSON clients keep the orjson path, byte for byte."""

import pytest

from tests.conftest import client_for
from tests.factories import PASSWORD, PostFactory, UserFactory

pytestmark = pytest.mark.django_db
# What Chromium sends for a page it navigates to.
BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8"


@pytest.mark.parametrize("path", ["/api/users/{id}/", "/api/posts/", "/api/users/{id}/posts/", "/api/users/"])
def test_a_browser_gets_the_browsable_api(client, path: str) -> None:
    post = PostFactory.create(title="Seen in a browser")
    url = path.format(id=post.author_id)
    for _ in range(2):  # the cache's miss, then its hit
        response = client.get(url, HTTP_ACCEPT=BROWSER_ACCEPT)
        assert response.status_code == 200
        assert response["Content-Type"].startswith("text/html")
        page = response.content.decode()
        assert "Django REST framework" in page
        assert post.author.name in page
        assert "/api-auth/login/" in page
        policy = response["Content-Security-Policy"]
        assert "script-src 'self';" in policy  # DRF's scripts come from our static files
        assert "style-src 'self' 'unsafe-inline';" in policy  # its templates' style attributes


def test_json_clients_get_the_same_bytes_hit_or_miss_whatever_they_accept(api_client) -> None:
    post = PostFactory.create()
    url = f"/api/users/{post.author_id}/"
    bodies = {
        api_client.get(url, HTTP_ACCEPT=accept).content
        for accept in ("", "*/*", "application/json", "application/json", "")
    }
    assert len(bodies) == 1
    response = api_client.get(url)
    assert response["Content-Type"] == "application/json"
    assert response.json()["id"] == post.author_id


def test_a_person_signs_in_through_the_browsable_api_and_sees_their_email(client) -> None:
    user = UserFactory.create(email="browser@example.com")
    assert client.get("/api-auth/login/").status_code == 200
    assert client.login(username=user.email, password=PASSWORD)
    page = client.get(f"/api/users/{user.pk}/", HTTP_ACCEPT=BROWSER_ACCEPT).content.decode()
    assert "browser@example.com" in page
    # The same profile as JSON for a token client.
    assert client_for(user).get(f"/api/users/{user.pk}/").json()["email"] == "browser@example.com"
