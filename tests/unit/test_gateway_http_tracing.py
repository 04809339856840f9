"""The gateway's request and RPC spans: the caller's trace continued, named by route, no query strings."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from services.gateway.app import create_app
from services.gateway.settings import GatewaySettings
from services.gateway.tokens import load_or_create_local_secret, mint_local_token

pytestmark = pytest.mark.unit

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
PARENT_ID = "b7ad6b7169203331"
# Nothing listens on the discard port: every RPC fails at once as UNAVAILABLE.
NOBODY = "127.0.0.1:9"


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, dict[str, str]]]:
    settings = GatewaySettings(data_dir=tmp_path, ticketing_addr=NOBODY, routing_addr=NOBODY, notify_addr=NOBODY)
    app: FastAPI = create_app(settings)
    token = mint_local_token(
        load_or_create_local_secret(settings.local_secret_path),
        role="customer",
        subject="c-1",
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
    )
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway") as client,
    ):
        yield client, {"Authorization": f"Bearer {token}"}


async def test_a_request_continues_the_callers_trace_down_to_the_rpc(
    gateway: tuple[httpx.AsyncClient, dict[str, str]], spans: InMemorySpanExporter
) -> None:
    client, auth = gateway
    traceparent = f"00-{TRACE_ID}-{PARENT_ID}-01"
    response = await client.get(
        "/v1/tickets/t-1", params={"q": "my seed words"}, headers={**auth, "traceparent": traceparent}
    )
    assert response.status_code == 503
    [request] = [s for s in spans.get_finished_spans() if s.kind is SpanKind.SERVER]
    [call] = [s for s in spans.get_finished_spans() if s.kind is SpanKind.CLIENT]
    assert request.name == "GET /v1/tickets/{ticket_id}"
    assert request.context is not None
    assert request.parent is not None
    assert format(request.context.trace_id, "032x") == TRACE_ID
    assert format(request.parent.span_id, "016x") == PARENT_ID
    assert request.attributes is not None
    assert request.attributes["http.route"] == "/v1/tickets/{ticket_id}"
    assert request.attributes["http.response.status_code"] == 503
    assert request.status.status_code is StatusCode.ERROR
    assert all("seed" not in str(value) for value in request.attributes.values()), "the query string stays out"
    assert call.name == "/support.ticketing.v1.TicketingService/GetTicket"
    assert call.parent is not None
    assert call.parent.span_id == request.context.span_id
    assert call.attributes is not None
    assert call.attributes["rpc.grpc.status_code"] == 14  # UNAVAILABLE


async def test_a_request_without_trace_context_starts_its_own_trace(
    gateway: tuple[httpx.AsyncClient, dict[str, str]], spans: InMemorySpanExporter
) -> None:
    client, auth = gateway
    await client.get("/v1/tickets/t-1", headers=auth)
    await client.get("/v1/tickets/t-2", headers=auth)
    requests = [s for s in spans.get_finished_spans() if s.kind is SpanKind.SERVER]
    assert [s.parent for s in requests] == [None, None]
    assert len({s.context.trace_id for s in requests if s.context is not None}) == 2


async def test_probes_are_not_traced(
    gateway: tuple[httpx.AsyncClient, dict[str, str]], spans: InMemorySpanExporter
) -> None:
    client, _ = gateway
    await client.get("/healthz")
    await client.get("/readyz")
    await client.get("/metrics")
    assert spans.get_finished_spans() == ()
