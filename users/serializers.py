from typing import Any

from rest_framework import serializers

from project.http.api import OutputModelSerializer, StrictModelSerializer, StrictSerializer
from users.models import AuthToken, User
from users.rules import metadata_error


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
        fields: tuple[str, ...] = (
            *UserPublicSerializer.Meta.fields,
            "email",
            "email_verified",
            "is_active",
            "is_staff",
        )
        read_only_fields = fields


class UserProfileSerializer(UserPublicSerializer):
    """OpenAPI shape of GET /api/users/{id}/: the private fields appear only for self and staff."""

    email = serializers.EmailField(required=False)
    email_verified = serializers.BooleanField(required=False)
    is_active = serializers.BooleanField(required=False)
    is_staff = serializers.BooleanField(required=False)

    class Meta(UserPublicSerializer.Meta):
        fields = UserPrivateSerializer.Meta.fields


class PasswordField(serializers.CharField):
    """A password as it was typed: never trimmed, never echoed back."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(
            max_length=128, write_only=True, trim_whitespace=False, style={"input_type": "password"}, **kwargs
        )


class UserCreateSerializer(StrictSerializer):
    email = serializers.EmailField(max_length=254)
    name = serializers.CharField(max_length=150)
    password = PasswordField()


class UserUpdateSerializer(StrictModelSerializer):
    """PATCH body: name, metadata and password change; the other fields of a user are read-only."""

    metadata = MetadataField(required=False)
    password = PasswordField(required=False)

    class Meta:
        model = User
        fields = (
            "id",
            "email",
            "email_verified",
            "name",
            "metadata",
            "password",
            "created_at",
            "post_count",
            "is_active",
            "is_staff",
        )
        read_only_fields = ("id", "email", "email_verified", "created_at", "post_count", "is_active", "is_staff")


class TokenRequestSerializer(StrictSerializer):
    email = serializers.CharField(max_length=254)
    password = PasswordField()


class TokenSerializer(serializers.Serializer):
    token = serializers.CharField(read_only=True, help_text="Send it as `Authorization: Token <token>`; shown once.")
    expires = serializers.DateTimeField(
        read_only=True, help_text="When the token stops working unless used before: each use moves it on."
    )


class AuthTokenSerializer(OutputModelSerializer):
    """One of my tokens, as GET /api/auth/tokens/ lists it: never the token itself."""

    expires = serializers.DateTimeField(source="expiry", read_only=True)

    class Meta:
        model = AuthToken
        fields = ("id", "created", "last_used", "expires", "user_agent")
        read_only_fields = fields


class PasswordResetRequestSerializer(StrictSerializer):
    email = serializers.EmailField(max_length=254)


class LinkSerializer(StrictSerializer):
    """The `uid` and `token` of a link sent by email (their query string)."""

    uid = serializers.CharField(max_length=32)
    token = serializers.CharField(max_length=200)


class PasswordResetConfirmSerializer(LinkSerializer):
    password = PasswordField()


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
