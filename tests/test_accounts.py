"""Accounts (issue 17): tokens stored as digests, expiring and revocable; Argon2id; password reset
and email verification sent by the job queue through a real SMTP server on 127.0.0.1."""

import asyncio
import hashlib
import io
import json
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from email import message_from_bytes
from pathlib import Path
from threading import Event
from urllib.parse import parse_qs, urlsplit

import pytest
from aiosmtpd.controller import Controller
from django.contrib.auth.hashers import make_password
from django.core.management import call_command
from django.db import connection, transaction
from django.utils import timezone
from django_tasks import task
from django_tasks.base import TaskResultStatus
from django_tasks_db.models import DBTaskResult
from prometheus_client import REGISTRY
from rest_framework.test import APIClient

from project.devservers.live import free_port
from project.jobs.worker import Worker
from tests.conftest import client_for
from tests.factories import PASSWORD, UserFactory
from tests.live_server import BASE_DIR, request, running_gunicorn, server_environment
from users.models import AuthToken, User
from users.tasks import send_account_email
from users.tokens import token_issue
from users.verification import uid_of

pytestmark = pytest.mark.django_db
NEW_PASSWORD = "violet-tangerine-harbour-77"
ACCEPTED = {"detail": "Accepted."}


# --- a real SMTP server, and the queue's worker --------------------------------------------------


@dataclass
class Mailbox:
    """What an aiosmtpd server on 127.0.0.1 received. `hold` makes it keep the first message's
    sender waiting, after the message is stored, until the test sets it (a mail delivered whose
    sender never heard so)."""

    messages: list[tuple[list[str], bytes]] = field(default_factory=list)
    received: Event = field(default_factory=Event)
    hold: asyncio.Event | None = None
    port: int = 0
    loop: asyncio.AbstractEventLoop | None = None

    def release(self) -> None:
        """Let the held sender go (from the test's thread, into the server's event loop)."""
        if self.hold is not None and self.loop is not None:
            self.loop.call_soon_threadsafe(self.hold.set)

    async def handle_DATA(self, server: object, session: object, envelope: object) -> str:  # noqa: N802  # aiosmtpd's hook
        self.messages.append((list(envelope.rcpt_tos), envelope.content))  # type: ignore[attr-defined]
        self.received.set()
        if self.hold is not None and len(self.messages) == 1:
            await self.hold.wait()
        return "250 Message accepted for delivery"

    def to(self, address: str) -> list[str]:
        """The bodies of the messages sent to `address`."""
        bodies = []
        for recipients, content in self.messages:
            if address in recipients:
                payload = message_from_bytes(content).get_payload(decode=True)
                assert isinstance(payload, bytes)
                bodies.append(payload.decode())
        return bodies


@pytest.fixture
def mailbox(settings) -> Iterator[Mailbox]:
    box = Mailbox()
    controller = Controller(box, hostname="127.0.0.1", port=free_port())
    controller.start()
    box.port, box.loop = controller.port, controller.loop
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", controller.port
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    yield box
    box.release()
    controller.stop()


def run_jobs() -> int:
    """Run every due job in this process, as `manage.py run_jobs --until-idle` would."""
    return Worker(worker_id="test-worker").run(until_idle=True)


def link_in(body: str) -> dict[str, str]:
    """The uid and token of the one link in an email."""
    (url,) = re.findall(r"https?://\S+", body)
    query = parse_qs(urlsplit(url).query)
    return {"uid": query["uid"][0], "token": query["token"][0]}


def sign_in(client: APIClient, email: str, password: str) -> str | None:
    response = client.post("/api/auth/token/", {"email": email, "password": password}, format="json")
    return response.json()["token"] if response.status_code == 200 else None


def token_client(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


def jobs_counted(outcome: str, task_path: str) -> float:
    return REGISTRY.get_sample_value("postline_jobs_total", {"task": task_path, "outcome": outcome}) or 0.0


# --- password reset, end to end ------------------------------------------------------------------


def test_password_reset_end_to_end(api_client, mailbox) -> None:
    user = UserFactory.create(email="reset@example.com")
    old_keys = [sign_in(api_client, user.email, PASSWORD) or "" for _ in range(2)]

    response = api_client.post("/api/auth/password-reset/", {"email": "RESET@example.com"}, format="json")
    assert (response.status_code, response.json()) == (202, ACCEPTED)
    assert mailbox.messages == []  # sent by the queue, not by the request
    assert run_jobs() == 1
    (body,) = mailbox.to("reset@example.com")
    link = link_in(body)
    assert "/reset-password?" in body

    confirm = {**link, "password": NEW_PASSWORD}
    assert api_client.post("/api/auth/password-reset/confirm/", confirm, format="json").status_code == 204
    assert sign_in(api_client, user.email, PASSWORD) is None
    assert sign_in(api_client, user.email, NEW_PASSWORD) is not None
    for key in old_keys:
        assert token_client(key).get("/api/users/me/").status_code == 401
    again = api_client.post("/api/auth/password-reset/confirm/", {**link, "password": "another-" + NEW_PASSWORD})
    assert again.status_code == 400
    assert set(again.json()) == {"token"}


def test_a_reset_confirm_names_the_refused_field(api_client, mailbox) -> None:
    user = UserFactory.create(email="fields@example.com")
    api_client.post("/api/auth/password-reset/", {"email": user.email}, format="json")
    run_jobs()
    link = link_in(mailbox.to(user.email)[0])
    url = "/api/auth/password-reset/confirm/"
    cases = {
        "uid": {**link, "uid": "bm9wZQ", "password": NEW_PASSWORD},
        "token": {**link, "token": "abc-def", "password": NEW_PASSWORD},
        "password": {**link, "password": "123"},
    }
    for refused, body in cases.items():
        response = api_client.post(url, body, format="json")
        assert response.status_code == 400, response.content
        assert refused in response.json(), (refused, response.json())
    assert api_client.post(url, {"uid": "x"}, format="json").status_code == 400
    user.refresh_from_db()
    assert user.check_password(PASSWORD)  # nothing changed


def test_no_email_for_an_unknown_or_inactive_address_and_the_same_answer(api_client, mailbox) -> None:
    UserFactory.create(email="gone@example.com", is_active=False)
    known = UserFactory.create(email="known@example.com")
    answers = [
        api_client.post("/api/auth/password-reset/", {"email": email}, format="json")
        for email in ("nobody@example.com", "gone@example.com", known.email)
    ]
    assert {(r.status_code, r.content) for r in answers} == {(202, b'{"detail":"Accepted."}')}
    run_jobs()
    assert [recipients for recipients, _ in mailbox.messages] == [["known@example.com"]]


# --- email verification --------------------------------------------------------------------------


def test_sign_up_sends_a_verification_link_that_verifies(api_client, mailbox) -> None:
    sign_up = {"email": "new@example.com", "name": "New", "password": NEW_PASSWORD}
    created = api_client.post("/api/users/", sign_up, format="json")
    assert created.status_code == 201
    assert created.json()["email_verified"] is False
    run_jobs()
    (body,) = mailbox.to("new@example.com")
    assert "/verify-email?" in body
    assert api_client.post("/api/auth/verify-email/", link_in(body), format="json").status_code == 204
    me = token_client(sign_in(api_client, "new@example.com", NEW_PASSWORD) or "").get("/api/users/me/")
    assert me.json()["email_verified"] is True
    # Confirming again is harmless; a verified account is sent nothing more.
    assert api_client.post("/api/auth/verify-email/", link_in(body), format="json").status_code == 204
    resend = token_client(sign_in(api_client, "new@example.com", NEW_PASSWORD) or "")
    assert resend.post("/api/auth/verify-email/resend/").status_code == 202
    run_jobs()
    assert len(mailbox.messages) == 1


def test_a_signed_in_user_can_ask_for_the_link_again(api_client, mailbox, user) -> None:
    response = client_for(user).post("/api/auth/verify-email/resend/")
    assert (response.status_code, response.json()) == (202, ACCEPTED)
    run_jobs()
    link = link_in(mailbox.to(user.email)[0])
    assert api_client.post("/api/auth/verify-email/", link, format="json").status_code == 204
    assert api_client.post("/api/auth/verify-email/resend/").status_code == 401


def test_a_verification_token_for_another_account_or_address_is_refused(api_client, mailbox) -> None:
    first, second = UserFactory.create(), UserFactory.create()
    client_for(first).post("/api/auth/verify-email/resend/")
    run_jobs()
    link = link_in(mailbox.to(first.email)[0])
    other = api_client.post("/api/auth/verify-email/", {**link, "uid": uid_of(second)}, format="json")
    assert (other.status_code, set(other.json())) == (400, {"token"})
    User.objects.filter(pk=first.pk).update(email="changed@example.com")
    changed = api_client.post("/api/auth/verify-email/", link, format="json")
    assert (changed.status_code, set(changed.json())) == (400, {"token"})
    assert not User.objects.filter(email_verified=True).exists()


# --- tokens ------------------------------------------------------------------------------------


def test_the_token_table_holds_no_usable_token(api_client, user) -> None:
    key = sign_in(api_client, user.email, PASSWORD)
    assert key is not None
    assert key.startswith("pl_")
    assert len(key) == 67
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM auth_tokens")
        rows = cursor.fetchall()
    assert len(rows) == 1
    stored = " ".join(str(value) for value in rows[0])
    assert key not in stored
    assert key[3:] not in stored
    assert hashlib.sha512(key.encode()).hexdigest() in stored  # what is kept: the digest
    # Presenting the digest (a dump's content) signs nobody in.
    (token,) = AuthToken.objects.filter(user=user)
    assert token_client(token.digest).get("/api/users/me/").status_code == 401
    assert token_client(token.token_key).get("/api/users/me/").status_code == 401


def test_sign_in_answers_the_token_and_its_expiry(api_client, user, settings) -> None:
    response = api_client.post("/api/auth/token/", {"email": user.email, "password": PASSWORD}, format="json")
    body = response.json()
    assert set(body) == {"token", "expires"}
    (token,) = AuthToken.objects.filter(user=user)
    assert abs(token.expiry - (timezone.now() + timedelta(days=settings.AUTH_TOKEN_IDLE_DAYS))) < timedelta(minutes=1)


def test_an_expired_token_answers_401_and_a_used_one_slides(api_client, user, settings) -> None:
    key = sign_in(api_client, user.email, PASSWORD) or ""
    token = AuthToken.objects.get(user=user)
    past = timezone.now() - timedelta(days=2)
    AuthToken.objects.filter(pk=token.pk).update(last_used=past, expiry=timezone.now() + timedelta(days=1))
    assert token_client(key).get("/api/users/me/").status_code == 200
    token.refresh_from_db()
    assert token.last_used > past
    assert token.expiry > timezone.now() + timedelta(days=settings.AUTH_TOKEN_IDLE_DAYS - 1)

    AuthToken.objects.filter(pk=token.pk).update(expiry=timezone.now() - timedelta(seconds=1))
    response = token_client(key).get("/api/users/me/")
    assert response.status_code == 401
    assert response.json() == {"detail": "Invalid or expired token."}


def test_a_token_never_outlives_its_maximum_age(api_client, user, settings) -> None:
    key = sign_in(api_client, user.email, PASSWORD) or ""
    created = timezone.now() - timedelta(days=settings.AUTH_TOKEN_MAX_DAYS - 1)
    AuthToken.objects.filter(user=user).update(created=created, last_used=created)
    assert token_client(key).get("/api/users/me/").status_code == 200
    expiry = AuthToken.objects.get(user=user).expiry
    assert expiry == created + timedelta(days=settings.AUTH_TOKEN_MAX_DAYS)


def test_expired_tokens_are_deleted_by_the_command(user) -> None:
    live, _ = token_issue(user=user)
    expired = [token_issue(user=UserFactory.create())[0] for _ in range(3)]
    AuthToken.objects.filter(pk__in=[token.pk for token in expired]).update(expiry=timezone.now())
    out = io.StringIO()
    call_command("clear_expired_tokens", "--batch", "2", stdout=out)
    assert out.getvalue().strip() == "clear_expired_tokens: 3 expired tokens deleted"
    assert list(AuthToken.objects.values_list("pk", flat=True)) == [live.pk]


def test_sign_out_sign_out_everywhere_list_and_revoke(api_client, user) -> None:
    phone, laptop, tablet = (sign_in(api_client, user.email, PASSWORD) or "" for _ in range(3))
    other = UserFactory.create()
    others_token, _ = token_issue(user=other)

    assert token_client(phone).post("/api/auth/logout/").status_code == 204
    assert token_client(phone).get("/api/users/me/").status_code == 401
    assert token_client(laptop).get("/api/users/me/").status_code == 200

    listed = token_client(laptop).get("/api/auth/tokens/").json()
    assert [set(row) for row in listed] == [{"id", "created", "last_used", "expires", "user_agent"}] * 2
    tablet_id = listed[0]["id"]  # newest first: the tablet signed in last
    assert token_client(laptop).delete(f"/api/auth/tokens/{others_token.pk}/").status_code == 404
    assert token_client(laptop).delete(f"/api/auth/tokens/{tablet_id}/").status_code == 204
    assert token_client(tablet).get("/api/users/me/").status_code == 401
    assert token_client(laptop).delete(f"/api/auth/tokens/{tablet_id}/").status_code == 404

    assert token_client(laptop).post("/api/auth/logout-all/").status_code == 204
    assert token_client(laptop).get("/api/users/me/").status_code == 401
    assert not AuthToken.objects.filter(user=user).exists()
    assert AuthToken.objects.filter(user=other).exists()


def test_the_token_list_costs_two_queries(user, django_assert_num_queries) -> None:
    client = client_for(user)
    for _ in range(3):
        client_for(user)
    with django_assert_num_queries(2):  # the token (with its user), the list
        rows = client.get("/api/auth/tokens/").json()
    assert len(rows) == 4


def test_a_password_change_revokes_every_other_token(api_client, user) -> None:
    current, other = (sign_in(api_client, user.email, PASSWORD) or "" for _ in range(2))
    response = token_client(current).patch(f"/api/users/{user.pk}/", {"password": NEW_PASSWORD}, format="json")
    assert response.status_code == 200
    assert token_client(current).get("/api/users/me/").status_code == 200
    assert token_client(other).get("/api/users/me/").status_code == 401


def test_a_user_keeps_at_most_the_limit_of_tokens(api_client, user, settings) -> None:
    settings.AUTH_TOKENS_PER_USER = 3
    keys = [sign_in(api_client, user.email, PASSWORD) or "" for _ in range(5)]
    assert AuthToken.objects.filter(user=user).count() == 3
    assert [token_client(key).get("/api/users/me/").status_code for key in keys] == [401, 401, 200, 200, 200]


@pytest.mark.django_db(transaction=True)
def test_sign_out_takes_effect_on_every_worker(tmp_path: Path, user) -> None:
    with running_gunicorn(tmp_path) as server:
        body = json.dumps({"email": user.email, "password": PASSWORD}).encode()
        headers = {"Content-Type": "application/json"}
        status, _, answer = request(f"{server.base_url}/api/auth/token/", method="POST", body=body, headers=headers)
        assert status == 200
        key = json.loads(answer)["token"]
        auth = {"Authorization": f"Token {key}"}
        assert {request(f"{server.base_url}/api/users/me/", headers=auth)[0] for _ in range(6)} == {200}
        assert request(f"{server.base_url}/api/auth/logout/", method="POST", headers=auth)[0] == 204
        # New connections, so both workers answer some of them.
        assert {request(f"{server.base_url}/api/users/me/", headers=auth)[0] for _ in range(10)} == {401}


# --- password hashing --------------------------------------------------------------------------


def test_a_pbkdf2_hash_is_upgraded_to_argon2id_at_sign_in(api_client) -> None:
    user = UserFactory.create(password=make_password(PASSWORD, hasher="pbkdf2_sha256"))
    assert user.password.startswith("pbkdf2_sha256$")
    assert sign_in(api_client, user.email, PASSWORD) is not None
    user.refresh_from_db()
    assert user.password.startswith("argon2$argon2id$v=19$m=19456,t=2,p=1$")
    assert sign_in(api_client, user.email, PASSWORD) is not None


def test_a_hash_of_another_argon2_cost_is_upgraded_too(api_client, settings) -> None:
    settings.PASSWORD_ARGON2_MEMORY_KIB = 8192
    user = UserFactory.create(password=make_password(PASSWORD))
    assert "m=8192," in user.password
    settings.PASSWORD_ARGON2_MEMORY_KIB = 19_456
    assert sign_in(api_client, user.email, PASSWORD) is not None
    user.refresh_from_db()
    assert "m=19456,t=2,p=1$" in user.password


# --- the job queue -------------------------------------------------------------------------------


@task()
def always_fails() -> None:
    raise RuntimeError("the job's own failure")


def test_a_job_of_a_write_that_rolls_back_never_runs(mailbox) -> None:
    def sign_up_that_fails() -> None:
        with transaction.atomic():
            user = UserFactory.create(email="rolled-back@example.com")
            send_account_email.enqueue(user.pk, "email_verification")
            raise RuntimeError("the write fails after enqueuing")

    with pytest.raises(RuntimeError):
        sign_up_that_fails()
    assert not DBTaskResult.objects.exists()
    assert run_jobs() == 0
    assert mailbox.messages == []


def test_a_failing_job_is_retried_with_backoff_then_marked_failed(settings) -> None:
    settings.JOB_MAX_ATTEMPTS = 3
    settings.JOB_RETRY_BASE_SECONDS = 60.0
    path = f"{__name__}.always_fails"
    retried, failed = jobs_counted("retried", path), jobs_counted("failed", path)
    result = always_fails.enqueue()

    assert run_jobs() == 1
    job = DBTaskResult.objects.get(pk=result.id)
    assert job.status == TaskResultStatus.READY  # to run again, after its backoff
    assert timedelta(seconds=55) < job.run_after - timezone.now() <= timedelta(seconds=60)
    assert "the job's own failure" in job.traceback
    assert run_jobs() == 0  # not due yet

    for attempt in (2, 3):
        DBTaskResult.objects.filter(pk=job.pk).update(run_after=timezone.now())
        assert run_jobs() == 1
        job.refresh_from_db()
        assert len(job.worker_ids) == attempt
    assert job.status == TaskResultStatus.FAILED
    assert job.exception_class_path == "builtins.RuntimeError"
    assert (jobs_counted("retried", path) - retried, jobs_counted("failed", path) - failed) == (2, 1)


@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_mid_job_leaves_it_to_the_next_worker(tmp_path: Path, mailbox) -> None:
    """SIGKILL after the SMTP server stored the mail, before the worker heard it was sent: the
    job's claim rolls back, the next worker sends it again. At least once: here twice."""
    mailbox.hold = asyncio.Event()
    user = UserFactory.create(email="killed@example.com")
    result = send_account_email.enqueue(user.pk, "password_reset")
    env = {
        **server_environment(tmp_path),
        "EMAIL_HOST": "127.0.0.1",
        "EMAIL_PORT": str(mailbox.port),
        "EMAIL_USE_TLS": "false",
    }
    command = [sys.executable, "manage.py", "run_jobs", "--interval", "0.1"]
    log = tmp_path / "first-worker.log"
    with log.open("wb") as output:
        first = subprocess.Popen(command, cwd=BASE_DIR, env=env, stdout=output, stderr=subprocess.STDOUT)
    try:
        assert mailbox.received.wait(timeout=30), log.read_text()
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
    finally:
        if first.poll() is None:
            first.kill()
    mailbox.release()
    assert DBTaskResult.objects.get(pk=result.id).status == TaskResultStatus.READY

    second = subprocess.run(
        [*command, "--until-idle"], cwd=BASE_DIR, env=env, capture_output=True, timeout=60, check=False
    )
    assert second.returncode == 0, second.stderr
    job = DBTaskResult.objects.get(pk=result.id)
    assert job.status == TaskResultStatus.SUCCESSFUL
    assert len(mailbox.to("killed@example.com")) == 2
    assert link_in(mailbox.to("killed@example.com")[1])  # the second mail carries a working link


def test_run_jobs_until_idle_from_the_command_line(mailbox, user) -> None:
    """The command as scripts call it; here in-process (the test's transaction holds the job)."""
    client_for(user).post("/api/auth/verify-email/resend/")
    out = io.StringIO()
    call_command("run_jobs", "--until-idle", stdout=out)
    assert out.getvalue().strip() == "run_jobs: 1 jobs run"
    assert len(mailbox.to(user.email)) == 1
