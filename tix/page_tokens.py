"""Page tokens (AIP-158): opaque to clients, a small flat JSON object inside, base64url without padding.

Every list that pages uses this one codec, so a malformed token is the same clear ``INVALID_ARGUMENT`` on
``page_token`` everywhere: whatever a client sends (not base64, not JSON, JSON nested a thousand deep, a boolean
where a number belongs, megabytes of it), decoding ends in a dict of str → int | str or in that error, never in an
exception a handler did not expect. What the values mean (an offset, a keyset position, the query a token is
bound to) is the caller's business.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping

from tix.errors import InvalidArgument

# Tokens carry a position and a fingerprint: a few dozen bytes. The cap also bounds how deep JSON can nest.
MAX_TOKEN_LENGTH = 512
_BASE64URL = re.compile(r"^[A-Za-z0-9_-]*$")
_NOT_OURS = "is not a token this service issued"

TokenValue = int | str


def encode_page_token(position: Mapping[str, TokenValue]) -> str:
    raw = json.dumps(dict(position), separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_page_token(token: str, field: str = "page_token") -> dict[str, TokenValue]:
    """The position a token holds; anything but a flat object of strings and integers is refused."""
    if len(token) > MAX_TOKEN_LENGTH or not _BASE64URL.match(token):
        raise InvalidArgument(field, _NOT_OURS)
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        data = json.loads(raw, parse_constant=_refuse_constant)
    except (ValueError, binascii.Error, RecursionError):  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise InvalidArgument(field, _NOT_OURS) from None
    if not isinstance(data, dict) or not all(_is_token_value(value) for value in data.values()):
        raise InvalidArgument(field, _NOT_OURS)
    return data


def _is_token_value(value: object) -> bool:
    # bool is an int in Python: {"o": true} must not become offset 1.
    return isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not a token value")
