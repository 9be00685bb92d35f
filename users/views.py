from typing import Any

import orjson
from django.http import HttpResponse
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.permissions import AllowAny, BasePermission, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response

from project.cache import store
from project.http.api import ID_PATTERN
from project.http.idempotency import idempotent
from users import selectors, services
from users.models import AuthToken, User
from users.permissions import IsSelfOrStaff
from users.serializers import (
    UserCreateSerializer,
    UserListQuerySerializer,
    UserPrivateSerializer,
    UserProfileSerializer,
    UserPublicSerializer,
    UserUpdateSerializer,
)


def public_profile_read(user_id: int) -> store.CachedRead:
    """A user's cached public profile; the private one (with email) is never cached."""
    return store.CachedRead("user-profile", (user_id,), (store.user_scope(user_id),))


@extend_schema_view(
    list=extend_schema(summary="Active users, newest first", parameters=[UserListQuerySerializer]),
    create=extend_schema(
        summary="Sign up",
        request=UserCreateSerializer,
        responses={201: UserPrivateSerializer, 400: OpenApiResponse(description="Invalid or taken field")},
    ),
    retrieve=extend_schema(
        summary="A user's profile (email only for the user themself and staff)", responses=UserProfileSerializer
    ),
    partial_update=extend_schema(
        summary="Change name, metadata or password (self or staff)",
        request=UserUpdateSerializer,
        responses=UserPrivateSerializer,
    ),
    destroy=extend_schema(summary="Deactivate (self or staff); posts stay", responses={204: None}),
)
class UserViewSet(viewsets.GenericViewSet):
    queryset = User.objects.none()
    serializer_class = UserPublicSerializer
    lookup_value_regex = ID_PATTERN
    http_method_names = ("get", "post", "patch", "delete", "head", "options")

    def get_permissions(self) -> list[BasePermission]:
        if self.action in {"me", "partial_update", "destroy"}:
            return [IsAuthenticated(), IsSelfOrStaff()]
        return [AllowAny()]

    def _get_user(self, *, include_inactive: bool = False, public: bool = False) -> User:
        """The user of the URL; `public`: an active user with only the columns anyone may see."""
        user_id = int(self.kwargs["pk"])
        if public:
            user = selectors.user_public_get(user_id=user_id)
        else:
            user = selectors.user_get(user_id=user_id, include_inactive=include_inactive)
        if user is None:
            raise NotFound("No such user.")
        self.check_object_permissions(self.request, user)
        return user

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response | HttpResponse:
        query = UserListQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        metadata = query.validated_data.get("metadata")

        def page() -> Any:
            users = self.paginate_queryset(selectors.user_list(metadata=metadata))
            return self.get_paginated_response(UserPublicSerializer(users, many=True).data).data

        # The unfiltered first page is the hot one; filtered and later pages are computed.
        read = None if metadata else store.first_page_read(request, "user-list", (), (store.USERS_SCOPE,))
        return store.page_response(request, read, page)

    @idempotent
    def create(self, request: Request) -> Response:
        body = UserCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        user = services.user_create(**body.validated_data)
        return Response(UserPrivateSerializer(user).data, status=status.HTTP_201_CREATED)

    def _sees_private_profile(self) -> bool:
        return bool(self.request.user.is_staff or self.request.user.pk == int(self.kwargs["pk"]))

    def retrieve(self, request: Request, pk: str) -> HttpResponse:
        if self._sees_private_profile():
            user = self._get_user(include_inactive=request.user.is_staff)
            return store.json_response(request, orjson.dumps(UserPrivateSerializer(user).data))
        body = store.cached_json(
            public_profile_read(int(pk)),
            compute=lambda: UserPublicSerializer(self._get_user(public=True)).data,
        )
        return store.json_response(request, body)

    def partial_update(self, request: Request, pk: str) -> Response:
        user = self._get_user(include_inactive=request.user.is_staff)
        body = UserUpdateSerializer(data=request.data, partial=True)
        body.is_valid(raise_exception=True)
        current_token = request.auth if isinstance(request.auth, AuthToken) and request.user.pk == user.pk else None
        services.user_update(user=user, data=body.validated_data, current_token=current_token)
        return Response(UserPrivateSerializer(user).data)

    def destroy(self, request: Request, pk: str) -> Response:
        services.user_deactivate(user=self._get_user())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(summary="The signed-in user", responses=UserPrivateSerializer)
    @action(detail=False, methods=["get"])
    def me(self, request: Request) -> Response:
        user = selectors.user_get(user_id=request.user.pk)  # type: ignore[arg-type]  # IsAuthenticated
        return Response(UserPrivateSerializer(user).data)
