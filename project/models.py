"""Models of the cross-cutting infrastructure (the apps own theirs)."""

from typing import ClassVar

from django.db import models
from django.utils import timezone


class IdempotencyKey(models.Model):
    """A create request's Idempotency-Key and the response it got (project/http/idempotency.py).

    Written in the transaction of the write it guards: the row and the created object commit
    together or not at all, so a retry finds either both or neither."""

    # "user:<id>" for a signed-in caller, "ip:<address>" otherwise (sign-up).
    scope = models.CharField(max_length=80)
    key = models.CharField(max_length=255)
    # SHA-256 of the method, the path and the request's data: the same key with another request is refused.
    fingerprint = models.CharField(max_length=64)
    status = models.PositiveSmallIntegerField(default=0)
    body = models.BinaryField(default=b"")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "idempotency_keys"
        constraints: ClassVar = [
            models.UniqueConstraint(fields=["scope", "key"], name="idempotency_keys_scope_key_unique"),
        ]
        indexes: ClassVar = [
            # manage.py clear_idempotency_keys: the keys past IDEMPOTENCY_KEY_TTL_HOURS.
            models.Index(fields=["created_at"], name="idempotency_keys_created_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.scope} {self.key}"
