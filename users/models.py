from datetime import datetime
from typing import Any, ClassVar

from django.contrib.auth.models import AbstractBaseUser, BaseUserManager, PermissionsMixin
from django.contrib.postgres.indexes import GinIndex, OpClass
from django.db import models
from django.db.models import Value
from django.db.models.functions import Lower
from django.db.models.lookups import Exact, StartsWith
from django.utils import timezone
from knox.models import AbstractAuthToken


def email_matches(value: str, *, prefix: bool = False, field: str = "email") -> Exact | StartsWith:
    """The condition "the email is `value` (`prefix`: starts with it), whatever its case".

    The one definition of which emails are the same. PostgreSQL lowers both sides with the
    lower() of the users_email_ci_unique constraint, so every lookup agrees with it (Python's
    str.lower() differs on some non-ASCII letters); the value is a constant by planning time,
    so an index on lower(email) serves the lookup (users_email_like_idx serves a prefix too,
    LIKE's wildcards escaped). `field` may follow a relation ("user__email").
    """
    lookup = StartsWith if prefix else Exact
    return lookup(Lower(field), Lower(Value(value)))


class UserManager(BaseUserManager["User"]):
    """Emails are normalised by BaseUserManager.normalize_email (whitespace stripped, domain
    lowercased): users.services.user_create_check calls it for every account the services
    create, create_user (Django's hook, for createsuperuser) too."""

    use_in_migrations = True

    def get_by_natural_key(self, username: str | None) -> "User":
        """Log-in lookup, case-insensitive (email_matches)."""
        return self.get(email_matches(username or ""))

    def create_user(self, email: str, password: str | None = None, **fields: Any) -> "User":
        user = self.model(email=self.normalize_email(email), **fields)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_superuser(self, email: str, password: str | None = None, **fields: Any) -> "User":
        fields.setdefault("is_staff", True)
        fields.setdefault("is_superuser", True)
        return self.create_user(email, password, **fields)


# AuthToken's `user` (related_name auth_token_set) overrides a field of knox's untyped base model.
class User(AbstractBaseUser, PermissionsMixin):  # type: ignore[django-manager-missing]
    """A Postline account; the email is the login and is unique whatever its case."""

    email = models.EmailField(max_length=254)
    name = models.CharField(max_length=150)
    is_active = models.BooleanField(default=True)
    is_staff = models.BooleanField(default=False)
    metadata = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    # Kept by posts.services in the transaction that creates or deletes a post: counting an
    # author's posts costs ~150 ms at 500,000 posts, reading this column nothing.
    post_count = models.PositiveIntegerField(default=0, editable=False)
    # Set by the link of the verification email (users.verification); unverified accounts keep
    # every right, the flag is shown to the user and to staff.
    email_verified = models.BooleanField(default=False, db_default=False)

    objects: ClassVar[UserManager] = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS: ClassVar[list[str]] = ["name"]

    class Meta:
        db_table = "users"
        constraints: ClassVar = [
            models.UniqueConstraint(Lower("email"), name="users_email_ci_unique"),
        ]
        indexes: ClassVar = [
            # The public user list: active users, newest first, (created_at, id) as the cursor seeks.
            models.Index(
                fields=["-created_at", "-id"], name="users_active_created_idx", condition=models.Q(is_active=True)
            ),
            # The admin's is_active filter, newest id first.
            models.Index(fields=["id"], name="users_active_id_idx", condition=models.Q(is_active=True)),
            # ?metadata=key:value containment (@>) filters.
            GinIndex(fields=["metadata"], name="users_metadata_gin", opclasses=["jsonb_path_ops"]),
            # The admin's email search, lower(email) LIKE 'prefix%': a pattern-ops index serves
            # LIKE whatever the database's collation (the unique index does only under "C").
            models.Index(OpClass(Lower("email"), name="text_pattern_ops"), name="users_email_like_idx"),
            # The admin's list filters on rare values: staff, and deactivated accounts.
            models.Index(fields=["id"], name="users_staff_id_idx", condition=models.Q(is_staff=True)),
            models.Index(fields=["id"], name="users_inactive_id_idx", condition=models.Q(is_active=False)),
            # The email_verified filter: either value may be the rare one (new sign-ups start unverified).
            models.Index(fields=["id"], name="users_verified_id_idx", condition=models.Q(email_verified=True)),
            models.Index(fields=["id"], name="users_unverified_id_idx", condition=models.Q(email_verified=False)),
        ]

    def __str__(self) -> str:
        return self.email


class AuthToken(AbstractAuthToken):
    """An API token (django-rest-knox's model, KNOX_TOKEN_MODEL): its SHA-512 digest, never the
    token; users.tokens issues, touches and revokes them.

    Knox keys rows by the digest; an id of their own gives clients a handle that reveals
    nothing of the token (GET /api/auth/tokens/, DELETE /api/auth/tokens/{id}/)."""

    id: "models.BigAutoField[int, int]" = models.BigAutoField(primary_key=True)
    digest: "models.CharField[str, str]" = models.CharField(max_length=128, unique=True)
    # Indexed by auth_tokens_user_created_idx below, not by an index of its own.
    user: "models.ForeignKey[User, User]" = models.ForeignKey(
        User, on_delete=models.CASCADE, related_name="auth_token_set", db_index=False
    )
    last_used: "models.DateTimeField[datetime | None, datetime | None]" = models.DateTimeField(null=True, blank=True)
    user_agent: "models.CharField[str, str]" = models.CharField(max_length=200, blank=True)

    class Meta:
        db_table = "auth_tokens"
        indexes: ClassVar = [
            # A user's tokens (their list, sign-out everywhere, deactivation).
            models.Index(fields=["user", "-created"], name="auth_tokens_user_created_idx"),
        ]

    def __str__(self) -> str:
        return f"token {self.pk} of user {self.user_id}"
