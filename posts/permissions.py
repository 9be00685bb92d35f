from typing import Any

from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.request import Request
from rest_framework.views import APIView


class IsAuthorOrStaff(BasePermission):
    """Anyone reads a post; only its author, or staff, changes or deletes it."""

    def has_object_permission(self, request: Request, view: APIView, obj: Any) -> bool:
        if request.method in SAFE_METHODS:
            return True
        return bool(request.user.is_staff or obj.author_id == request.user.pk)
