"""Jobs of the users app, run by the job queue's worker (project/jobs)."""

from datetime import timedelta
from typing import Literal
from urllib.parse import urlencode

from django.conf import settings
from django.core.mail import send_mail
from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.timesince import timeuntil
from django_tasks import task

from users import selectors, verification

AccountEmail = Literal["password_reset", "email_verification"]

SUBJECTS: dict[str, str] = {
    "password_reset": "Reset your Postline password",  # nosec B105  -- a subject line
    "email_verification": "Confirm your email address for Postline",
}
PAGES: dict[str, str] = {"password_reset": "reset-password", "email_verification": "verify-email"}  # nosec B105


@task()
def send_account_email(user_id: int, kind: AccountEmail) -> str:
    """Send a password reset or verification link to the user, if the account still wants one
    when the job runs (still active; not verified meanwhile). The link's token is made here, so
    none is stored; a job run twice sends two working links."""
    user = selectors.user_get(user_id=user_id)
    if user is None or (kind == "email_verification" and user.email_verified):
        return "skipped"
    if kind == "password_reset":
        token, lifetime = verification.password_reset_token(user), settings.PASSWORD_RESET_TIMEOUT
    else:
        token, lifetime = verification.verification_token(user), settings.EMAIL_VERIFICATION_TIMEOUT
    query = urlencode({"uid": verification.uid_of(user), "token": token})
    link = f"{settings.FRONTEND_URL.rstrip('/')}/{PAGES[kind]}?{query}"
    now = timezone.now()
    valid_for = timeuntil(now + timedelta(seconds=lifetime), now)  # "1 hour", "1 week"
    body = render_to_string(f"emails/{kind}.txt", {"user": user, "link": link, "valid_for": valid_for})
    send_mail(SUBJECTS[kind], body, None, [user.email])
    return "sent"
