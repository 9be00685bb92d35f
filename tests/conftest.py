from collections.abc import Iterator
from typing import cast

import pytest
from django.core.cache import cache
from django_redis.cache import RedisCache
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


@pytest.fixture
def user(db: None) -> User:
    return UserFactory.create()


@pytest.fixture
def staff(db: None) -> User:
    return UserFactory.create(is_staff=True, name="Staff Member")
