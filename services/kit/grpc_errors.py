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


def rich_status(code: grpc.StatusCode, reason: str, message: str, metadata: Mapping[str, str] = {}) -> grpc.Status:
    detail = any_pb2.Any()
    detail.Pack(error_details_pb2.ErrorInfo(reason=reason, domain=ERROR_DOMAIN, metadata=dict(metadata)))
    status: grpc.Status = rpc_status.to_status(status_pb2.Status(code=code.value[0], message=message, details=[detail]))
    return status


def to_status(error: DomainError) -> grpc.Status:
    return rich_status(GRPC_CODE[error.kind], error.code, error.message, error.metadata)


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
            except DomainError as exc:
                status = to_status(exc)
            except asyncpg.DataError as exc:
                # A value the database cannot hold (NUL in text, a number beyond its column): bad input,
                # refused whole since the transaction rolled back. The log names the error, never the value.
                log.warning("unstorable value refused", extra={"error": describe_error(exc)})
                status = rich_status(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    "unstorable_value",
                    "a value is out of range or holds a character that cannot be stored (such as NUL)",
                )
            except dependency_errors as exc:
                log.warning("dependency unavailable", extra={"error": describe_error(exc)})
                status = rich_status(
                    grpc.StatusCode.UNAVAILABLE,
                    "dependency_unavailable",
                    "a dependency is unavailable; retry later",
                )
            await context.abort_with_status(status)
            raise AssertionError("unreachable: abort_with_status raises")

        return wrapper

    return decorate
