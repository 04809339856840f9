"""Problem bodies and the gRPC status → HTTP mapping."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import grpc.aio
import httpx
import pytest
from fastapi import FastAPI
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from services.gateway.app import create_app
from services.gateway.clients import ServiceClients
from services.gateway.grpc_errors import GRPC_TO_HTTP, problem_from_rpc_error
from services.gateway.problems import ProblemError
from services.gateway.settings import GatewaySettings
from services.gateway.tokens import load_or_create_local_secret, mint_local_token

pytestmark = pytest.mark.unit

RETRY_AFTER_S = 7

EXPECTED = {
    grpc.StatusCode.INVALID_ARGUMENT: (400, "invalid_argument"),
    grpc.StatusCode.OUT_OF_RANGE: (400, "out_of_range"),
    grpc.StatusCode.NOT_FOUND: (404, "not_found"),
    grpc.StatusCode.ALREADY_EXISTS: (409, "already_exists"),
    grpc.StatusCode.FAILED_PRECONDITION: (409, "failed_precondition"),
    grpc.StatusCode.ABORTED: (409, "conflict"),
    grpc.StatusCode.PERMISSION_DENIED: (403, "forbidden"),
    grpc.StatusCode.UNAUTHENTICATED: (401, "unauthenticated"),
    grpc.StatusCode.RESOURCE_EXHAUSTED: (429, "rate_limited"),
    grpc.StatusCode.UNIMPLEMENTED: (501, "not_implemented"),
    grpc.StatusCode.UNAVAILABLE: (503, "dependency_unavailable"),
    grpc.StatusCode.DEADLINE_EXCEEDED: (503, "dependency_unavailable"),
    grpc.StatusCode.CANCELLED: (503, "dependency_unavailable"),
    grpc.StatusCode.UNKNOWN: (500, "internal"),
    grpc.StatusCode.INTERNAL: (500, "internal"),
    grpc.StatusCode.DATA_LOSS: (500, "internal"),
}


def rpc_error(
    code: grpc.StatusCode,
    message: str = "peer says no",
    *,
    reason: str | None = None,
    domain: str = "supportdesk",
    metadata: dict[str, str] | None = None,
    status_code_in_details: grpc.StatusCode | None = None,
) -> grpc.aio.AioRpcError:
    """The error a grpc.aio client raises, with or without a rich status in its trailers."""
    trailers = grpc.aio.Metadata()
    if reason is not None:
        detail = any_pb2.Any()
        detail.Pack(error_details_pb2.ErrorInfo(reason=reason, domain=domain, metadata=metadata or {}))
        rich = status_pb2.Status(code=(status_code_in_details or code).value[0], message=message, details=[detail])
        for key, value in rpc_status.to_status(rich).trailing_metadata:
            trailers.add(key, value)
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), trailers, details=message)


def test_every_status_code_is_mapped() -> None:
    assert set(GRPC_TO_HTTP) == set(grpc.StatusCode) - {grpc.StatusCode.OK}


@pytest.mark.parametrize(("code", "expected"), EXPECTED.items(), ids=[code.name for code in EXPECTED])
def test_mapping_table(code: grpc.StatusCode, expected: tuple[int, str]) -> None:
    problem = problem_from_rpc_error(rpc_error(code), retry_after_s=RETRY_AFTER_S)
    assert (problem.status_code, problem.code) == expected


@pytest.mark.parametrize(
    "code", [grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED]
)
def test_dependency_down_is_503_with_retry_after(code: grpc.StatusCode) -> None:
    # Even a peer that names a reason: an outage is always the same answer.
    problem = problem_from_rpc_error(rpc_error(code, reason="db_down"), retry_after_s=RETRY_AFTER_S)
    assert problem.status_code == 503
    assert problem.code == "dependency_unavailable"
    assert problem.headers == {"Retry-After": str(RETRY_AFTER_S)}


def test_rate_limited_carries_retry_after() -> None:
    problem = problem_from_rpc_error(rpc_error(grpc.StatusCode.RESOURCE_EXHAUSTED), retry_after_s=RETRY_AFTER_S)
    assert problem.headers == {"Retry-After": str(RETRY_AFTER_S)}


def test_error_info_reason_becomes_the_code() -> None:
    exc = rpc_error(grpc.StatusCode.NOT_FOUND, "ticket t-9 not found", reason="ticket_not_found")
    problem = problem_from_rpc_error(exc, retry_after_s=RETRY_AFTER_S)
    assert (problem.status_code, problem.code, problem.detail) == (404, "ticket_not_found", "ticket t-9 not found")
    assert problem.errors == []


def test_error_info_field_is_listed() -> None:
    exc = rpc_error(
        grpc.StatusCode.INVALID_ARGUMENT, "subject is empty", reason="invalid_argument", metadata={"field": "subject"}
    )
    problem = problem_from_rpc_error(exc, retry_after_s=RETRY_AFTER_S)
    assert problem.status_code == 400
    assert [(e.field, e.code) for e in problem.errors] == [("subject", "invalid_argument")]


def test_without_details_the_generic_code_and_wording_are_used() -> None:
    problem = problem_from_rpc_error(
        rpc_error(grpc.StatusCode.NOT_FOUND, "Method not found: /x.Y/Z"), retry_after_s=RETRY_AFTER_S
    )
    assert problem.code == "not_found"
    assert "Method" not in str(problem.detail)


def test_foreign_domain_reason_is_not_trusted() -> None:
    exc = rpc_error(grpc.StatusCode.NOT_FOUND, "internal path /var/x", reason="file_missing", domain="other.dev")
    problem = problem_from_rpc_error(exc, retry_after_s=RETRY_AFTER_S)
    assert problem.code == "not_found"
    assert "/var/x" not in str(problem.detail)


def test_details_contradicting_the_status_are_ignored() -> None:
    exc = rpc_error(
        grpc.StatusCode.NOT_FOUND,
        reason="ticket_not_found",
        status_code_in_details=grpc.StatusCode.ALREADY_EXISTS,
    )
    assert problem_from_rpc_error(exc, retry_after_s=RETRY_AFTER_S).code == "not_found"


def test_malformed_reason_is_not_used() -> None:
    exc = rpc_error(grpc.StatusCode.NOT_FOUND, reason="Not/A Code")
    assert problem_from_rpc_error(exc, retry_after_s=RETRY_AFTER_S).code == "not_found"


def test_server_errors_never_show_peer_details() -> None:
    exc = rpc_error(grpc.StatusCode.INTERNAL, "NullPointer at db.py:12", reason="boom")
    problem = problem_from_rpc_error(exc, retry_after_s=RETRY_AFTER_S)
    assert (problem.status_code, problem.code) == (500, "internal")
    assert "db.py" not in str(problem.detail)


class NoPeers(ServiceClients):
    def __init__(self) -> None:
        pass

    async def close(self) -> None:
        pass


@pytest.fixture
def app(tmp_path: Path) -> FastAPI:
    app = create_app(GatewaySettings(data_dir=tmp_path, retry_after_s=RETRY_AFTER_S), clients=NoPeers())

    @app.get("/probe/boom")
    async def boom() -> None:
        raise RuntimeError("secret-internal-detail")

    @app.get("/probe/rpc")
    async def rpc() -> None:
        raise rpc_error(grpc.StatusCode.UNAVAILABLE)

    @app.get("/probe/problem")
    async def problem() -> None:
        raise ProblemError(409, "ticket_closed", "The ticket is closed.")

    return app


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway") as client:
        yield client


async def test_problem_body_shape(client: httpx.AsyncClient) -> None:
    response = await client.get("/probe/problem")
    assert response.status_code == 409
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json() == {
        "type": "https://supportdesk.dev/problems/ticket_closed",
        "title": "Conflict",
        "status": 409,
        "detail": "The ticket is closed.",
        "code": "ticket_closed",
        "instance": "/probe/problem",
    }


async def test_unhandled_exception_is_500_without_details(client: httpx.AsyncClient) -> None:
    response = await client.get("/probe/boom")
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "internal"
    assert "secret-internal-detail" not in response.text


async def test_escaped_rpc_error_is_503_with_retry_after(client: httpx.AsyncClient) -> None:
    response = await client.get("/probe/rpc")
    assert response.status_code == 503
    assert response.headers["retry-after"] == str(RETRY_AFTER_S)
    assert response.json()["code"] == "dependency_unavailable"


async def test_unknown_route_is_a_problem(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/nothing-here")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "not_found"


async def test_wrong_method_is_a_problem(client: httpx.AsyncClient) -> None:
    response = await client.delete("/healthz")
    assert response.status_code == 405
    assert response.json()["code"] == "method_not_allowed"
    assert response.headers["allow"] == "GET, HEAD"


async def test_wrong_method_lists_every_route_of_the_path(client: httpx.AsyncClient) -> None:
    # GET and POST /v1/tickets are two routes; Allow must name both, not the first one matched.
    response = await client.put("/v1/tickets")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, HEAD, POST"


async def test_every_operation_with_a_body_documents_400_and_413(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            if "requestBody" in operation:
                assert {"400", "413"} <= set(operation["responses"]), (method, path)
                problem = operation["responses"]["400"]["content"]
                assert "application/problem+json" in problem, (method, path)


async def test_validation_failure_lists_fields_without_values(client: httpx.AsyncClient, tmp_path: Path) -> None:
    secret = load_or_create_local_secret(tmp_path / "secrets" / "local-jwt.key")
    token = mint_local_token(secret, role="customer", subject="c-1", issuer="supportdesk-local", audience="supportdesk")
    body = {
        "channel": "app",
        "category": "payment_failed",
        "subject": "x" * 201,
        "description": "abandon abandon abandon",
        "surprise": "unknown-field-value",
    }
    response = await client.post("/v1/tickets", json=body, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 422
    problem = response.json()
    assert problem["code"] == "validation_failed"
    assert {(e["field"], e["code"]) for e in problem["errors"]} == {
        ("subject", "string_too_long"),
        ("surprise", "extra_forbidden"),
    }
    assert "unknown-field-value" not in response.text
    assert "abandon" not in response.text


async def test_malformed_json_is_400(client: httpx.AsyncClient, tmp_path: Path) -> None:
    secret = load_or_create_local_secret(tmp_path / "secrets" / "local-jwt.key")
    token = mint_local_token(secret, role="customer", subject="c-1", issuer="supportdesk-local", audience="supportdesk")
    response = await client.post(
        "/v1/tickets",
        content=b'{"channel": ',
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    assert response.status_code == 400
    assert response.json()["code"] == "malformed_json"


async def test_openapi_documents_problems_and_bearer_auth(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    assert spec["info"]["title"] == "Supportdesk API"
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    responses = spec["paths"]["/v1/tickets"]["post"]["responses"]
    assert set(responses["503"]["content"]) == {"application/problem+json"}
    assert "Retry-After" in responses["503"]["headers"]
    assert set(responses["422"]["content"]) == {"application/problem+json"}
    assert (await client.get("/docs")).status_code == 200
