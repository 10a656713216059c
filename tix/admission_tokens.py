"""Admission tokens (HS256 JWTs the queue signs and booking verifies) and the ways an admitted fan's booking ends.
No Redis here: the booking domain imports this; the stream that carries the ends is ``tix.admission``."""

from __future__ import annotations

import time
from dataclasses import dataclass
from enum import Enum

import jwt

from tix.errors import PermissionDenied

_ISSUER = "tix-queue"


@dataclass(frozen=True)
class AdmissionToken:
    user_id: str
    event_id: int
    ticket_id: str
    expires_at: float


def issue_admission_token(secret: str, *, user_id: str, event_id: int, ticket_id: str, ttl_seconds: int) -> str:
    now = time.time()
    claims = {
        "iss": _ISSUER,
        "sub": user_id,
        "evt": str(event_id),
        "jti": ticket_id,
        "iat": int(now),
        "exp": int(now + ttl_seconds),
    }
    return jwt.encode(claims, secret, algorithm="HS256")


def verify_admission_token(secret: str, token: str, *, user_id: str, event_id: int) -> AdmissionToken:
    """Accept only an unexpired token signed with ``secret`` for this user and event."""
    if not token:
        raise PermissionDenied(
            "ADMISSION_REQUIRED", "this on-sale has a waiting room: join the queue first", event_id=event_id
        )
    try:
        claims = jwt.decode(
            token, secret, algorithms=["HS256"], issuer=_ISSUER, options={"require": ["exp", "sub", "evt", "jti"]}
        )
    except jwt.ExpiredSignatureError:
        raise PermissionDenied(
            "ADMISSION_REQUIRED", "the admission token has expired: join the queue again", event_id=event_id
        ) from None
    except jwt.PyJWTError:
        raise PermissionDenied("ADMISSION_REQUIRED", "the admission token is not valid", event_id=event_id) from None
    if claims["sub"] != user_id or claims["evt"] != str(event_id):
        raise PermissionDenied(
            "ADMISSION_REQUIRED", "the admission token belongs to another fan or event", event_id=event_id
        )
    return AdmissionToken(user_id, event_id, claims["jti"], float(claims["exp"]))


class AdmissionEnd(Enum):
    CONFIRMED = "confirmed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"
