"""RFC 9457 problem details: the one shape of every error the gateway answers.

Body (``Content-Type: application/problem+json``)::

    {"type": "https://supportdesk.dev/problems/ticket_not_found", "title": "Not Found", "status": 404,
     "detail": "Ticket not found.", "code": "ticket_not_found", "instance": "/v1/tickets/t-1"}

- ``code`` is the stable, machine-readable identifier clients branch on (snake_case).
- ``type`` is ``https://supportdesk.dev/problems/<code>``: an identifier (one per code), not a page the
  gateway promises to serve; clients should compare ``code``, not parse ``type``.
- ``title`` is the HTTP status phrase, so it is the same for every occurrence of a ``type``.
- ``detail`` is written for people and never carries stack traces, peer internals or request input.
- ``instance`` is the request path.
- ``errors`` (validation failures only) lists ``{"field", "location", "code", "message"}``; values the
  caller sent are never echoed, because free text may hold secrets the privacy scanner has not yet seen.
- Extension members (e.g. ``dependencies`` on ``/readyz``) may appear beside these.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import compile_path

PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_TYPE_BASE = "https://supportdesk.dev/problems/"

VALIDATION_FAILED = "validation_failed"
DEPENDENCY_UNAVAILABLE = "dependency_unavailable"
INTERNAL = "internal"

# Codes for errors raised by the framework itself (unknown route, wrong method, ...).
_HTTP_STATUS_CODES: Mapping[int, str] = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: VALIDATION_FAILED,
    429: "rate_limited",
    500: INTERNAL,
    501: "not_implemented",
    503: DEPENDENCY_UNAVAILABLE,
}


class FieldError(BaseModel):
    """One invalid input: where it is and why, never its value."""

    field: str
    location: str | None = None
    code: str
    message: str


class Problem(BaseModel):
    """The error body (RFC 9457); documented in OpenAPI for every error status."""

    model_config = ConfigDict(extra="allow")

    type: str
    title: str
    status: int
    detail: str
    code: str
    instance: str
    errors: list[FieldError] | None = None


class ProblemError(StarletteHTTPException):
    """Raise anywhere in a request to answer with a problem.

    It is an HTTPException so that FastAPI re-raises it unchanged even from inside body parsing.
    """

    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        *,
        headers: Mapping[str, str] | None = None,
        errors: Sequence[FieldError] = (),
        extensions: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(status_code=status, detail=detail, headers=dict(headers or {}))
        self.code = code
        self.errors = list(errors)
        self.extensions = dict(extensions or {})

    def to_response(self, instance: str) -> JSONResponse:
        return problem_response(
            status=self.status_code,
            code=self.code,
            detail=str(self.detail),
            instance=instance,
            headers=self.headers,
            errors=self.errors,
            extensions=self.extensions,
        )


def problem_response(
    *,
    status: int,
    code: str,
    detail: str,
    instance: str,
    headers: Mapping[str, str] | None = None,
    errors: Sequence[FieldError] = (),
    extensions: Mapping[str, Any] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE_BASE + code,
        "title": _title(status),
        "status": status,
        "detail": detail,
        "code": code,
        "instance": instance,
    }
    if errors:
        body["errors"] = [error.model_dump(exclude_none=True) for error in errors]
    for name, value in (extensions or {}).items():
        # Extensions add members; they never replace the standard ones.
        body.setdefault(name, value)
    return JSONResponse(body, status_code=status, headers=dict(headers or {}), media_type=PROBLEM_MEDIA_TYPE)


def _title(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def dependency_unavailable(retry_after_s: int, detail: str | None = None) -> ProblemError:
    return ProblemError(
        503,
        DEPENDENCY_UNAVAILABLE,
        detail or "A service this request needs is unavailable or too slow; retry later.",
        headers={"Retry-After": str(retry_after_s)},
    )


def internal_error_response(instance: str) -> JSONResponse:
    return problem_response(status=500, code=INTERNAL, detail="An unexpected error occurred.", instance=instance)


async def _problem_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ProblemError)
    return exc.to_response(request.url.path)


async def _http_exception_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    status = exc.status_code
    code = _HTTP_STATUS_CODES.get(status, INTERNAL if status >= 500 else "bad_request")
    # Framework errors carry short, safe phrases ("Not Found", "Method Not Allowed"); anything else is
    # replaced rather than trusted.
    detail = exc.detail if isinstance(exc.detail, str) and status < 500 else _title(status)
    headers = exc.headers
    if status == 405 and (allowed := _allowed_methods(request)):
        # Starlette names only the first matching route's methods; a path served by several routes
        # (GET and POST /v1/tickets) must list them all, as the API description does.
        headers = {**(headers or {}), "Allow": ", ".join(allowed)}
    return problem_response(status=status, code=code, detail=detail, instance=request.url.path, headers=headers)


def _allowed_methods(request: Request) -> list[str]:
    """The methods the API description gives for the request's path (plus HEAD wherever GET is)."""
    methods: set[str] = set()
    for template, operations in request.app.openapi().get("paths", {}).items():
        regex, _, _ = compile_path(template)
        if regex.match(request.url.path):
            methods |= {method.upper() for method in operations}
    if "GET" in methods:
        methods.add("HEAD")
    return sorted(methods)


async def _validation_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = [_field_error(error) for error in exc.errors()]
    if any(error.code == "json_invalid" for error in errors):
        return problem_response(
            status=400,
            code="malformed_json",
            detail="The request body is not valid JSON.",
            instance=request.url.path,
        )
    return problem_response(
        status=422,
        code=VALIDATION_FAILED,
        detail="The request is invalid; see errors.",
        instance=request.url.path,
        errors=errors,
    )


def _field_error(error: Mapping[str, Any]) -> FieldError:
    loc = [str(part) for part in error.get("loc", ())]
    location = loc[0] if loc and loc[0] in {"body", "query", "path", "header", "cookie"} else None
    path = loc[1:] if location else loc
    return FieldError(
        field=".".join(path) if path else (location or ""),
        location=location,
        code=str(error.get("type", "invalid")),
        message=str(error.get("msg", "Invalid value")),
    )


def install_problem_handlers(app: FastAPI) -> None:
    """Answer framework, validation and gateway errors as problems (gRPC errors: see grpc_errors)."""
    app.add_exception_handler(ProblemError, _problem_error_handler)
    app.add_exception_handler(StarletteHTTPException, _http_exception_handler)
    app.add_exception_handler(RequestValidationError, _validation_handler)
