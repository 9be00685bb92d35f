"""`manage.py createstaff`: a staff superuser from the environment, for containers and CI.

Django's `createsuperuser --noinput` cannot update an existing account and skips our services;
this command reads the environment and leaves the rest to users.services.user_staff_ensure:
the account is created like a sign-up (email normalised and unique whatever its case, password
validated) or an existing one brought up to date, so running it on every deployment is safe.
"""

import os
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.core.validators import validate_email

from users.services import user_staff_ensure

EMAIL_VARIABLE = "DJANGO_STAFF_EMAIL"
PASSWORD_VARIABLE = "DJANGO_STAFF_PASSWORD"  # noqa: S105  -- a variable's name, not a password  # nosec B105
NAME_VARIABLE = "DJANGO_STAFF_NAME"


def _messages(error: ValidationError) -> str:
    if hasattr(error, "error_dict"):
        return " ".join(message for messages in error.message_dict.values() for message in messages)
    return " ".join(error.messages)


class Command(BaseCommand):
    help = (
        f"Create or update a staff superuser from {EMAIL_VARIABLE}, {PASSWORD_VARIABLE} and "
        f"(optional, default: the email's local part) {NAME_VARIABLE}. Idempotent."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        missing = [name for name in (EMAIL_VARIABLE, PASSWORD_VARIABLE) if not os.environ.get(name, "").strip()]
        if missing:
            raise CommandError(f"Set {' and '.join(missing)} in the environment.")
        email = os.environ[EMAIL_VARIABLE].strip()
        try:
            validate_email(email)
        except ValidationError:
            raise CommandError(f"{EMAIL_VARIABLE} is not a valid email address: {email!r}") from None
        name = os.environ.get(NAME_VARIABLE, "").strip() or email.partition("@")[0]
        try:
            outcome, user = user_staff_ensure(email=email, name=name, password=os.environ[PASSWORD_VARIABLE])
        except ValidationError as error:
            raise CommandError(f"{PASSWORD_VARIABLE} or {EMAIL_VARIABLE} refused: {_messages(error)}") from None
        self.stdout.write(f"{outcome} staff user {user.email}")
