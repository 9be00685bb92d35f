"""DRF token authentication that also knows tokens issued a moment ago.

With read replicas the token lookup is a read like any other and goes to a replica, where a
token created by POST /api/auth/token/ may not have arrived yet: the client's first request
with it would be a 401. A token not found on a replica is looked up again on the primary,
so only unknown tokens cost a second (indexed) query.
"""

from typing import Any

from django.conf import settings
from rest_framework import authentication
from rest_framework.exceptions import AuthenticationFailed

from project.db.routing import primary_reads


class TokenAuthentication(authentication.TokenAuthentication):
    def authenticate_credentials(self, key: str) -> tuple[Any, Any]:
        try:
            return super().authenticate_credentials(key)
        except AuthenticationFailed:
            if not settings.DATABASE_REPLICAS:
                raise
        with primary_reads():
            return super().authenticate_credentials(key)
