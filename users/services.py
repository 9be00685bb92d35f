"""Writes to users and their side effects. Views and the admin call these, nothing else saves users."""

from typing import Any

from django.contrib.auth import authenticate
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models.functions import Lower
from django.http import HttpRequest
from rest_framework.authtoken.models import Token

from project.cache import store
from users.models import User

EMAIL_TAKEN = "A user with this email already exists."
BAD_CREDENTIALS = "Unable to log in with the provided credentials."
EMAIL_CONSTRAINT = "users_email_ci_unique"


def _email_taken(email: str) -> bool:
    return User.objects.alias(email_lower=Lower("email")).filter(email_lower=email.lower()).exists()


def _check_password(password: str, user: User) -> None:
    try:
        validate_password(password, user=user)
    except ValidationError as error:
        raise ValidationError({"password": error.messages}) from None


def user_create(*, email: str, name: str, password: str) -> User:
    """Sign a user up; the email is unique whatever its case, also under concurrent sign-ups."""
    user = User(email=User.objects.normalize_email(email), name=name)
    _check_password(password, user)
    if _email_taken(user.email):
        raise ValidationError({"email": [EMAIL_TAKEN]})
    user.set_password(password)
    try:
        with transaction.atomic():
            user.save()
    except IntegrityError as error:
        # Two sign-ups raced past the check above; the constraint decided.
        if EMAIL_CONSTRAINT in str(error):
            raise ValidationError({"email": [EMAIL_TAKEN]}) from None
        raise
    _invalidate_after_commit(user)
    return user


def _invalidate_after_commit(user: User, *, renamed: bool = False) -> None:
    """The user's profile and first page of posts, and the users list; on a rename, every page
    showing author names."""
    scopes = [store.user_scope(user.pk), store.USERS_SCOPE]
    if renamed:
        scopes += [store.AUTHORS_SCOPE, store.FEED_SCOPE]
    transaction.on_commit(lambda: store.invalidate(*scopes))


def user_update(*, user: User, data: dict[str, Any]) -> User:
    """Change a user's name, metadata or password (the only fields a user may edit)."""
    changed = []
    for field in ("name", "metadata"):
        if field in data:
            setattr(user, field, data[field])
            changed.append(field)
    if "password" in data:
        _check_password(data["password"], user)
        user.set_password(data["password"])
        changed.append("password")
    if changed:
        user.save(update_fields=changed)
        _invalidate_after_commit(user, renamed="name" in changed)
    return user


@transaction.atomic
def user_deactivate(*, user: User) -> None:
    """Soft delete: the account stops appearing and logging in, its tokens stop working, posts stay."""
    user.is_active = False
    user.save(update_fields=["is_active"])
    Token.objects.filter(user=user).delete()
    _invalidate_after_commit(user)


def user_activate(*, user: User) -> None:
    user.is_active = True
    user.save(update_fields=["is_active"])
    _invalidate_after_commit(user)


def auth_token_obtain(*, request: HttpRequest | None, email: str, password: str) -> str:
    """The user's API token for valid credentials.

    An unknown email, a wrong password and a deactivated account get the same answer (and
    Django's backend hashes even for an unknown email), so the endpoint does not reveal which
    emails are registered.
    """
    user = authenticate(request, username=email, password=password)
    if user is None:
        raise ValidationError(BAD_CREDENTIALS)
    token, _ = Token.objects.get_or_create(user=user)
    return str(token.key)
