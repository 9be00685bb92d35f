"""API tokens: several per user (one per device), stored as digests, expiring, revocable.

django-rest-knox's token model (users.models.AuthToken) and hashing: a client holds
`TOKEN_PREFIX` + 64 random hex characters (256 bits) and the table only their SHA-512, so a
database dump gives no usable token; the first 15 characters, indexed, find the row to compare.

Expiry is sliding: a token expires AUTH_TOKEN_IDLE_DAYS after its last use, and at the latest
AUTH_TOKEN_MAX_DAYS after it was issued. Its use is written down (last_used, and the expiry
moved on) at most once per AUTH_TOKEN_TOUCH_SECONDS: one UPDATE a minute per busy token, not
one per request. The sign-in that issues a token is its first use.
"""

from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from project.db.maintenance import delete_in_batches
from users.models import AuthToken, User

USER_AGENT_LENGTH = 200


def idle_lifetime() -> timedelta:
    return timedelta(days=settings.AUTH_TOKEN_IDLE_DAYS)


@transaction.atomic
def token_issue(*, user: User, user_agent: str = "") -> tuple[AuthToken, str]:
    """A new token for `user` (sign-in), and the key to hand to the client once. The user's
    expired tokens are deleted on the way (their rows would serve nobody), and their oldest
    beyond AUTH_TOKENS_PER_USER revoked, so a user's tokens always fit one list."""
    AuthToken.objects.filter(user=user, expiry__lte=timezone.now()).delete()
    token, key = AuthToken.objects.create(
        user=user, expiry=idle_lifetime(), last_used=timezone.now(), user_agent=user_agent[:USER_AGENT_LENGTH]
    )
    surplus = token_list(user=user).values_list("id", flat=True)[settings.AUTH_TOKENS_PER_USER :]
    if surplus_ids := list(surplus):
        AuthToken.objects.filter(pk__in=surplus_ids).delete()
    return token, key


def token_touch(token: AuthToken) -> None:
    """Record a use of `token` (authentication calls this on every request; it writes rarely)."""
    now = timezone.now()
    if token.last_used is not None and (now - token.last_used).total_seconds() < settings.AUTH_TOKEN_TOUCH_SECONDS:
        return
    token.last_used = now
    token.expiry = min(now + idle_lifetime(), token.created + timedelta(days=settings.AUTH_TOKEN_MAX_DAYS))
    AuthToken.objects.filter(pk=token.pk).update(last_used=token.last_used, expiry=token.expiry)


def token_list(*, user: User) -> QuerySet[AuthToken]:
    """The user's tokens that still work, most recently issued first."""
    return AuthToken.objects.filter(user=user, expiry__gt=timezone.now()).order_by("-created", "-id")


def token_revoke(*, user: User, token_id: int) -> bool:
    """Revoke one of the user's tokens; False when they have no such token."""
    deleted, _ = AuthToken.objects.filter(user=user, pk=token_id).delete()
    return bool(deleted)


def tokens_revoke_all(*, user: User, keep: AuthToken | None = None) -> None:
    """Revoke every token of the user, but `keep` (the one a password change was made with)."""
    tokens = AuthToken.objects.filter(user=user)
    if keep is not None:
        tokens = tokens.exclude(pk=keep.pk)
    tokens.delete()


def tokens_delete_expired(*, batch: int = 10_000) -> int:
    """Delete every expired token, `batch` rows per statement (short locks); how many."""
    return delete_in_batches(AuthToken.objects.filter(expiry__lte=timezone.now()), batch=batch)
