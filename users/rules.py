"""What a user's metadata may hold: the limits and the check the API and the admin share.

A module of its own, below both users.serializers (the API's MetadataField) and users.admin (the
admin's metadata textarea), so that neither restates the limits nor imports the other. Not a
validator on the model field: validators are written into migrations, and the admin's form
would then report every error twice.
"""

import json
from typing import Any

METADATA_MAX_BYTES = 4096
METADATA_MAX_KEYS = 50
METADATA_MAX_DEPTH = 5
METADATA_LIMITS = f"at most {METADATA_MAX_KEYS} keys, {METADATA_MAX_DEPTH} levels, {METADATA_MAX_BYTES} bytes"


def _contains_nul(value: Any) -> bool:
    """PostgreSQL's jsonb cannot store U+0000, so such input must be a 400, not a 500."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_contains_nul(key) or _contains_nul(item) for key, item in value.items())
    if isinstance(value, list):
        return any(_contains_nul(item) for item in value)
    return False


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((_depth(item) for item in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(item) for item in value), default=0)
    return 0


def _size_error(value: dict[str, Any]) -> str | None:
    try:
        size = len(json.dumps(value, ensure_ascii=False).encode())
    except UnicodeEncodeError:
        # A lone surrogate ("\ud800" in the JSON text) has no UTF-8 form: jsonb cannot store it.
        return "Lone surrogates are not allowed."
    return f"At most {METADATA_MAX_BYTES} bytes as JSON." if size > METADATA_MAX_BYTES else None


def metadata_error(value: Any) -> str | None:
    """Why `value` cannot be a user's metadata, or None."""
    if not isinstance(value, dict):
        return "Must be a JSON object."
    if len(value) > METADATA_MAX_KEYS:
        return f"At most {METADATA_MAX_KEYS} keys."
    if _depth(value) > METADATA_MAX_DEPTH:
        return f"Nested at most {METADATA_MAX_DEPTH} levels deep."
    if _contains_nul(value):
        return "Null characters are not allowed."
    return _size_error(value)
