"""Writes to users and their side effects. Views, the admin and commands call these; nothing else saves users."""

from typing import Any, Literal

from django.contrib.auth import authenticate
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.http import HttpRequest

from project.cache import store
from users import selectors, tokens, verification
from users.models import AuthToken, User
from users.tasks import send_account_email

EMAIL_TAKEN = "A user with this email already exists."
BAD_CREDENTIALS = "Unable to log in with the provided credentials."
EMAIL_CONSTRAINT = "users_email_ci_unique"


def _password_errors(password: str, user: User) -> list[str]:
    try:
        validate_password(password, user=user)
    except ValidationError as error:
        return error.messages
    return []


def user_create_check(*, email: str, name: str, password: str) -> User:
    """The account user_create would save, unsaved, or a ValidationError naming every refused field.

    The email is normalised (User.objects.normalize_email) and must be free whatever its case;
    the password must pass the validators, which compare it with the email and name. Forms call
    this to show every error before anything is saved (the admin's add form).
    """
    user = User(email=User.objects.normalize_email(email), name=name)
    errors: dict[str, list[str]] = {}
    if password_errors := _password_errors(password, user):
        errors["password"] = password_errors
    if selectors.user_get_by_email(email=user.email) is not None:
        errors["email"] = [EMAIL_TAKEN]
    if errors:
        raise ValidationError(errors)
    return user


def user_create(*, email: str, name: str, password: str) -> User:
    """Sign a user up; the email is unique whatever its case, also under concurrent sign-ups."""
    user = user_create_check(email=email, name=name, password=password)
    user.set_password(password)
    try:
        with transaction.atomic():
            user.save()
            # In the sign-up's transaction: no email for an account that was not created.
            send_account_email.enqueue(user.pk, "email_verification")
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


@transaction.atomic
def user_update(*, user: User, data: dict[str, Any], current_token: AuthToken | None = None) -> User:
    """Change a user's name, metadata or password (the only fields a user may edit). A new
    password revokes every API token of the user but `current_token`, the one it was changed with."""
    changed = []
    for field in ("name", "metadata"):
        if field in data:
            setattr(user, field, data[field])
            changed.append(field)
    if "password" in data:
        if errors := _password_errors(data["password"], user):
            raise ValidationError({"password": errors})
        user.set_password(data["password"])
        changed.append("password")
    if changed:
        user.save(update_fields=changed)
        _invalidate_after_commit(user, renamed="name" in changed)
    if "password" in changed:
        tokens.tokens_revoke_all(user=user, keep=current_token)
    return user


@transaction.atomic
def user_deactivate(*, user: User) -> None:
    """Soft delete: the account stops appearing and logging in, its tokens stop working, posts stay."""
    user.is_active = False
    user.save(update_fields=["is_active"])
    tokens.tokens_revoke_all(user=user)
    _invalidate_after_commit(user)


def user_activate(*, user: User) -> None:
    user.is_active = True
    user.save(update_fields=["is_active"])
    _invalidate_after_commit(user)


def user_staff_set(*, user: User, is_staff: bool, is_superuser: bool) -> None:
    """Staff and superuser flags. Nothing to invalidate: no cached response shows them (the
    private profile, which does, is never cached) and authentication reads them from the
    database on every request."""
    user.is_staff, user.is_superuser = is_staff, is_superuser
    user.save(update_fields=["is_staff", "is_superuser"])


@transaction.atomic
def user_staff_ensure(
    *, email: str, name: str, password: str
) -> tuple[Literal["created", "updated", "unchanged"], User]:
    """An active staff superuser with this email (whatever its case), name and password: created,
    or the existing account brought up to date (locked meanwhile), so it is safe to run on every
    deployment (manage.py createstaff)."""
    user = selectors.user_get_by_email(email=email, for_update=True)
    if user is None:
        user = user_create(email=email, name=name, password=password)
        user_staff_set(user=user, is_staff=True, is_superuser=True)
        return "created", user
    changes: dict[str, Any] = {}
    if user.name != name:
        changes["name"] = name
    if not user.check_password(password):
        changes["password"] = password
    if changes:
        user_update(user=user, data=changes)
    promote = not (user.is_staff and user.is_superuser)
    if promote:
        user_staff_set(user=user, is_staff=True, is_superuser=True)
    reactivate = not user.is_active
    if reactivate:
        user_activate(user=user)
    return ("updated" if changes or promote or reactivate else "unchanged"), user


def auth_token_obtain(*, request: HttpRequest | None, email: str, password: str) -> tuple[AuthToken, str]:
    """A new API token (and its key, shown once) for valid credentials: one per sign-in, so one
    per device.

    An unknown email, a wrong password and a deactivated account get the same answer (and
    Django's backend hashes even for an unknown email), so the endpoint does not reveal which
    emails are registered. A password hashed with an older hasher or cost is re-hashed here.
    """
    user = authenticate(request, username=email, password=password)
    if user is None:
        raise ValidationError(BAD_CREDENTIALS)
    user_agent = request.headers.get("User-Agent", "") if request is not None else ""
    return tokens.token_issue(user=user, user_agent=user_agent)


def password_reset_request(*, email: str) -> None:
    """Email a reset link to the active account with this address, if there is one. Callers
    answer the same whatever happened, so the endpoint does not reveal which emails exist."""
    user = selectors.user_get_by_email(email=email)
    if user is not None and user.is_active and user.has_usable_password():
        send_account_email.enqueue(user.pk, "password_reset")


@transaction.atomic
def password_reset_confirm(*, uid: str, token: str, password: str) -> User:
    """Set the password a reset link was sent for and revoke every API token of the user; a
    ValidationError names the refused field (uid, token or password)."""
    user = verification.password_reset_check(uid=uid, token=token)
    if errors := _password_errors(password, user):
        raise ValidationError({"password": errors})
    user.set_password(password)
    user.save(update_fields=["password"])
    tokens.tokens_revoke_all(user=user)
    return user


def email_verification_send(*, user: User) -> bool:
    """Send the user a new verification link; False (nothing sent) when already verified."""
    if user.email_verified:
        return False
    send_account_email.enqueue(user.pk, "email_verification")
    return True
