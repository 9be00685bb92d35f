from typing import Any, ClassVar

from django.contrib.auth.models import AbstractBaseUser, BaseUserManager, PermissionsMixin
from django.contrib.postgres.indexes import GinIndex, OpClass
from django.db import models
from django.db.models.functions import Lower
from django.utils import timezone


class UserManager(BaseUserManager["User"]):
    use_in_migrations = True

    def get_by_natural_key(self, username: str | None) -> "User":
        """Log-in lookup, case-insensitive and served by the Lower("email") unique index."""
        return self.alias(email_lower=Lower("email")).get(email_lower=(username or "").lower())

    def create_user(self, email: str, password: str | None = None, **fields: Any) -> "User":
        user = self.model(email=self.normalize_email(email), **fields)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_superuser(self, email: str, password: str | None = None, **fields: Any) -> "User":
        fields.setdefault("is_staff", True)
        fields.setdefault("is_superuser", True)
        return self.create_user(email, password, **fields)


class User(AbstractBaseUser, PermissionsMixin):
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
            # The public user list: active users, newest (highest id) first.
            models.Index(fields=["id"], name="users_active_id_idx", condition=models.Q(is_active=True)),
            # ?metadata=key:value containment (@>) filters.
            GinIndex(fields=["metadata"], name="users_metadata_gin", opclasses=["jsonb_path_ops"]),
            # The admin's email search, lower(email) LIKE 'prefix%': a pattern-ops index serves
            # LIKE whatever the database's collation (the unique index does only under "C").
            models.Index(OpClass(Lower("email"), name="text_pattern_ops"), name="users_email_like_idx"),
            # The admin's list filters on rare values: staff, and deactivated accounts.
            models.Index(fields=["id"], name="users_staff_id_idx", condition=models.Q(is_staff=True)),
            models.Index(fields=["id"], name="users_inactive_id_idx", condition=models.Q(is_active=False)),
        ]

    def __str__(self) -> str:
        return self.email
