"""Who is calling. Envoy verifies the JWT and forwards its subject as ``x-user-id`` metadata (stripping any copy the
client sent); services read identity only through this module. It also holds the development key pair that signs
tokens locally (``tix token USER``) and the JWKS Envoy checks them against.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from pathlib import Path

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from tix.errors import Unauthenticated

USER_ID_METADATA = "x-user-id"
JWT_ISSUER = "https://auth.tix.dev"
JWT_AUDIENCE = "tix"
KEY_ID = "tix-dev-1"
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


def dev_key_paths(var_dir: Path) -> tuple[Path, Path]:
    return var_dir / "jwt-private.pem", var_dir / "jwks.json"


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


def issue_token(var_dir: Path, user_id: str, *, ttl_seconds: int = 24 * 3600) -> str:
    private_path, _ = ensure_dev_keys(var_dir)
    now = int(time.time())
    claims = {"sub": user_id, "iss": JWT_ISSUER, "aud": JWT_AUDIENCE, "iat": now, "exp": now + ttl_seconds}
    return jwt.encode(claims, private_path.read_bytes(), algorithm="RS256", headers={"kid": KEY_ID})
