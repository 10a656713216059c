"""Domain errors: raised by domain code (which never imports grpc) and mapped to a gRPC status in one place.

Each error carries an AIP-193 ``reason`` (UPPER_SNAKE, for example ``SEAT_UNAVAILABLE``) and string metadata; the
server interceptor turns it into a ``google.rpc.Status`` with a ``google.rpc.ErrorInfo`` in domain ``tix.dev``.
"""

from __future__ import annotations

import enum
from typing import ClassVar

ERROR_DOMAIN = "tix.dev"


class ErrorCode(enum.Enum):
    """The gRPC codes domain code may use, by name (so the domain stays free of grpc)."""

    INVALID_ARGUMENT = "INVALID_ARGUMENT"
    NOT_FOUND = "NOT_FOUND"
    ALREADY_EXISTS = "ALREADY_EXISTS"
    PERMISSION_DENIED = "PERMISSION_DENIED"
    UNAUTHENTICATED = "UNAUTHENTICATED"
    FAILED_PRECONDITION = "FAILED_PRECONDITION"
    ABORTED = "ABORTED"
    RESOURCE_EXHAUSTED = "RESOURCE_EXHAUSTED"
    UNAVAILABLE = "UNAVAILABLE"
    DEADLINE_EXCEEDED = "DEADLINE_EXCEEDED"
    INTERNAL = "INTERNAL"


class DomainError(Exception):
    code: ClassVar[ErrorCode] = ErrorCode.INTERNAL
    # When to try again, for load shed before any work was done: rendered as google.rpc.RetryInfo and a
    # ``retry-after`` header, which the edge passes on as HTTP Retry-After. Set with ``retry_after``.
    retry_delay_seconds: float | None = None

    def retry_after(self, seconds: float) -> DomainError:
        self.retry_delay_seconds = seconds
        return self

    def __init__(
        self,
        reason: str,
        message: str,
        *,
        field_violations: dict[str, str] | None = None,
        **metadata: object,
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.metadata = {key: str(value) for key, value in metadata.items()}
        # field name -> what is wrong with it (rendered as google.rpc.BadRequest).
        self.field_violations = dict(field_violations or {})

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.reason!r}, {self.message!r}, {self.metadata!r})"


class InvalidArgument(DomainError):
    code = ErrorCode.INVALID_ARGUMENT

    def __init__(self, field: str, problem: str, reason: str = "INVALID_ARGUMENT", **metadata: object) -> None:
        super().__init__(reason, f"{field}: {problem}", field_violations={field: problem}, field=field, **metadata)


class NotFound(DomainError):
    code = ErrorCode.NOT_FOUND


class PermissionDenied(DomainError):
    code = ErrorCode.PERMISSION_DENIED


class Unauthenticated(DomainError):
    code = ErrorCode.UNAUTHENTICATED


class FailedPrecondition(DomainError):
    code = ErrorCode.FAILED_PRECONDITION


class Aborted(DomainError):
    code = ErrorCode.ABORTED


class ResourceExhausted(DomainError):
    code = ErrorCode.RESOURCE_EXHAUSTED


class Unavailable(DomainError):
    code = ErrorCode.UNAVAILABLE
