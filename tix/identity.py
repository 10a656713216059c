"""Who is calling. Envoy verifies the JWT and forwards its subject as ``x-user-id`` metadata (stripping any copy the
client sent); services read identity only through this module. The tokens' issuer and audience are the contract
the edge checks; the development key pair that signs them locally lives in ``tix_dev.tokens``.
"""

from __future__ import annotations

from collections.abc import Iterable

from tix.errors import Unauthenticated

USER_ID_METADATA = "x-user-id"
JWT_ISSUER = "https://auth.tix.dev"
JWT_AUDIENCE = "tix"
_MAX_USER_ID = 128


def user_id_from_metadata(metadata: Iterable[tuple[str, str | bytes]] | None) -> str | None:
    for key, value in metadata or ():
        if key == USER_ID_METADATA:
            user = value.decode() if isinstance(value, bytes) else value
            if 0 < len(user) <= _MAX_USER_ID:
                return user
    return None


def require_user_id(metadata: Iterable[tuple[str, str | bytes]] | None) -> str:
    user = user_id_from_metadata(metadata)
    if user is None:
        raise Unauthenticated("UNAUTHENTICATED", "sign in first: this call needs a verified user")
    return user
