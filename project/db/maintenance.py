"""Housekeeping writes that must not lock a big table for long."""

from django.db.models import Model, QuerySet


def delete_in_batches(rows: QuerySet[Model], *, batch: int) -> int:
    """Delete `rows`, `batch` at a time (one short statement each); how many were deleted."""
    deleted = 0
    while True:
        ids = list(rows.order_by().values_list("pk", flat=True)[:batch])
        count, _ = rows.model._default_manager.filter(pk__in=ids).delete()
        deleted += count
        if count < batch:
            return deleted
