from typing import Any

from rest_framework import serializers

from posts.models import Post
from posts.search import ORDERINGS, RELEVANCE
from project.http.api import OutputModelSerializer, StrictModelSerializer
from users.models import User
from users.serializers import UserPublicSerializer

BODY_MAX_LENGTH = 20_000
SEARCH_MAX_LENGTH = 200


class AuthorSerializer(OutputModelSerializer):
    class Meta:
        model = User
        fields = ("id", "name")
        read_only_fields = fields


class PostSerializer(OutputModelSerializer):
    author = AuthorSerializer(read_only=True)

    class Meta:
        model = Post
        fields = ("id", "author", "title", "body", "created_at", "updated_at")
        read_only_fields = fields


class PostWriteSerializer(StrictModelSerializer):
    """Create/PATCH body. The author is always the caller: a given `author` is ignored."""

    author = AuthorSerializer(read_only=True)
    body = serializers.CharField(max_length=BODY_MAX_LENGTH)

    class Meta:
        model = Post
        fields = ("id", "author", "title", "body", "created_at", "updated_at")
        read_only_fields = ("id", "created_at", "updated_at")


class PostListQuerySerializer(serializers.Serializer):
    author = serializers.IntegerField(min_value=1, max_value=2**63 - 1, required=False, help_text="Author's user id.")
    search = serializers.CharField(
        max_length=SEARCH_MAX_LENGTH,
        required=False,
        help_text="Full-text search in title and body (English stemming, web-search syntax); see the description.",
    )
    ordering = serializers.ChoiceField(
        choices=ORDERINGS,
        required=False,
        help_text=(
            "Order of a search's results: `relevance` (the default) or `newest`. "
            "A list without `search` is always newest first."
        ),
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs.get("ordering") == RELEVANCE and not attrs.get("search"):
            raise serializers.ValidationError({"ordering": ["`relevance` orders the results of a `search`; give one."]})
        return attrs


class UserOverviewSerializer(UserPublicSerializer):
    """The database part of the overview: the public profile and the latest posts."""

    latest_posts = PostSerializer(many=True, read_only=True)

    class Meta(UserPublicSerializer.Meta):
        fields = (*UserPublicSerializer.Meta.fields, "latest_posts")
        read_only_fields = fields


class UserOverviewResponseSerializer(UserOverviewSerializer):
    """The overview as served: plus the external enrichment, null when it is unavailable."""

    external = serializers.JSONField(allow_null=True, read_only=True)
    degraded = serializers.BooleanField(
        read_only=True, help_text="True when enrichment is configured but could not be fetched."
    )

    class Meta(UserOverviewSerializer.Meta):
        fields = (*UserOverviewSerializer.Meta.fields, "external", "degraded")
        read_only_fields = fields
