from typing import Any

from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.views import APIView


class IsSelfOrStaff(BasePermission):
    """Only the user themself, or staff, may change or deactivate a user."""

    def has_object_permission(self, request: Request, view: APIView, obj: Any) -> bool:
        return bool(request.user.is_staff or obj.pk == request.user.pk)
