"""Reads of users. Views and the cache layer call these; nothing else builds user querysets."""

from django.db.models import QuerySet

from users.models import User, email_matches

# The columns of a user anyone may see (users.serializers.UserPublicSerializer): public reads
# load these only, not the password hash, email, last_login and flags nobody shows.
PUBLIC_FIELDS = ("id", "name", "metadata", "created_at", "post_count")


def user_list(*, metadata: dict[str, str] | None = None) -> QuerySet[User]:
    """Active users, newest first by what the list shows, created_at (id breaks ties, so the
    cursor seeks on both): the partial index users_active_created_idx serves it. Ordered by id,
    concurrent sign-ups could show created_at going backwards down a page (ids are handed out
    before the commit, created_at before the id)."""
    users = User.objects.filter(is_active=True).only(*PUBLIC_FIELDS)
    if metadata:
        users = users.filter(metadata__contains=metadata)
    return users.order_by("-created_at", "-id")


def user_get(*, user_id: int, include_inactive: bool = False) -> User | None:
    """The whole user: for the private profile and for services (passwords, flags, email)."""
    users = User.objects.all()
    if not include_inactive:
        users = users.filter(is_active=True)
    return users.filter(pk=user_id).first()


def user_get_by_email(*, email: str, for_update: bool = False) -> User | None:
    """The user, active or not, whose email is `email` whatever its case; `for_update` locks
    their row until the caller's transaction ends."""
    users = User.objects.filter(email_matches(email))
    if for_update:
        users = users.select_for_update()
    return users.first()


def user_public_get(*, user_id: int) -> User | None:
    """An active user's public profile: only the columns anyone may see."""
    return User.objects.filter(pk=user_id, is_active=True).only(*PUBLIC_FIELDS).first()


def user_exists(*, user_id: int) -> bool:
    """Whether the id names a user, active or not (a deactivated author's posts stay listed)."""
    return User.objects.filter(pk=user_id).exists()
