"""Token authentication: django-rest-knox's digest check in one query, and tokens issued a
moment ago found on the primary.

Knox's own TokenAuthentication reads every token of the user on each request to delete the
expired ones (a second query per request); here expired tokens are simply not matched, and
sign-in deletes a user's expired tokens (users.tokens.token_issue).

With read replicas the token lookup is a read like any other and goes to a replica, where a
token created by POST /api/auth/token/ may not have arrived yet: the client's first request
with it would be a 401. A token not found on a replica is looked up again on the primary, so
only unknown tokens cost a second (indexed) query.
"""

from hmac import compare_digest
from typing import Any

from django.conf import settings
from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.plumbing import build_bearer_security_scheme_object
from knox.auth import TokenAuthentication as KnoxTokenAuthentication
from knox.crypto import hash_token
from knox.settings import CONSTANTS
from rest_framework.exceptions import AuthenticationFailed

from project.db.routing import primary_reads
from users.models import AuthToken
from users.tokens import token_touch

INVALID_TOKEN = "Invalid or expired token."  # noqa: S105  -- an error message  # nosec B105


def _find(key: str) -> AuthToken | None:
    digest = hash_token(key)
    candidates = AuthToken.objects.filter(token_key=key[: CONSTANTS.TOKEN_KEY_LENGTH], expiry__gt=timezone.now())
    for token in candidates.select_related("user"):
        if compare_digest(token.digest, digest):
            return token
    return None


class TokenAuthentication(KnoxTokenAuthentication):
    """`Authorization: Token <key>`; request.auth is the AuthToken (sign-out revokes it)."""

    def authenticate_credentials(self, token: bytes) -> tuple[Any, AuthToken]:
        try:
            key = token.decode("ascii")
        except UnicodeDecodeError:
            raise AuthenticationFailed(INVALID_TOKEN) from None
        found = _find(key)
        if found is None and settings.DATABASE_REPLICAS:
            with primary_reads():
                found = _find(key)
        if found is None or not found.user.is_active:
            raise AuthenticationFailed(INVALID_TOKEN)
        token_touch(found)
        return found.user, found


class TokenScheme(OpenApiAuthenticationExtension):
    """The schema's description of TokenAuthentication: `Authorization: Token <key>`."""

    target_class = TokenAuthentication
    name = "tokenAuth"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return build_bearer_security_scheme_object(header_name="Authorization", token_prefix="Token")  # noqa: S106  # nosec B106
