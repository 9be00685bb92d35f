import asyncio
from typing import Any

import orjson
from adrf.views import APIView as AsyncAPIView
from asgiref.sync import sync_to_async
from django.conf import settings
from django.http import HttpResponse
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.permissions import AllowAny, BasePermission, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from posts.selectors import post_list
from posts.serializers import PostSerializer
from project import caching
from users import enrichment, selectors, services
from users.models import User
from users.permissions import IsSelfOrStaff
from users.serializers import (
    TokenRequestSerializer,
    TokenSerializer,
    UserCreateSerializer,
    UserListQuerySerializer,
    UserOverviewResponseSerializer,
    UserOverviewSerializer,
    UserPrivateSerializer,
    UserProfileSerializer,
    UserPublicSerializer,
    UserUpdateSerializer,
)

# Ids are bigints: more digits cannot name a row, and would overflow in PostgreSQL.
ID_PATTERN = r"[0-9]{1,18}"


def public_profile_read(user_id: int) -> caching.CachedRead:
    """A user's cached public profile; the private one (with email) is never cached."""
    return caching.CachedRead("user-profile", (user_id,), (caching.user_scope(user_id),))


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
        read = None if metadata else caching.first_page_read(request, "user-list", (), (caching.USERS_SCOPE,))
        return caching.page_response(request, read, page)

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
            return caching.json_response(request, orjson.dumps(UserPrivateSerializer(user).data))
        body = caching.cached_json(
            public_profile_read(int(pk)),
            compute=lambda: UserPublicSerializer(self._get_user(public=True)).data,
        )
        return caching.json_response(request, body)

    def partial_update(self, request: Request, pk: str) -> Response:
        user = self._get_user(include_inactive=request.user.is_staff)
        body = UserUpdateSerializer(data=request.data, partial=True)
        body.is_valid(raise_exception=True)
        services.user_update(user=user, data=body.validated_data)
        return Response(UserPrivateSerializer(user).data)

    def destroy(self, request: Request, pk: str) -> Response:
        services.user_deactivate(user=self._get_user())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(summary="The signed-in user", responses=UserPrivateSerializer)
    @action(detail=False, methods=["get"])
    def me(self, request: Request) -> Response:
        user = selectors.user_get(user_id=request.user.pk)  # type: ignore[arg-type]  # IsAuthenticated
        return Response(UserPrivateSerializer(user).data)

    @extend_schema(summary="A user's posts, newest first", responses=PostSerializer(many=True))
    @action(detail=True, methods=["get"])
    def posts(self, request: Request, pk: str) -> Response | HttpResponse:
        user_id = int(pk)

        def page() -> Any:
            posts = self.paginate_queryset(post_list(author_id=user_id))
            # An empty page is a user without posts (there) or no user at all (a 404): only then
            # does the user's row need a query of its own.
            if not posts and not User.objects.filter(pk=user_id).exists():
                raise NotFound("No such user.")
            return self.get_paginated_response(PostSerializer(posts, many=True).data).data

        read = caching.first_page_read(request, "user-posts", (user_id,), (caching.user_scope(user_id),))
        return caching.page_response(request, read, page)


class TokenView(APIView):
    """Exchange email and password for the API token (`Authorization: Token <token>`)."""

    permission_classes = (AllowAny,)
    authentication_classes = ()
    throttle_scope = "auth"

    @extend_schema(
        summary="Obtain an API token",
        request=TokenRequestSerializer,
        responses={200: TokenSerializer, 400: OpenApiResponse(description="Bad credentials or input")},
    )
    def post(self, request: Request) -> Response:
        body = TokenRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        token = services.auth_token_obtain(request=request._request, **body.validated_data)
        return Response({"token": token})


class UserOverviewView(AsyncAPIView):
    """Profile, latest posts and post count, with the external enrichment fetched meanwhile.

    The database part (one query, or the cache) runs on Django's sync thread while the
    outbound call waits on the event loop, so the response takes about the longer of the
    two, not their sum.
    """

    permission_classes = (AllowAny,)

    @staticmethod
    def _profile(user_id: int) -> bytes:
        def compute() -> Any:
            user = selectors.user_overview(user_id=user_id)
            if user is None:
                raise NotFound("No such user.")
            return UserOverviewSerializer(user).data

        return caching.cached_json(
            caching.CachedRead("user-overview", (user_id,), (caching.user_scope(user_id),)), compute=compute
        )

    @extend_schema(
        summary="A user's profile, latest posts and external enrichment", responses=UserOverviewResponseSerializer
    )
    async def get(self, request: Request, pk: str) -> HttpResponse:
        user_id = int(pk)
        profile, external = await asyncio.gather(
            sync_to_async(self._profile)(user_id), enrichment.fetch_enrichment(user_id)
        )
        overview = orjson.loads(profile)
        overview["external"] = external
        overview["degraded"] = bool(settings.PROFILE_ENRICHMENT_URL) and external is None
        return caching.json_response(request, orjson.dumps(overview))
