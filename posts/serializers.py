from rest_framework import serializers

from posts.models import Post
from project.api import OutputModelSerializer, StrictModelSerializer
from users.models import User

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
        help_text="Full-text search in title and body (English stemming, web-search syntax), best matches first.",
    )
