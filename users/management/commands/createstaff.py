"""`manage.py createstaff`: a staff superuser from the environment, for containers and CI.

Django's `createsuperuser --noinput` cannot update an existing account and skips our services;
this command creates the account through users.services.user_create (email unique whatever
its case, password validated) or brings an existing one up to date, so running it on every
deployment is safe.
"""

import os
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.core.validators import validate_email
from django.db import transaction
from django.db.models.functions import Lower

from users.models import User
from users.services import user_activate, user_create, user_update

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
        email = User.objects.normalize_email(os.environ[EMAIL_VARIABLE].strip())
        password = os.environ[PASSWORD_VARIABLE]
        try:
            validate_email(email)
        except ValidationError:
            raise CommandError(f"{EMAIL_VARIABLE} is not a valid email address: {email!r}") from None
        name = os.environ.get(NAME_VARIABLE, "").strip() or email.partition("@")[0]
        try:
            outcome, user = self._apply(email=email, password=password, name=name)
        except ValidationError as error:
            raise CommandError(f"{PASSWORD_VARIABLE} or {EMAIL_VARIABLE} refused: {_messages(error)}") from None
        self.stdout.write(f"{outcome} staff user {user.email}")

    @transaction.atomic
    def _apply(self, *, email: str, password: str, name: str) -> tuple[str, User]:
        existing = User.objects.alias(email_lower=Lower("email")).select_for_update().filter(email_lower=email.lower())
        user = existing.first()
        if user is None:
            created = user_create(email=email, name=name, password=password)
            created.is_staff = created.is_superuser = True
            created.save(update_fields=["is_staff", "is_superuser"])
            return "created", created
        changes: dict[str, Any] = {}
        if user.name != name:
            changes["name"] = name
        if not user.check_password(password):
            changes["password"] = password  # validated by user_update
        if changes:
            user_update(user=user, data=changes)
        flags = [flag for flag in ("is_staff", "is_superuser") if not getattr(user, flag)]
        for flag in flags:
            setattr(user, flag, True)
        if flags:
            user.save(update_fields=flags)
        reactivate = not user.is_active
        if reactivate:
            user_activate(user=user)
        return ("updated" if changes or flags or reactivate else "unchanged"), user
