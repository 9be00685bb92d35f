from collections.abc import Iterator
from typing import cast

import pytest
from django.core.cache import cache
from django_redis.cache import RedisCache
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from tests.factories import UserFactory
from users.models import User


@pytest.fixture(autouse=True)
def _empty_cache() -> Iterator[None]:
    """Every test starts and ends with no Postline keys in Redis (other keys are left alone)."""
    redis_cache = cast(RedisCache, cache)
    redis_cache.delete_pattern("*")
    yield
    redis_cache.delete_pattern("*")


@pytest.fixture
def api_client() -> APIClient:
    return APIClient()


def client_for(user: User) -> APIClient:
    """A client that authenticates the way real clients do: with the user's API token."""
    token, _ = Token.objects.get_or_create(user=user)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


@pytest.fixture
def user(db: None) -> User:
    return UserFactory.create()


@pytest.fixture
def staff(db: None) -> User:
    return UserFactory.create(is_staff=True, name="Staff Member")
