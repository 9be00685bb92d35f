import json
from typing import Any

from rest_framework import serializers

from project.http.api import OutputModelSerializer, StrictModelSerializer, StrictSerializer
from users.models import User

METADATA_MAX_BYTES = 4096
METADATA_MAX_KEYS = 50
METADATA_MAX_DEPTH = 5


def _contains_nul(value: Any) -> bool:
    """PostgreSQL's jsonb cannot store U+0000, so such input must be a 400, not a 500."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_contains_nul(key) or _contains_nul(item) for key, item in value.items())
    if isinstance(value, list):
        return any(_contains_nul(item) for item in value)
    return False


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((_depth(item) for item in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(item) for item in value), default=0)
    return 0


def metadata_error(value: Any) -> str | None:
    """Why `value` cannot be a user's metadata, or None: the rules the API and the admin share."""
    if not isinstance(value, dict):
        return "Must be a JSON object."
    if len(value) > METADATA_MAX_KEYS:
        return f"At most {METADATA_MAX_KEYS} keys."
    if _depth(value) > METADATA_MAX_DEPTH:
        return f"Nested at most {METADATA_MAX_DEPTH} levels deep."
    if _contains_nul(value):
        return "Null characters are not allowed."
    if len(json.dumps(value, ensure_ascii=False).encode()) > METADATA_MAX_BYTES:
        return f"At most {METADATA_MAX_BYTES} bytes as JSON."
    return None


class MetadataField(serializers.JSONField):
    """Free-form profile data: a JSON object of bounded size."""

    def to_internal_value(self, data: Any) -> Any:
        value = super().to_internal_value(data)
        error = metadata_error(value)
        if error is not None:
            raise serializers.ValidationError(error)
        return value


class UserPublicSerializer(OutputModelSerializer):
    """What anyone may see of a user: never the email."""

    class Meta:
        model = User
        fields: tuple[str, ...] = ("id", "name", "metadata", "created_at", "post_count")
        read_only_fields = fields


class UserPrivateSerializer(UserPublicSerializer):
    """What the user themself and staff see."""

    class Meta(UserPublicSerializer.Meta):
        fields: tuple[str, ...] = (*UserPublicSerializer.Meta.fields, "email", "is_active", "is_staff")
        read_only_fields = fields


class UserProfileSerializer(UserPublicSerializer):
    """OpenAPI shape of GET /api/users/{id}/: the private fields appear only for self and staff."""

    email = serializers.EmailField(required=False)
    is_active = serializers.BooleanField(required=False)
    is_staff = serializers.BooleanField(required=False)

    class Meta(UserPublicSerializer.Meta):
        fields = UserPrivateSerializer.Meta.fields


class UserCreateSerializer(StrictSerializer):
    email = serializers.EmailField(max_length=254)
    name = serializers.CharField(max_length=150)
    password = serializers.CharField(
        max_length=128, write_only=True, trim_whitespace=False, style={"input_type": "password"}
    )


class UserUpdateSerializer(StrictModelSerializer):
    """PATCH body: name, metadata and password change; the other fields of a user are read-only."""

    metadata = MetadataField(required=False)
    password = serializers.CharField(
        max_length=128, write_only=True, required=False, trim_whitespace=False, style={"input_type": "password"}
    )

    class Meta:
        model = User
        fields = ("id", "email", "name", "metadata", "password", "created_at", "post_count", "is_active", "is_staff")
        read_only_fields = ("id", "email", "created_at", "post_count", "is_active", "is_staff")


class TokenRequestSerializer(StrictSerializer):
    email = serializers.CharField(max_length=254)
    password = serializers.CharField(max_length=128, trim_whitespace=False, style={"input_type": "password"})


class TokenSerializer(serializers.Serializer):
    token = serializers.CharField(read_only=True)


class UserListQuerySerializer(serializers.Serializer):
    metadata = serializers.ListField(
        child=serializers.CharField(max_length=200),
        required=False,
        help_text="`key:value`; users whose metadata contains that pair (the value as a string). Repeat to AND.",
    )

    def validate_metadata(self, pairs: list[str]) -> dict[str, str]:
        wanted: dict[str, str] = {}
        for pair in pairs:
            key, separator, value = pair.partition(":")
            if not separator or not key:
                raise serializers.ValidationError(f"Expected key:value, got {pair!r}.")
            wanted[key] = value
        return wanted
