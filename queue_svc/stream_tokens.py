"""Stream tokens: short-lived JWTs a signed-in fan's browser passes as ``?access_token=`` to open an ``EventSource``
(which cannot send an ``Authorization`` header). The queue service signs them with an EC P-256 key (ES256); the edge
verifies them with the public half, as a provider of their own accepted only on stream routes, so a stream token is
useless anywhere else and a fan's long-lived token never appears in a URL. ``tix.identity`` holds the claims'
contract (issuer, audience, parameter)."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from tix.identity import STREAM_TOKEN_ALGORITHM, STREAM_TOKEN_AUDIENCE, STREAM_TOKEN_ISSUER


@dataclass(frozen=True)
class StreamToken:
    token: str
    expires_at: float


def load_signing_key(private_key_pem: str) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(private_key_pem.encode(), None)
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise ValueError("the stream-token key must be an EC P-256 private key (PEM), for ES256")
    return key


class StreamTokenSigner:
    def __init__(self, private_key_pem: str, ttl_seconds: int, clock: Callable[[], float] = time.time) -> None:
        self._key = load_signing_key(private_key_pem)
        self._ttl = ttl_seconds
        self._clock = clock

    def issue(self, user_id: str) -> StreamToken:
        now = int(self._clock())
        claims = {
            "iss": STREAM_TOKEN_ISSUER,
            "aud": STREAM_TOKEN_AUDIENCE,
            "sub": user_id,
            "iat": now,
            "exp": now + self._ttl,
            "jti": uuid.uuid4().hex,
        }
        # No kid: the edge tries every key of the stream JWKS, so rotating means adding the new public key first.
        return StreamToken(jwt.encode(claims, self._key, algorithm=STREAM_TOKEN_ALGORITHM), float(now + self._ttl))


def public_jwks(private_key_pem: str, key_id: str | None = None) -> dict[str, list[dict[str, str]]]:
    """The JWKS the edge verifies stream tokens with: the public half of ``private_key_pem``."""
    jwk = json.loads(ECAlgorithm.to_jwk(load_signing_key(private_key_pem).public_key()))
    jwk.update({"alg": STREAM_TOKEN_ALGORITHM, "use": "sig"})
    if key_id:
        jwk["kid"] = key_id
    return {"keys": [jwk]}
