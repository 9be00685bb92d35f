"""Argon2id, at a cost the service can carry.

Django's default PBKDF2 (1,000,000 rounds) costs ~0.58 s of CPU per hash on our machines, which
made a sign-in take 4 s at the median under the soak's load. Argon2id at OWASP's recommended
minimum (19 MiB, 2 passes, 1 lane) costs ~31 ms and resists GPU cracking better. The cost comes
from settings (PASSWORD_ARGON2_*): Django re-hashes a password at its owner's next sign-in
whenever the first hasher or its parameters change, PBKDF2 hashes from before included.
"""

from django.conf import settings
from django.contrib.auth.hashers import Argon2PasswordHasher


class Argon2idHasher(Argon2PasswordHasher):
    """Django's Argon2 hasher (same "argon2" algorithm name and format) with the settings' cost."""

    @property
    def time_cost(self) -> int:  # type: ignore[override]
        return int(settings.PASSWORD_ARGON2_TIME_COST)

    @property
    def memory_cost(self) -> int:  # type: ignore[override]
        return int(settings.PASSWORD_ARGON2_MEMORY_KIB)

    @property
    def parallelism(self) -> int:  # type: ignore[override]
        return int(settings.PASSWORD_ARGON2_PARALLELISM)
