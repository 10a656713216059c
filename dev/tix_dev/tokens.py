"""Development tokens: the RSA key pair that signs JWTs locally (``tix token USER``, the tests, the benchmarks) and
the JWKS the local Envoy verifies them against. Production tokens come from a real identity provider; nothing here
runs in a service.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from tix.identity import DEVELOPMENT_JWT_KEY_ID, DEVELOPMENT_STREAM_KEY_ID, JWT_AUDIENCE, JWT_ISSUER
from tix.settings import DEVELOPMENT_STREAM_TOKEN_PRIVATE_KEY

KEY_ID = DEVELOPMENT_JWT_KEY_ID


def dev_key_paths(var_dir: Path) -> tuple[Path, Path]:
    return var_dir / "jwt-private.pem", var_dir / "jwks.json"


def dev_stream_jwks_path(var_dir: Path) -> Path:
    return var_dir / "stream-jwks.json"


def ensure_dev_stream_jwks(var_dir: Path) -> Path:
    """The key set the local edge verifies stream tokens with: the public half of the development stream-token key
    (``DEVELOPMENT_STREAM_TOKEN_PRIVATE_KEY``, the queue service's default), under its development key id."""
    from queue_svc.stream_tokens import public_jwks

    path = dev_stream_jwks_path(var_dir)
    var_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(public_jwks(DEVELOPMENT_STREAM_TOKEN_PRIVATE_KEY, DEVELOPMENT_STREAM_KEY_ID), indent=2))
    return path


def ensure_dev_keys(var_dir: Path) -> tuple[Path, Path]:
    """Create the development RSA key pair and its JWKS once; never committed (var/ is ignored)."""
    private_path, jwks_path = dev_key_paths(var_dir)
    if private_path.exists() and jwks_path.exists():
        return private_path, jwks_path
    var_dir.mkdir(parents=True, exist_ok=True)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    jwk = json.loads(RSAAlgorithm.to_jwk(key.public_key()))
    jwk.update({"kid": KEY_ID, "alg": "RS256", "use": "sig"})
    private_path.write_bytes(pem)
    private_path.chmod(0o600)
    jwks_path.write_text(json.dumps({"keys": [jwk]}, indent=2))
    return private_path, jwks_path


class TokenSigner:
    """Signs development tokens with one private key, parsed once (a benchmark signs thousands)."""

    def __init__(self, private_key_path: Path) -> None:
        key = serialization.load_pem_private_key(private_key_path.read_bytes(), None)
        if not isinstance(key, rsa.RSAPrivateKey):
            raise ValueError(f"{private_key_path} is not an RSA key: development tokens are RS256")
        self._key = key

    def sign(self, user_id: str, *, ttl_seconds: int = 24 * 3600) -> str:
        now = int(time.time())
        claims = {"sub": user_id, "iss": JWT_ISSUER, "aud": JWT_AUDIENCE, "iat": now, "exp": now + ttl_seconds}
        return jwt.encode(claims, self._key, algorithm="RS256", headers={"kid": KEY_ID})


def issue_token(var_dir: Path, user_id: str, *, ttl_seconds: int = 24 * 3600) -> str:
    """A development JWT for ``user_id`` that the local edge accepts (the key pair is created on first use)."""
    private_path, _ = ensure_dev_keys(var_dir)
    return TokenSigner(private_path).sign(user_id, ttl_seconds=ttl_seconds)
