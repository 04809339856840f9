"""Domain errors with stable, machine-readable codes; the edges (gRPC, HTTP) map them to statuses."""

from __future__ import annotations

from enum import Enum


class ErrorKind(Enum):
    INVALID_ARGUMENT = "invalid_argument"
    NOT_FOUND = "not_found"
    ALREADY_EXISTS = "already_exists"
    FAILED_PRECONDITION = "failed_precondition"
    PERMISSION_DENIED = "permission_denied"
    UNAVAILABLE = "unavailable"


class DomainError(Exception):
    """An expected failure the caller can act on. ``code`` is stable (e.g. ``ticket_not_found``)."""

    kind: ErrorKind = ErrorKind.FAILED_PRECONDITION

    def __init__(self, code: str, message: str, **metadata: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.metadata = metadata


class InvalidArgument(DomainError):
    kind = ErrorKind.INVALID_ARGUMENT


class NotFound(DomainError):
    kind = ErrorKind.NOT_FOUND


class AlreadyExists(DomainError):
    kind = ErrorKind.ALREADY_EXISTS


class FailedPrecondition(DomainError):
    kind = ErrorKind.FAILED_PRECONDITION


class PermissionDenied(DomainError):
    kind = ErrorKind.PERMISSION_DENIED


class Unavailable(DomainError):
    kind = ErrorKind.UNAVAILABLE
