"""Who is calling. Envoy verifies the JWT and forwards its subject as ``x-user-id`` metadata (stripping any copy the
client sent); services read identity only through this module. The tokens' issuer and audience, the shape of a
subject and the stream tokens' claims are the contract the edge checks (``tix_dev.edge`` renders them into its
``jwt_authn`` filter); the development key pair that signs fans' tokens locally lives in ``tix_dev.tokens``.

Stream tokens: a browser's ``EventSource`` cannot send an ``Authorization`` header, so a signed-in fan asks
``CreateStreamToken`` (queue service) for a JWT of a few minutes, issued for the streams audience only, and passes it
as the ``access_token`` query parameter of a ``:watch`` route. The edge verifies it like a fan's token (its own
provider, its own keys), and the transcoder ignores the parameter.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path

from tix.errors import Unauthenticated

USER_ID_METADATA = "x-user-id"
JWT_ISSUER = "https://auth.tix.dev"
JWT_AUDIENCE = "tix"
# A subject the edge forwards: letters, digits and the punctuation identity providers use (auth0|abc, an email,
# a UUID). Anything else (a newline, a space, a quote) is refused by the edge as 401. The length is checked here
# (a bounded repetition would exceed the regex program size Envoy allows).
SUBJECT_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._:@|+=-]*"
MAX_SUBJECT_LENGTH = 128
_SUBJECT = re.compile(SUBJECT_PATTERN)

STREAM_TOKEN_ISSUER = "https://streams.tix.dev"
STREAM_TOKEN_AUDIENCE = "tix-streams"
STREAM_TOKEN_PARAMETER = "access_token"
STREAM_TOKEN_ALGORITHM = "ES256"

# Key ids of the development keys (tix_dev.tokens) and of the k8s placeholder JWKS: an edge in production refuses a
# key set that holds one of them (``tix preflight-edge``).
DEVELOPMENT_JWT_KEY_ID = "tix-dev-1"
DEVELOPMENT_STREAM_KEY_ID = "tix-dev-stream-1"
PLACEHOLDER_KEY_ID = "placeholder-replace-me"
_REFUSED_KEY_IDS = {
    DEVELOPMENT_JWT_KEY_ID: "a development key",
    DEVELOPMENT_STREAM_KEY_ID: "the development stream-token key",
    PLACEHOLDER_KEY_ID: "the placeholder key",
}


def is_valid_subject(user: str) -> bool:
    return len(user) <= MAX_SUBJECT_LENGTH and _SUBJECT.fullmatch(user) is not None


def user_id_from_metadata(metadata: Iterable[tuple[str, str | bytes]] | None) -> str | None:
    for key, value in metadata or ():
        if key == USER_ID_METADATA:
            user = value.decode(errors="replace") if isinstance(value, bytes) else value
            if is_valid_subject(user):
                return user
    return None


def require_user_id(metadata: Iterable[tuple[str, str | bytes]] | None) -> str:
    user = user_id_from_metadata(metadata)
    if user is None:
        raise Unauthenticated("UNAUTHENTICATED", "sign in first: this call needs a verified user")
    return user


def jwks_problems(path: Path) -> list[str]:
    """Why a production edge must not start with the key set at ``path``: a development or placeholder key in it
    (by key id), or no usable key at all."""
    try:
        keys = json.loads(path.read_text()).get("keys")
    except (OSError, ValueError, AttributeError) as error:
        return [f"{path}: not a readable JWKS ({type(error).__name__})"]
    if not isinstance(keys, list) or not keys:
        return [f"{path}: holds no keys"]
    problems = []
    for key in keys:
        kid = key.get("kid") if isinstance(key, dict) else None
        if kid in _REFUSED_KEY_IDS:
            problems.append(f"{path}: holds {_REFUSED_KEY_IDS[kid]} (kid {kid}): replace it with your own public keys")
    return problems
