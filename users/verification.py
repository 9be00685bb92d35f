"""Links sent by email: password reset and email verification.

A link carries `uid` (the user's id, base64) and `token` in its query string, and points at
FRONTEND_URL, whose pages post them back to the API. The jobs that send them (users.tasks)
make the token when they run, so no token is ever stored, the job's row included.

- Password reset: Django's PasswordResetTokenGenerator. The token hashes the password and the
  last sign-in, so it stops working once used (the password changed) and after
  PASSWORD_RESET_TIMEOUT seconds. Confirming revokes every API token of the user.
- Email verification: the address signed with SECRET_KEY (django.core.signing), valid for
  EMAIL_VERIFICATION_TIMEOUT seconds and only while the account has that address; confirming
  twice is harmless.
"""

from django.conf import settings
from django.contrib.auth.tokens import default_token_generator
from django.core import signing
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.encoding import force_bytes, force_str
from django.utils.http import urlsafe_base64_decode, urlsafe_base64_encode

from users import selectors
from users.models import User

INVALID_UID = "This link is invalid: no such account."
INVALID_TOKEN = "This link is invalid or has expired; ask for a new one."  # noqa: S105  -- an error message  # nosec B105
VERIFICATION_SALT = "users.verification.email"


def _refused(field: str, message: str) -> ValidationError:
    """A link's uid or token refused: the 400 answer names which."""
    return ValidationError({field: [message]})


def uid_of(user: User) -> str:
    return urlsafe_base64_encode(force_bytes(user.pk))


def user_of(uid: str) -> User:
    """The active account a link's uid names, or a ValidationError naming "uid"."""
    try:
        user_id = int(force_str(urlsafe_base64_decode(uid)))
    except (ValueError, TypeError, OverflowError):
        raise _refused("uid", INVALID_UID) from None
    user = selectors.user_get(user_id=user_id) if 0 < user_id < 2**63 else None
    if user is None:
        raise _refused("uid", INVALID_UID)
    return user


def password_reset_token(user: User) -> str:
    return default_token_generator.make_token(user)


def password_reset_check(*, uid: str, token: str) -> User:
    """The user a password reset link is for, or a ValidationError naming the refused field."""
    user = user_of(uid)
    if not user.has_usable_password() or not default_token_generator.check_token(user, token):
        raise _refused("token", INVALID_TOKEN)
    return user


def verification_token(user: User) -> str:
    return signing.dumps([user.pk, user.email], salt=VERIFICATION_SALT, compress=True)


def email_verify(*, uid: str, token: str) -> User:
    """Mark the address a verification link was sent to as verified, or a ValidationError naming the refused field."""
    user = user_of(uid)
    try:
        user_id, email = signing.loads(token, salt=VERIFICATION_SALT, max_age=settings.EMAIL_VERIFICATION_TIMEOUT)
    except (signing.BadSignature, ValueError, TypeError):
        raise _refused("token", INVALID_TOKEN) from None
    if user_id != user.pk or email != user.email:
        raise _refused("token", INVALID_TOKEN)
    if not user.email_verified:
        with transaction.atomic():
            user.email_verified = True
            user.save(update_fields=["email_verified"])
    return user
