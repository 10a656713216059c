"""Small input checks shared by servicers; each failure is an InvalidArgument naming the field."""

from __future__ import annotations

import re
import uuid

from tix.errors import InvalidArgument

_NUMERIC_ID = re.compile(r"^[1-9][0-9]{0,17}$")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")


def require_numeric_id(value: str, field: str) -> int:
    """Ids of catalog resources are positive integers rendered as strings."""
    if not value:
        raise InvalidArgument(field, "is required")
    if not _NUMERIC_ID.match(value):
        raise InvalidArgument(field, f"{value[:40]!r} is not a valid id")
    return int(value)


def require_uuid(value: str, field: str) -> uuid.UUID:
    if not value:
        raise InvalidArgument(field, "is required")
    try:
        return uuid.UUID(value)
    except ValueError:
        raise InvalidArgument(field, f"{value[:40]!r} is not a valid id") from None


def optional_request_id(value: str, field: str = "request_id") -> str | None:
    """AIP-155 request ids: optional; when given, 1-128 URL-safe characters."""
    if not value:
        return None
    if not _REQUEST_ID.match(value):
        raise InvalidArgument(field, "must be 1-128 characters of letters, digits, '.', '_', ':' or '-'")
    return value


def page_size(value: int, *, default: int = 20, maximum: int = 100, field: str = "page_size") -> int:
    """AIP-158: negative is an error, 0 means the default, large values are clamped."""
    if value < 0:
        raise InvalidArgument(field, "must not be negative")
    return default if value == 0 else min(value, maximum)
