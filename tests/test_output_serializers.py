"""OutputModelSerializer (project/http/api.py) answers byte for byte what DRF's own code answers.

DRF's output is had by switching the plans off (compiled_row returns None): every serializer
then runs Serializer.to_representation and ListSerializer.to_representation as DRF ships them.
"""

import datetime
import zoneinfo
from collections.abc import Iterator
from typing import Any
from unittest import mock

import pytest
from django.test import override_settings
from django.utils import timezone
from rest_framework import serializers

from posts.models import Post
from posts.selectors import post_list, user_overview
from posts.serializers import AuthorSerializer, PostSerializer, UserOverviewSerializer
from project.http.api import OutputModelSerializer
from project.http.renderers import ORJSONRenderer
from tests.factories import PostFactory, UserFactory
from users.models import User
from users.selectors import user_list
from users.serializers import UserPrivateSerializer, UserPublicSerializer

KOLKATA = zoneinfo.ZoneInfo("Asia/Kolkata")
NEW_YORK = zoneinfo.ZoneInfo("America/New_York")


def drf_data(serializer: serializers.BaseSerializer) -> Any:
    with mock.patch.object(OutputModelSerializer, "compiled_row", return_value=None):
        return serializer.data


def assert_same_as_drf(serializer_class: type[serializers.BaseSerializer], instance: Any, *, many: bool = False) -> Any:
    """The planned output equals DRF's as data and as the bytes the renderer sends."""
    planned = serializer_class(instance, many=many).data
    expected = drf_data(serializer_class(instance, many=many))
    assert planned == expected
    assert ORJSONRenderer().render(planned) == ORJSONRenderer().render(expected)
    return planned


@pytest.fixture
def posts(db: None) -> list[Post]:
    authors = [
        UserFactory.create(metadata={}),
        UserFactory.create(metadata={"plan": "pro", "tags": ["a", "ü"], "nested": {"n": 1, "x": None, "f": 1.5}}),
    ]
    for number in range(6):
        PostFactory.create(author=authors[number % 2], title=f"Post {number}", body="" if number == 3 else "Body")
    return list(post_list())


@pytest.fixture
def clear_plans() -> Iterator[None]:
    """Plans are per class; a test that changes settings must not leave its plans behind."""
    with mock.patch.dict("project.http.api._compiled", clear=True):
        yield


def test_our_response_serializers_are_planned() -> None:
    for serializer_class in (
        AuthorSerializer,
        PostSerializer,
        UserPublicSerializer,
        UserPrivateSerializer,
        UserOverviewSerializer,
    ):
        assert serializer_class().compiled_row() is not None, serializer_class.__name__


def test_posts_from_the_database_match(posts) -> None:
    data = assert_same_as_drf(PostSerializer, posts, many=True)
    assert data[0]["created_at"].endswith("Z")
    assert {row["author"]["id"] for row in data} == {post.author_id for post in posts}
    assert_same_as_drf(PostSerializer, posts[0])


def test_users_from_the_database_match(posts) -> None:
    users = list(user_list())
    data = assert_same_as_drf(UserPublicSerializer, users, many=True)
    assert {row["post_count"] for row in data} == {3}
    assert_same_as_drf(UserPrivateSerializer, list(User.objects.all()), many=True)


def test_the_overview_with_its_nested_posts_matches(posts) -> None:
    overview = user_overview(user_id=posts[0].author_id)
    data = assert_same_as_drf(UserOverviewSerializer, overview)
    assert len(data["latest_posts"]) == 3


def test_none_empty_and_odd_values_match() -> None:
    """Unsaved instances carry what the database never returns: None, naive and non-UTC
    datetimes, microseconds, an empty string where a datetime is due."""
    author = User(id=7, name="Zoë", metadata={"k": [1, None, {"deep": True}]}, post_count=0)
    author.created_at = None  # type: ignore[assignment]
    values: list[dict[str, Any]] = [
        {"created_at": datetime.datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=datetime.UTC)},
        {"created_at": datetime.datetime(2024, 5, 1, 12, 0, tzinfo=KOLKATA)},
        {"created_at": datetime.datetime(2024, 5, 1, 12, 0)},  # noqa: DTZ001  naive: DRF makes it aware
        {"created_at": None, "author": None},
        {"created_at": "", "title": None},
    ]
    instances = [
        Post(
            id=number,
            author=row.get("author", author),
            title=row.get("title", "T"),
            body="",
            created_at=row["created_at"],
            updated_at=datetime.datetime(2024, 1, 1, tzinfo=NEW_YORK),
        )
        for number, row in enumerate(values, start=1)
    ]
    data = assert_same_as_drf(PostSerializer, instances, many=True)
    assert data[3]["author"] is None
    assert data[4]["title"] is None
    assert_same_as_drf(UserPublicSerializer, author)


def test_an_active_non_utc_time_zone_matches(posts) -> None:
    with timezone.override(KOLKATA):
        data = assert_same_as_drf(PostSerializer, posts, many=True)
    assert data[0]["created_at"].endswith("+05:30")


@pytest.mark.usefixtures("clear_plans")
@pytest.mark.parametrize(
    "rest_framework",
    [{"DATETIME_FORMAT": "%Y-%m-%d %H:%M"}, {"DATETIME_FORMAT": None}, {"COERCE_BIGINT_TO_STRING": True}],
)
def test_changed_output_settings_match(posts, settings, rest_framework) -> None:
    with override_settings(REST_FRAMEWORK={**settings.REST_FRAMEWORK, **rest_framework}):
        assert_same_as_drf(PostSerializer, posts, many=True)
        assert_same_as_drf(UserPublicSerializer, list(user_list()), many=True)


@pytest.mark.usefixtures("clear_plans")
def test_without_use_tz_matches(posts) -> None:
    with override_settings(USE_TZ=False):
        assert_same_as_drf(PostSerializer, posts, many=True)


def test_dicts_match() -> None:
    row = {"id": 1, "name": "Ada", "metadata": {"a": 1}, "created_at": None, "post_count": 2}
    assert_same_as_drf(UserPublicSerializer, [row, {**row, "id": 2}], many=True)


class WithMethodField(OutputModelSerializer):
    shout = serializers.SerializerMethodField()

    class Meta:
        model = User
        fields = ("id", "name", "shout")

    def get_shout(self, user: User) -> str:
        return user.name.upper() + str(self.context.get("suffix", ""))


class WithOwnRepresentation(OutputModelSerializer):
    class Meta:
        model = User
        fields = ("id", "name")

    def to_representation(self, instance: Any) -> Any:
        return {**super().to_representation(instance), "extra": True}


def test_a_field_the_plan_does_not_know_leaves_the_serializer_to_drf() -> None:
    user = User(id=3, name="Ada")
    assert WithMethodField().compiled_row() is None
    assert WithMethodField([user], many=True, context={"suffix": "!"}).data == [
        {"id": 3, "name": "Ada", "shout": "ADA!"}
    ]
    assert WithOwnRepresentation().compiled_row() is None
    assert WithOwnRepresentation(user).data == {"id": 3, "name": "Ada", "extra": True}
