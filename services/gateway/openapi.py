"""OpenAPI: problem responses documented as ``application/problem+json``."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from fastapi import FastAPI

from services.gateway.problems import PROBLEM_MEDIA_TYPE, Problem

_PROBLEM_REF = "#/components/schemas/Problem"

_DESCRIPTIONS = {
    401: "Missing or invalid bearer token.",
    403: "The caller's role or identity may not do this.",
    413: "The request body is too large.",
    422: "The request failed validation; `errors` lists the fields.",
    429: "The caller's read or write budget is spent; retry after `Retry-After` seconds.",
    503: "A dependency is unavailable or too slow; retry after `Retry-After` seconds.",
}

_RATE_LIMIT_HEADERS: dict[str, Any] = {
    "RateLimit": {
        "description": 'What remains of the budget: `"<policy>";r=<requests>;t=<seconds until it is whole>`.',
        "schema": {"type": "string"},
    },
    "RateLimit-Policy": {
        "description": 'The budget: `"<reads|writes>";q=<requests>;w=<window seconds>`.',
        "schema": {"type": "string"},
    },
}


_HEADERS: dict[int, dict[str, Any]] = {
    401: {"WWW-Authenticate": {"description": '`Bearer`, with `error="invalid_token"` for a bad token.'}},
    429: {
        "Retry-After": {"description": "Seconds to wait before retrying.", "schema": {"type": "integer"}},
        **_RATE_LIMIT_HEADERS,
    },
    503: {"Retry-After": {"description": "Seconds to wait before retrying.", "schema": {"type": "integer"}}},
}


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` entries documenting problem answers for the given statuses."""
    responses: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        entry: dict[str, Any] = {"model": Problem, "description": _DESCRIPTIONS.get(status, HTTPStatus(status).phrase)}
        if status in _HEADERS:
            entry["headers"] = _HEADERS[status]
        responses[status] = entry
    return responses


def install_openapi(app: FastAPI) -> None:
    """Document problem bodies under their own media type.

    FastAPI documents every extra response under the route's media type (application/json); problem
    bodies are sent as application/problem+json, so the generated schema is adjusted once, when cached.
    """
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        # FastAPI caches the generated schema on the app, so adjusting it in place is done once.
        schema = generate()
        for path in schema.get("paths", {}).values():
            for operation in path.values():
                if "requestBody" in operation:
                    _document_body_problems(operation["responses"])
                if operation.get("security"):
                    _document_rate_limit(operation["responses"])
                for response in operation.get("responses", {}).values():
                    _move_problem_content(response)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _document_body_problems(responses: dict[str, Any]) -> None:
    """Any operation taking a body can answer 400 (not JSON) and 413 (too large), whatever its route says."""
    for status, description in ((400, "The body is not valid JSON."), (413, _DESCRIPTIONS[413])):
        responses.setdefault(
            str(status),
            {"description": description, "content": {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": _PROBLEM_REF}}}},
        )


def _document_rate_limit(responses: dict[str, Any]) -> None:
    """Every authenticated operation counts against the caller's budget (see ``throttling``)."""
    responses.setdefault(
        "429",
        {
            "description": _DESCRIPTIONS[429],
            "headers": _HEADERS[429],
            "content": {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": _PROBLEM_REF}}},
        },
    )


def _move_problem_content(response: dict[str, Any]) -> None:
    content = response.get("content", {})
    json_content = content.get("application/json")
    if json_content and json_content.get("schema", {}).get("$ref") == _PROBLEM_REF:
        content[PROBLEM_MEDIA_TYPE] = content.pop("application/json")
