"""gRPC failures of peer services as problems: the one gRPC status → HTTP status table.

Peers report failures as rich statuses (``google.rpc.Status`` in ``grpc-status-details-bin``) carrying a
``google.rpc.ErrorInfo`` with ``domain="supportdesk"`` and a stable snake_case ``reason``. For client
errors (4xx) that reason becomes the problem ``code`` and the peer's message its ``detail``; without it
(or from another domain) the table's generic code and wording are used, so peer internals never leak.

INVALID_ARGUMENT maps to 400: the gateway has already validated the request's shape (422), so what a
peer rejects is a request that is well-formed but malformed for the domain.

A dependency that is down, slow or going away (UNAVAILABLE, DEADLINE_EXCEEDED, CANCELLED) is always
503 ``dependency_unavailable`` with ``Retry-After``, never a 500.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass

import grpc
import grpc.aio
from fastapi import Request
from fastapi.responses import Response
from google.protobuf.message import DecodeError
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from services.gateway.problems import (
    DEPENDENCY_UNAVAILABLE,
    INTERNAL,
    FieldError,
    ProblemError,
    dependency_unavailable,
)

log = logging.getLogger(__name__)

ERROR_DOMAIN = "supportdesk"
# A reason becomes part of the problem type URI; anything else is not passed on.
_REASON = re.compile(r"[a-z][a-z0-9_]{0,63}")


@dataclass(frozen=True, slots=True)
class HttpMapping:
    status: int
    # Used when the peer names no reason of its own.
    code: str
    detail: str


_UNAVAILABLE = HttpMapping(503, DEPENDENCY_UNAVAILABLE, "")
_INTERNAL = HttpMapping(500, INTERNAL, "An unexpected error occurred.")

GRPC_TO_HTTP: Mapping[grpc.StatusCode, HttpMapping] = {
    grpc.StatusCode.INVALID_ARGUMENT: HttpMapping(400, "invalid_argument", "The request is invalid."),
    grpc.StatusCode.OUT_OF_RANGE: HttpMapping(400, "out_of_range", "A value is out of range."),
    grpc.StatusCode.NOT_FOUND: HttpMapping(404, "not_found", "The resource was not found."),
    grpc.StatusCode.ALREADY_EXISTS: HttpMapping(409, "already_exists", "The resource already exists."),
    grpc.StatusCode.FAILED_PRECONDITION: HttpMapping(
        409, "failed_precondition", "The resource is not in a state that allows this."
    ),
    grpc.StatusCode.ABORTED: HttpMapping(409, "conflict", "The request conflicted with another; retry."),
    grpc.StatusCode.PERMISSION_DENIED: HttpMapping(403, "forbidden", "The caller may not do this."),
    grpc.StatusCode.UNAUTHENTICATED: HttpMapping(401, "unauthenticated", "Authentication is required."),
    grpc.StatusCode.RESOURCE_EXHAUSTED: HttpMapping(429, "rate_limited", "Too many requests; retry later."),
    grpc.StatusCode.UNIMPLEMENTED: HttpMapping(501, "not_implemented", "This operation is not available."),
    grpc.StatusCode.UNAVAILABLE: _UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED: _UNAVAILABLE,
    # What a caller sees when the peer is shutting down mid-call.
    grpc.StatusCode.CANCELLED: _UNAVAILABLE,
    grpc.StatusCode.UNKNOWN: _INTERNAL,
    grpc.StatusCode.INTERNAL: _INTERNAL,
    grpc.StatusCode.DATA_LOSS: _INTERNAL,
}


def http_mapping(code: grpc.StatusCode) -> HttpMapping:
    return GRPC_TO_HTTP.get(code, _INTERNAL)


def error_info(exc: grpc.aio.AioRpcError) -> error_details_pb2.ErrorInfo | None:
    """The ErrorInfo of a rich status, or None when the peer sent none (or an inconsistent one)."""
    try:
        status: status_pb2.Status | None = rpc_status.from_call(exc)
    except (ValueError, DecodeError):
        # A details trailer that contradicts the status (or is garbage) is ignored, not trusted.
        return None
    if status is None:
        return None
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return info
    return None


def problem_from_rpc_error(exc: grpc.aio.AioRpcError, *, retry_after_s: int, service: str = "peer") -> ProblemError:
    code: grpc.StatusCode = exc.code()
    mapping = http_mapping(code)
    if mapping.status == 503:
        log.warning(
            "dependency unavailable",
            extra={"dependency": service, "grpc_code": code.name, "grpc_details": exc.details()},
        )
        return dependency_unavailable(retry_after_s)
    if mapping.status >= 500:
        log.error(
            "dependency failed",
            extra={"dependency": service, "grpc_code": code.name, "grpc_details": exc.details()},
        )
        return ProblemError(mapping.status, mapping.code, mapping.detail)

    headers = {"Retry-After": str(retry_after_s)} if mapping.status == 429 else None
    info = error_info(exc)
    reason = info.reason.lower() if info is not None and info.domain == ERROR_DOMAIN else ""
    if info is None or not _REASON.fullmatch(reason):
        return ProblemError(mapping.status, mapping.code, mapping.detail, headers=headers)
    detail = exc.details() or mapping.detail
    errors = []
    field = info.metadata.get("field")
    if field:
        errors.append(FieldError(field=field, code=reason, message=detail))
    return ProblemError(mapping.status, reason, detail, headers=headers, errors=errors)


async def rpc_error_handler(request: Request, exc: Exception) -> Response:
    """Safety net for a gRPC error that escaped a ServiceClients call."""
    assert isinstance(exc, grpc.aio.AioRpcError)
    retry_after_s = getattr(request.app.state.settings, "retry_after_s", 2)
    problem = problem_from_rpc_error(exc, retry_after_s=retry_after_s)
    return problem.to_response(request.url.path)
