"""Maps domain errors to rich gRPC statuses: a code, a message, and an ErrorInfo whose reason is stable."""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

import asyncpg
import grpc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from services.kit.errors import DomainError, ErrorKind
from services.kit.logging import describe_error

log = logging.getLogger(__name__)

ERROR_DOMAIN = "supportdesk"

GRPC_CODE: dict[ErrorKind, grpc.StatusCode] = {
    ErrorKind.INVALID_ARGUMENT: grpc.StatusCode.INVALID_ARGUMENT,
    ErrorKind.NOT_FOUND: grpc.StatusCode.NOT_FOUND,
    ErrorKind.ALREADY_EXISTS: grpc.StatusCode.ALREADY_EXISTS,
    ErrorKind.FAILED_PRECONDITION: grpc.StatusCode.FAILED_PRECONDITION,
    ErrorKind.PERMISSION_DENIED: grpc.StatusCode.PERMISSION_DENIED,
    ErrorKind.UNAVAILABLE: grpc.StatusCode.UNAVAILABLE,
}


def status_message(
    code: grpc.StatusCode, reason: str, message: str, metadata: Mapping[str, str] = {}
) -> status_pb2.Status:
    """A ``google.rpc.Status`` with an ErrorInfo naming ``reason``: what a call fails with, or an item of a
    batch call."""
    detail = any_pb2.Any()
    detail.Pack(error_details_pb2.ErrorInfo(reason=reason, domain=ERROR_DOMAIN, metadata=dict(metadata)))
    return status_pb2.Status(code=code.value[0], message=message, details=[detail])


def failure_status(
    error: Exception, dependency_errors: tuple[type[BaseException], ...] = ()
) -> status_pb2.Status | None:
    """The status a call failing with ``error`` answers: domain errors their own, a value the database cannot
    hold INVALID_ARGUMENT, a down dependency UNAVAILABLE. None for anything else: a bug, left to gRPC."""
    if isinstance(error, DomainError):
        return status_message(GRPC_CODE[error.kind], error.code, error.message, error.metadata)
    if isinstance(error, asyncpg.DataError):
        # A value the database cannot hold (NUL in text, a number beyond its column): bad input, refused
        # whole since the transaction rolled back. The log names the error, never the value.
        log.warning("unstorable value refused", extra={"error": describe_error(error)})
        return status_message(
            grpc.StatusCode.INVALID_ARGUMENT,
            "unstorable_value",
            "a value is out of range or holds a character that cannot be stored (such as NUL)",
        )
    if isinstance(error, dependency_errors):
        log.warning("dependency unavailable", extra={"error": describe_error(error)})
        return status_message(
            grpc.StatusCode.UNAVAILABLE, "dependency_unavailable", "a dependency is unavailable; retry later"
        )
    return None


Context = grpc.aio.ServicerContext[Any, Any]
R = TypeVar("R")
Method = Callable[[Any, Any, Context], Awaitable[R]]


def grpc_method(dependency_errors: tuple[type[BaseException], ...] = ()) -> Callable[[Method[R]], Method[R]]:
    """Decorate a servicer method: domain errors become their statuses, a down dependency UNAVAILABLE."""

    def decorate(method: Method[R]) -> Method[R]:
        @functools.wraps(method)
        async def wrapper(self: Any, request: Any, context: Context) -> R:
            try:
                return await method(self, request, context)
            except Exception as exc:
                status = failure_status(exc, dependency_errors)
                if status is None:
                    raise
            await context.abort_with_status(rpc_status.to_status(status))
            raise AssertionError("unreachable: abort_with_status raises")

        return wrapper

    return decorate
