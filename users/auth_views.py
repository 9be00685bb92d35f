"""/api/auth/: sign-in and sign-out with API tokens, the token list, password reset and email
verification. The rules are in users.services, users.tokens and users.verification."""

from collections.abc import Callable
from typing import Any

from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import status
from rest_framework.exceptions import NotFound
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from users import services, tokens, verification
from users.authentication import TokenAuthentication
from users.serializers import (
    AuthTokenSerializer,
    LinkSerializer,
    PasswordResetConfirmSerializer,
    PasswordResetRequestSerializer,
    TokenRequestSerializer,
    TokenSerializer,
)

NO_CONTENT = {204: None}
INVALID_LINK = OpenApiResponse(description="A field refused: `uid`, `token` (invalid, used or expired) or `password`")
ACCEPTED = OpenApiResponse(description="Accepted: the email, if any, is sent by the job queue within seconds")


class TokenView(APIView):
    """Exchange email and password for a new API token (`Authorization: Token <token>`).

    Each sign-in issues a token of its own (one per device), stored as a digest. It stops
    working `AUTH_TOKEN_IDLE_DAYS` (30) days after its last use and at the latest
    `AUTH_TOKEN_MAX_DAYS` (365) days after sign-in, when revoked, when the password changes
    (but for the token that changed it) and when the account is deactivated."""

    permission_classes = (AllowAny,)
    authentication_classes = ()
    throttle_scope = "auth"

    @extend_schema(
        summary="Sign in: obtain an API token",
        request=TokenRequestSerializer,
        responses={200: TokenSerializer, 400: OpenApiResponse(description="Bad credentials or input")},
    )
    def post(self, request: Request) -> Response:
        body = TokenRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        token, key = services.auth_token_obtain(request=request._request, **body.validated_data)
        return Response(TokenSerializer({"token": key, "expires": token.expiry}).data)


class TokenAuthenticatedView(APIView):
    """Views that act on the token a request was made with: token authentication only."""

    authentication_classes = (TokenAuthentication,)
    permission_classes = (IsAuthenticated,)


class LogoutView(TokenAuthenticatedView):
    """Revoke the token this request was made with; the user's other tokens keep working."""

    @extend_schema(summary="Sign out: this token stops working", request=None, responses=NO_CONTENT)
    def post(self, request: Request) -> Response:
        tokens.token_revoke(user=request.user, token_id=request.auth.pk)  # type: ignore[arg-type]
        return Response(status=status.HTTP_204_NO_CONTENT)


class LogoutAllView(TokenAuthenticatedView):
    """Revoke every token of the user, this one included (a lost device, a leaked token)."""

    @extend_schema(summary="Sign out everywhere: every token of mine stops working", request=None, responses=NO_CONTENT)
    def post(self, request: Request) -> Response:
        tokens.tokens_revoke_all(user=request.user)  # type: ignore[arg-type]
        return Response(status=status.HTTP_204_NO_CONTENT)


class TokenListView(TokenAuthenticatedView):
    """The user's tokens: when each was issued and last used, when it expires, from which client."""

    @extend_schema(
        summary="My tokens that still work, newest first (never the token itself)",
        description="At most `AUTH_TOKENS_PER_USER` (100): a sign-in beyond that revokes the oldest.",
        responses=AuthTokenSerializer(many=True),
    )
    def get(self, request: Request) -> Response:
        mine = tokens.token_list(user=request.user)  # type: ignore[arg-type]
        return Response(AuthTokenSerializer(mine, many=True).data)


class TokenDetailView(TokenAuthenticatedView):
    """Revoke one of the user's tokens by its id (from the token list)."""

    @extend_schema(
        summary="Revoke one of my tokens",
        responses={204: None, 404: OpenApiResponse(description="No such token of mine")},
    )
    def delete(self, request: Request, token_id: str) -> Response:
        if not tokens.token_revoke(user=request.user, token_id=int(token_id)):  # type: ignore[arg-type]
            raise NotFound("No such token.")
        return Response(status=status.HTTP_204_NO_CONTENT)


class AnonymousAccountView(APIView):
    """Links from emails are followed by people who are not signed in; throttled like sign-in."""

    permission_classes = (AllowAny,)
    authentication_classes = ()
    throttle_scope = "auth"


class PasswordResetView(AnonymousAccountView):
    @extend_schema(
        summary="Ask for a password reset link by email",
        description="Always 202 with the same body, whether or not an account has this address; "
        "only an active account's address gets an email. The link carries `uid` and `token` and "
        "works once, for `PASSWORD_RESET_TIMEOUT` seconds (an hour).",
        request=PasswordResetRequestSerializer,
        responses={202: ACCEPTED},
    )
    def post(self, request: Request) -> Response:
        body = PasswordResetRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        services.password_reset_request(email=body.validated_data["email"])
        return _accepted()


class LinkConfirmView(AnonymousAccountView):
    """POST the fields of a link sent by email: 204 once confirmed, or 400 naming the refused field."""

    body_serializer: type[LinkSerializer]
    # The service that confirms the link's fields (a ValidationError names a refused one).
    confirm: Callable[..., object]

    def post(self, request: Request) -> Response:
        body = self.body_serializer(data=request.data)
        body.is_valid(raise_exception=True)
        self.confirm(**body.validated_data)
        return Response(status=status.HTTP_204_NO_CONTENT)


def link_confirm_schema(summary: str, description: str, request: type[LinkSerializer]) -> Any:
    return extend_schema_view(
        post=extend_schema(
            summary=summary, description=description, request=request, responses={204: None, 400: INVALID_LINK}
        )
    )


@link_confirm_schema(
    "Set a new password with a reset link's uid and token",
    "Every API token of the account stops working.",
    PasswordResetConfirmSerializer,
)
class PasswordResetConfirmView(LinkConfirmView):
    body_serializer = PasswordResetConfirmSerializer
    confirm = staticmethod(services.password_reset_confirm)


@link_confirm_schema(
    "Confirm an email address with a verification link's uid and token",
    "Sets `email_verified`. Unverified accounts keep every right; the flag is informative.",
    LinkSerializer,
)
class VerifyEmailView(LinkConfirmView):
    body_serializer = LinkSerializer
    confirm = staticmethod(verification.email_verify)


class VerifyEmailResendView(APIView):
    permission_classes = (IsAuthenticated,)
    throttle_scope = "auth"

    @extend_schema(
        summary="Send me a new verification link",
        description="202; nothing is sent when the address is already verified.",
        request=None,
        responses={202: ACCEPTED},
    )
    def post(self, request: Request) -> Response:
        services.email_verification_send(user=request.user)  # type: ignore[arg-type]
        return _accepted()


def _accepted() -> Response:
    return Response({"detail": "Accepted."}, status=status.HTTP_202_ACCEPTED)
