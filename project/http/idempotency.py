"""Safe retries of create requests: the `Idempotency-Key` request header.

A client that sends a POST again with the same key (after a timeout, a dropped connection, a
5xx) gets the first response again, status and body, marked `Idempotent-Replayed: true`, and
no second object. The key is kept in PostgreSQL, in the transaction of the write it guards
(project.models.IdempotencyKey): the key's row and the created object commit together or not
at all. So the guarantee holds through a Redis outage (Redis is not involved) and through a
worker killed between the commit and the response (the retry finds the committed row and
replays it); a worker killed before the commit leaves neither, and the retry runs afresh.

- Keys are scoped to the caller (the signed-in user, or the client address for sign-up) and
  kept IDEMPOTENCY_KEY_TTL_HOURS (24) hours; then the key may be used again.
- The same key with another request (method, path or data) is refused: 422.
- A retry that arrives while the first request is still running waits for it (the key's row
  is locked until the first commits) up to IDEMPOTENCY_WAIT_MS, then gets its response; past
  that it is refused with 409 and Retry-After, never run twice.
- Only successful (2xx) responses are kept: a refused request (400...) leaves no key behind,
  so the client can correct it and retry with the same key.
"""

import hashlib
import re
from collections.abc import Callable
from datetime import timedelta
from functools import wraps
from typing import Any

import orjson
from django.conf import settings
from django.db import OperationalError, connections, router, transaction
from django.http import QueryDict
from django.utils import timezone
from rest_framework import status
from rest_framework.exceptions import APIException, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import BaseThrottle

from project.db.errors import lock_not_available
from project.models import IdempotencyKey

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
_VALID_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")
INVALID_KEY = "Send 1 to 255 visible ASCII characters (a UUID, say)."
KEY_REUSED = "This Idempotency-Key was used with another request; use a new key for a new request."

_CLAIM = """
INSERT INTO idempotency_keys (scope, key, fingerprint, status, body, created_at)
VALUES (%s, %s, %s, 0, '', now())
ON CONFLICT (scope, key) DO NOTHING
RETURNING id
"""


class KeyInFlight(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "A request with this Idempotency-Key is still being processed; retry in a moment."
    default_code = "idempotency_key_in_flight"
    wait = 1  # DRF's exception handler answers it as Retry-After


class KeyReused(APIException):
    status_code = status.HTTP_422_UNPROCESSABLE_ENTITY
    default_detail = KEY_REUSED
    default_code = "idempotency_key_reused"


View = Callable[..., Response]


def idempotent(create: View) -> View:
    """Make a DRF create action honour the Idempotency-Key header."""

    @wraps(create)
    def wrapper(view: Any, request: Request, *args: Any, **kwargs: Any) -> Response:
        key = request.headers.get(HEADER)
        if key is None:
            return create(view, request, *args, **kwargs)
        if not _VALID_KEY.match(key):
            raise ValidationError({HEADER: [INVALID_KEY]})
        scope, fingerprint = _scope(request), _fingerprint(request)
        using = router.db_for_write(IdempotencyKey)
        with transaction.atomic(using=using):
            claimed = _claim(using, scope, key, fingerprint)
            if not claimed:
                return _replay(scope, key, fingerprint, using)
            response = create(view, request, *args, **kwargs)
            if status.is_success(response.status_code):
                IdempotencyKey.objects.using(using).filter(scope=scope, key=key).update(
                    status=response.status_code, body=orjson.dumps(response.data)
                )
            else:
                transaction.set_rollback(True, using=using)
            return response

    wrapper.idempotent = True  # type: ignore[attr-defined]  # read by project.http.schema
    return wrapper


def _scope(request: Request) -> str:
    if request.user and request.user.is_authenticated:
        return f"user:{request.user.pk}"
    return f"ip:{BaseThrottle().get_ident(request)}"[:80]


def _fingerprint(request: Request) -> str:
    data = request.data
    if isinstance(data, QueryDict):
        data = dict(data.lists())
    try:
        payload = orjson.dumps(data, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)
    except TypeError:
        payload = repr(data).encode()
    return hashlib.sha256(b"\n".join([str(request.method).encode(), request.path.encode(), payload])).hexdigest()


def _claim(using: str, scope: str, key: str, fingerprint: str) -> bool:
    """Insert the key's row (ours until commit), or find it taken. Waits for a request holding
    the same key to finish, at most IDEMPOTENCY_WAIT_MS; a key older than its time to live is
    taken over."""
    with connections[using].cursor() as cursor:
        cursor.execute(
            "SELECT current_setting('lock_timeout'), set_config('lock_timeout', %s, true)",
            [f"{settings.IDEMPOTENCY_WAIT_MS}ms"],
        )
        (previous, _) = cursor.fetchone()
        try:
            with transaction.atomic(using=using):
                cursor.execute(_CLAIM, [scope, key, fingerprint])
                claimed = cursor.fetchone() is not None
        except OperationalError as error:
            if lock_not_available(error):
                raise KeyInFlight from None
            raise
        cursor.execute("SELECT set_config('lock_timeout', %s, true)", [previous])
    if claimed:
        return True
    expired = timezone.now() - timedelta(hours=settings.IDEMPOTENCY_KEY_TTL_HOURS)
    if IdempotencyKey.objects.using(using).filter(scope=scope, key=key, created_at__lt=expired).delete()[0]:
        return _claim(using, scope, key, fingerprint)
    return False


def _replay(scope: str, key: str, fingerprint: str, using: str) -> Response:
    stored = IdempotencyKey.objects.using(using).filter(scope=scope, key=key).first()
    if stored is None:  # taken over and released in between: a rare race; the client retries
        raise KeyInFlight
    if stored.fingerprint != fingerprint:
        raise KeyReused
    return Response(orjson.loads(bytes(stored.body)), status=stored.status, headers={REPLAYED_HEADER: "true"})
