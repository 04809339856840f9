"""The gateway app (with its real lifespan and gRPC channels) against in-test peer services.

The peers here are small grpc.aio servers implementing the ticketing, routing and notify contracts
from protos/, with gRPC health, so the gateway's edges can be driven precisely: replays, rich errors,
peers that are down and peers that never answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import grpc.aio
import httpx
import pytest
from fastapi import FastAPI
from google.protobuf import any_pb2
from google.protobuf.duration_pb2 import Duration
from google.rpc import error_details_pb2, status_pb2
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_status import rpc_status
from support.common.v1 import common_pb2
from support.notify.v1 import notification_pb2, notify_service_pb2, notify_service_pb2_grpc
from support.routing.v1 import queue_pb2, routing_service_pb2, routing_service_pb2_grpc
from support.ticketing.v1 import ticket_pb2, ticketing_service_pb2, ticketing_service_pb2_grpc

from services.gateway.app import create_app
from services.gateway.settings import GatewaySettings
from services.gateway.tokens import load_or_create_local_secret, mint_local_token

pytestmark = pytest.mark.integration

RETRY_AFTER_S = 3
# Bounds a test that would otherwise hang; the gateway must answer long before.
GUARD_S = 60


async def abort_with(context: Any, code: grpc.StatusCode, message: str, reason: str, **metadata: str) -> None:
    """Fail the call the way the services do: a rich status with a supportdesk ErrorInfo."""
    detail = any_pb2.Any()
    detail.Pack(error_details_pb2.ErrorInfo(reason=reason, domain="supportdesk", metadata=metadata))
    status = rpc_status.to_status(status_pb2.Status(code=code.value[0], message=message, details=[detail]))
    await context.abort(status.code, status.details, trailing_metadata=status.trailing_metadata)


class FakeTicketing(ticketing_service_pb2_grpc.TicketingServiceServicer):
    def __init__(self) -> None:
        self.tickets: dict[str, ticket_pb2.Ticket] = {}
        self.by_request_id: dict[str, str] = {}
        self.create_requests: list[ticketing_service_pb2.CreateTicketRequest] = []
        self.hang = False
        # A slow peer: how long GetTicket takes to answer.
        self.get_delay_s = 0.0
        self.entered = asyncio.Event()
        self.never = asyncio.Event()
        # How BatchCreateTickets fails as a whole: UNIMPLEMENTED is a ticketing from before the call.
        self.batch_refusal = grpc.StatusCode.UNIMPLEMENTED
        self.batch_calls = 0

    async def CreateTicket(
        self, request: ticketing_service_pb2.CreateTicketRequest, context: Any
    ) -> ticketing_service_pb2.CreateTicketResponse:
        self.create_requests.append(request)
        if request.subject == "reject me":
            await abort_with(
                context, grpc.StatusCode.INVALID_ARGUMENT, "subject is not allowed", "subject_rejected", field="subject"
            )
        known = self.by_request_id.get(request.request_id)
        if known is not None:
            return ticketing_service_pb2.CreateTicketResponse(ticket=self.tickets[known], created=False)
        ticket = ticket_pb2.Ticket(
            id=f"t-{uuid.uuid4().hex[:12]}",
            customer_id=request.customer_id,
            channel=request.channel,
            category=request.category,
            subject=request.subject,
            description=request.description,
            priority=request.priority or common_pb2.PRIORITY_NORMAL,
            status=ticket_pb2.TICKET_STATUS_NEW,
            language=request.language,
            customer_tier=request.customer_tier,
            version=1,
        )
        if request.HasField("wallet_context"):
            ticket.wallet_context.CopyFrom(request.wallet_context)
        ticket.create_time.GetCurrentTime()
        ticket.update_time.CopyFrom(ticket.create_time)
        self.tickets[ticket.id] = ticket
        self.by_request_id[request.request_id] = ticket.id
        return ticketing_service_pb2.CreateTicketResponse(ticket=ticket, created=True)

    async def BatchCreateTickets(
        self, request: ticketing_service_pb2.BatchCreateTicketsRequest, context: Any
    ) -> ticketing_service_pb2.BatchCreateTicketsResponse:
        self.batch_calls += 1
        await context.abort(self.batch_refusal, "refused")
        raise AssertionError("unreachable: abort raises")

    async def GetTicket(
        self, request: ticketing_service_pb2.GetTicketRequest, context: Any
    ) -> ticketing_service_pb2.GetTicketResponse:
        self.entered.set()
        if self.hang:
            await self.never.wait()
        await asyncio.sleep(self.get_delay_s)
        ticket = self.tickets.get(request.ticket_id)
        if ticket is None:
            await abort_with(
                context, grpc.StatusCode.NOT_FOUND, f"ticket {request.ticket_id} not found", "ticket_not_found"
            )
        return ticketing_service_pb2.GetTicketResponse(ticket=ticket)


class FakeRouting(routing_service_pb2_grpc.RoutingServiceServicer):
    def __init__(self) -> None:
        self.list_requests: list[routing_service_pb2.ListQueueStatsRequest] = []
        # Seconds the caller said it would still wait, per GetTicketRouting call.
        self.routing_time_left: list[float] = []
        self.routing_delay_s = 0.0

    async def GetTicketRouting(
        self, request: routing_service_pb2.GetTicketRoutingRequest, context: Any
    ) -> routing_service_pb2.GetTicketRoutingResponse:
        self.routing_time_left.append(context.time_remaining())
        await asyncio.sleep(self.routing_delay_s)
        entry = queue_pb2.QueueEntry(
            ticket_id=request.ticket_id,
            queue="payments",
            priority=common_pb2.PRIORITY_URGENT,
            state=queue_pb2.QUEUE_ENTRY_STATE_WAITING,
            ticket_version=2,
        )
        entry.enqueue_time.GetCurrentTime()
        entry.ticket_create_time.CopyFrom(entry.enqueue_time)
        return routing_service_pb2.GetTicketRoutingResponse(entry=entry)

    async def ListQueueStats(
        self, request: routing_service_pb2.ListQueueStatsRequest, context: Any
    ) -> routing_service_pb2.ListQueueStatsResponse:
        self.list_requests.append(request)
        return routing_service_pb2.ListQueueStatsResponse(
            queues=[queue_pb2.QueueStats(queue="payments", waiting=4, longest_wait=Duration(seconds=42))],
            next_page_token="page-2",
        )


class FakeNotify(notify_service_pb2_grpc.NotifyServiceServicer):
    def __init__(self) -> None:
        self.requests: list[notify_service_pb2.ListNotificationsRequest] = []

    async def ListNotifications(
        self, request: notify_service_pb2.ListNotificationsRequest, context: Any
    ) -> notify_service_pb2.ListNotificationsResponse:
        self.requests.append(request)
        note = notification_pb2.Notification(
            id="n-1",
            user_id=request.user_id,
            channel=notification_pb2.NOTIFICATION_CHANNEL_IN_APP,
            kind="ticket.received",
            title="We have your request",
            body="An agent will answer shortly.",
            ticket_id="t-1",
        )
        return notify_service_pb2.ListNotificationsResponse(notifications=[note])


@dataclass
class Peer:
    server: Any
    address: str
    health: Any


@dataclass
class Peers:
    ticketing: FakeTicketing = field(default_factory=FakeTicketing)
    routing: FakeRouting = field(default_factory=FakeRouting)
    notify: FakeNotify = field(default_factory=FakeNotify)
    servers: dict[str, Peer] = field(default_factory=dict)


async def start_peer(add: Any, servicer: Any) -> Peer:
    server = grpc.aio.server()
    add(servicer, server)
    health_servicer = health.aio.HealthServicer()
    await health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return Peer(server=server, address=f"127.0.0.1:{port}", health=health_servicer)


def dead_address() -> str:
    """An address where nothing listens: a port the OS just handed out and nobody took."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"127.0.0.1:{port}"


@pytest.fixture
async def peers() -> AsyncIterator[Peers]:
    peers = Peers()
    peers.servers["ticketing"] = await start_peer(
        ticketing_service_pb2_grpc.add_TicketingServiceServicer_to_server, peers.ticketing
    )
    peers.servers["routing"] = await start_peer(
        routing_service_pb2_grpc.add_RoutingServiceServicer_to_server, peers.routing
    )
    peers.servers["notify"] = await start_peer(
        notify_service_pb2_grpc.add_NotifyServiceServicer_to_server, peers.notify
    )
    yield peers
    await asyncio.gather(*(peer.server.stop(grace=None) for peer in peers.servers.values()))


@contextlib.asynccontextmanager
async def running_gateway(settings: GatewaySettings) -> AsyncIterator[httpx.AsyncClient]:
    """The app with its lifespan running (channels opened from settings), and an HTTP client for it."""
    app: FastAPI = create_app(settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway") as client,
    ):
        yield client


def gateway_settings(tmp_path: Path, peers: Peers, **overrides: Any) -> GatewaySettings:
    values: dict[str, Any] = {
        "data_dir": tmp_path,
        "ticketing_addr": peers.servers["ticketing"].address,
        "routing_addr": peers.servers["routing"].address,
        "notify_addr": peers.servers["notify"].address,
        "retry_after_s": RETRY_AFTER_S,
        "max_body_bytes": 4096,
    }
    values.update(overrides)
    return GatewaySettings(**values)


@pytest.fixture
async def gateway(tmp_path: Path, peers: Peers) -> AsyncIterator[httpx.AsyncClient]:
    async with running_gateway(gateway_settings(tmp_path, peers)) as client:
        yield client


@pytest.fixture
def auth(tmp_path: Path) -> Any:
    secret = load_or_create_local_secret(tmp_path / "secrets" / "local-jwt.key")

    def headers(role: str, subject: str, **extra: str) -> dict[str, str]:
        token = mint_local_token(secret, role=role, subject=subject, issuer="supportdesk-local", audience="supportdesk")
        return {"Authorization": f"Bearer {token}", **extra}

    return headers


TICKET = {
    "channel": "app",
    "category": "payment_failed",
    "subject": "Payment failed at checkout",
    "description": "The app said E1002 and the money left my account.",
    "wallet_context": {"transaction_ref": "tx-77", "amount": "129.90", "currency": "CNY"},
}


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["code"] == code
    assert body["status"] == status
    return body


async def test_create_ticket_then_replay(gateway: httpx.AsyncClient, peers: Peers, auth: Any) -> None:
    headers = auth("customer", "c-1", **{"Idempotency-Key": "key-1"})
    created = await gateway.post("/v1/tickets", json=TICKET, headers=headers)
    assert created.status_code == 201, created.text
    ticket = created.json()
    assert created.headers["location"] == f"/v1/tickets/{ticket['id']}"
    assert ticket["customer_id"] == "c-1"
    assert ticket["channel"] == "app"
    assert ticket["category"] == "payment_failed"
    assert ticket["status"] == "new"
    assert ticket["language"] == "en"
    assert ticket["wallet_context"]["amount"] == "129.90"
    assert ticket["created_at"].endswith("Z")

    replay = await gateway.post("/v1/tickets", json=TICKET, headers=headers)
    assert replay.status_code == 200
    assert replay.json()["id"] == ticket["id"]

    sent = peers.ticketing.create_requests
    assert [request.request_id for request in sent] == ["c-1:key-1", "c-1:key-1"]
    assert sent[0].customer_id == "c-1"
    assert sent[0].category == ticket_pb2.CATEGORY_PAYMENT_FAILED


async def test_same_key_from_another_caller_is_another_ticket(
    gateway: httpx.AsyncClient, peers: Peers, auth: Any
) -> None:
    first = await gateway.post("/v1/tickets", json=TICKET, headers=auth("customer", "c-1", **{"Idempotency-Key": "k"}))
    second = await gateway.post("/v1/tickets", json=TICKET, headers=auth("customer", "c-2", **{"Idempotency-Key": "k"}))
    assert (first.status_code, second.status_code) == (201, 201)
    assert first.json()["id"] != second.json()["id"]


async def test_without_key_every_post_is_new(gateway: httpx.AsyncClient, peers: Peers, auth: Any) -> None:
    headers = auth("customer", "c-1")
    first = await gateway.post("/v1/tickets", json=TICKET, headers=headers)
    second = await gateway.post("/v1/tickets", json=TICKET, headers=headers)
    assert (first.status_code, second.status_code) == (201, 201)
    ids = [request.request_id for request in peers.ticketing.create_requests]
    assert len(set(ids)) == 2


async def test_unknown_field_is_422_and_never_reaches_ticketing(
    gateway: httpx.AsyncClient, peers: Peers, auth: Any
) -> None:
    response = await gateway.post("/v1/tickets", json={**TICKET, "is_vip": True}, headers=auth("customer", "c-1"))
    body = assert_problem(response, 422, "validation_failed")
    assert [(e["field"], e["code"]) for e in body["errors"]] == [("is_vip", "extra_forbidden")]
    assert peers.ticketing.create_requests == []


async def test_oversized_body_is_413(gateway: httpx.AsyncClient, peers: Peers, auth: Any) -> None:
    big = {**TICKET, "description": "x" * 5000}
    assert_problem(
        await gateway.post("/v1/tickets", json=big, headers=auth("customer", "c-1")), 413, "payload_too_large"
    )


async def test_oversized_chunked_body_is_413(gateway: httpx.AsyncClient, peers: Peers, auth: Any) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        # No Content-Length: only counting the stream can catch this one.
        for _ in range(10):
            yield b" " * 1000

    headers = auth("customer", "c-1", **{"Content-Type": "application/json"})
    response = await gateway.post("/v1/tickets", content=chunks(), headers=headers)
    assert "content-length" not in response.request.headers
    assert_problem(response, 413, "payload_too_large")
    assert peers.ticketing.create_requests == []


async def test_customer_cannot_open_for_someone_else(gateway: httpx.AsyncClient, peers: Peers, auth: Any) -> None:
    response = await gateway.post("/v1/tickets", json={**TICKET, "customer_id": "c-2"}, headers=auth("customer", "c-1"))
    assert_problem(response, 403, "customer_id_mismatch")
    assert peers.ticketing.create_requests == []


async def test_customer_cannot_choose_priority(gateway: httpx.AsyncClient, auth: Any) -> None:
    response = await gateway.post("/v1/tickets", json={**TICKET, "priority": "urgent"}, headers=auth("customer", "c-1"))
    body = assert_problem(response, 403, "field_not_allowed")
    assert [e["field"] for e in body["errors"]] == ["priority"]


async def test_agent_opens_for_a_named_customer(gateway: httpx.AsyncClient, peers: Peers, auth: Any) -> None:
    missing = await gateway.post("/v1/tickets", json=TICKET, headers=auth("agent", "a-1"))
    assert_problem(missing, 422, "validation_failed")
    body = {**TICKET, "customer_id": "c-9", "priority": "high", "customer_tier": "gold"}
    response = await gateway.post("/v1/tickets", json=body, headers=auth("agent", "a-1", **{"Idempotency-Key": "k"}))
    assert response.status_code == 201
    assert response.json()["customer_id"] == "c-9"
    assert response.json()["priority"] == "high"
    assert peers.ticketing.create_requests[-1].request_id == "a-1:k"


async def test_admin_does_not_open_tickets(gateway: httpx.AsyncClient, auth: Any) -> None:
    response = await gateway.post("/v1/tickets", json={**TICKET, "customer_id": "c-1"}, headers=auth("admin", "x"))
    assert_problem(response, 403, "forbidden")


async def test_peer_invalid_argument_is_400_with_its_reason(gateway: httpx.AsyncClient, auth: Any) -> None:
    response = await gateway.post(
        "/v1/tickets", json={**TICKET, "subject": "reject me"}, headers=auth("customer", "c-1")
    )
    body = assert_problem(response, 400, "subject_rejected")
    assert body["detail"] == "subject is not allowed"
    assert body["errors"] == [{"field": "subject", "code": "subject_rejected", "message": "subject is not allowed"}]


async def test_read_own_ticket(gateway: httpx.AsyncClient, auth: Any) -> None:
    created = (await gateway.post("/v1/tickets", json=TICKET, headers=auth("customer", "c-1"))).json()
    response = await gateway.get(f"/v1/tickets/{created['id']}", headers=auth("customer", "c-1"))
    assert response.status_code == 200
    assert response.json() == created
    staff = await gateway.get(f"/v1/tickets/{created['id']}", headers=auth("supervisor", "s-1"))
    assert staff.status_code == 200


async def test_peer_not_found_is_404_ticket_not_found(gateway: httpx.AsyncClient, auth: Any) -> None:
    response = await gateway.get("/v1/tickets/t-missing", headers=auth("agent", "a-1"))
    body = assert_problem(response, 404, "ticket_not_found")
    assert body["instance"] == "/v1/tickets/t-missing"


async def test_customer_reading_someone_elses_ticket_is_404(gateway: httpx.AsyncClient, auth: Any) -> None:
    theirs = (await gateway.post("/v1/tickets", json=TICKET, headers=auth("customer", "c-2"))).json()
    hidden = await gateway.get(f"/v1/tickets/{theirs['id']}", headers=auth("customer", "c-1"))
    absent = await gateway.get("/v1/tickets/t-nope", headers=auth("customer", "c-1"))
    hidden_body = assert_problem(hidden, 404, "ticket_not_found")
    absent_body = assert_problem(absent, 404, "ticket_not_found")
    # Nothing but the path tells "someone else's" from "does not exist".
    hidden_body.pop("instance")
    absent_body.pop("instance")
    assert hidden_body == absent_body
    assert "c-2" not in hidden.text


async def test_ticket_routing_for_staff(gateway: httpx.AsyncClient, auth: Any) -> None:
    response = await gateway.get("/v1/tickets/t-1/routing", headers=auth("supervisor", "s-1"))
    assert response.status_code == 200
    entry = response.json()
    assert entry["queue"] == "payments"
    assert entry["state"] == "waiting"
    assert entry["priority"] == "urgent"
    assert entry["ticket_version"] == 2
    assert entry["enqueued_at"].endswith("Z")
    assert_problem(await gateway.get("/v1/tickets/t-1/routing", headers=auth("customer", "c-1")), 403, "forbidden")


async def test_queue_stats_pass_paging_through(gateway: httpx.AsyncClient, peers: Peers, auth: Any) -> None:
    response = await gateway.get("/v1/queues?page_size=10&page_token=abc", headers=auth("supervisor", "s-1"))
    assert response.status_code == 200
    assert response.json() == {
        "queues": [
            {
                "queue": "payments",
                "waiting": 4,
                "longest_wait_seconds": 42.0,
                "agents_available": 0,
                "agents_busy": 0,
                "offers_outstanding": 0,
                "estimated_wait_seconds": 0.0,
            }
        ],
        "next_page_token": "page-2",
    }
    assert (peers.routing.list_requests[0].page_size, peers.routing.list_requests[0].page_token) == (10, "abc")
    assert_problem(await gateway.get("/v1/queues?page_size=1000", headers=auth("admin", "x")), 422, "validation_failed")


async def test_notifications_are_the_callers_own(gateway: httpx.AsyncClient, peers: Peers, auth: Any) -> None:
    response = await gateway.get("/v1/notifications?user_id=c-2", headers=auth("customer", "c-1"))
    assert response.status_code == 200
    page = response.json()
    assert page["next_page_token"] is None
    assert page["notifications"][0]["channel"] == "in_app"
    assert [request.user_id for request in peers.notify.requests] == ["c-1"]


async def test_peer_down_is_503_at_once(tmp_path: Path, peers: Peers, auth: Any) -> None:
    # A deadline far beyond the guard: only failing fast (not waiting for the peer) can pass.
    settings = gateway_settings(tmp_path, peers, ticketing_addr=dead_address(), request_timeout_s=3600)
    async with running_gateway(settings) as client, asyncio.timeout(GUARD_S):
        response = await client.get("/v1/tickets/t-1", headers=auth("agent", "a-1"))
        created = await client.post("/v1/tickets", json=TICKET, headers=auth("customer", "c-1"))
    assert_problem(response, 503, "dependency_unavailable")
    assert response.headers["retry-after"] == str(RETRY_AFTER_S)
    assert_problem(created, 503, "dependency_unavailable")


async def test_peer_that_never_answers_is_503_after_the_deadline(tmp_path: Path, peers: Peers, auth: Any) -> None:
    peers.ticketing.hang = True
    settings = gateway_settings(tmp_path, peers, request_timeout_s=0.3)
    async with running_gateway(settings) as client, asyncio.timeout(GUARD_S):
        response = await client.get("/v1/tickets/t-1", headers=auth("agent", "a-1"))
    assert peers.ticketing.entered.is_set(), "the call never reached the peer"
    assert_problem(response, 503, "dependency_unavailable")
    assert response.headers["retry-after"] == str(RETRY_AFTER_S)


async def test_calls_share_the_request_deadline(tmp_path: Path, peers: Peers, auth: Any) -> None:
    # An agent's read takes two calls: the ticket, then routing (is it offered to them?).
    settings = gateway_settings(tmp_path, peers, request_timeout_s=2.0)
    async with running_gateway(settings) as client:
        created = await client.post("/v1/tickets", json=TICKET, headers=auth("customer", "c-1"))
        peers.ticketing.get_delay_s = 0.5
        response = await client.get(f"/v1/tickets/{created.json()['id']}", headers=auth("agent", "a-1"))
    assert_problem(response, 404, "ticket_not_found")  # routing holds it for nobody
    [time_left] = peers.routing.routing_time_left
    # The second call got what the first left of the request's 2 s, not 2 s of its own.
    assert time_left <= 1.5


async def test_calls_that_each_fit_the_timeout_but_not_together_are_503(
    tmp_path: Path, peers: Peers, auth: Any
) -> None:
    settings = gateway_settings(tmp_path, peers, request_timeout_s=0.4)
    async with running_gateway(settings) as client, asyncio.timeout(GUARD_S):
        created = await client.post("/v1/tickets", json=TICKET, headers=auth("customer", "c-1"))
        peers.ticketing.get_delay_s = peers.routing.routing_delay_s = 0.25
        response = await client.get(f"/v1/tickets/{created.json()['id']}", headers=auth("agent", "a-1"))
    assert_problem(response, 503, "dependency_unavailable")
    assert response.headers["retry-after"] == str(RETRY_AFTER_S)


async def test_readyz_when_all_peers_serve(gateway: httpx.AsyncClient) -> None:
    response = await gateway.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ready",
        "dependencies": {"ticketing": "serving", "routing": "serving", "notify": "serving"},
    }


async def test_readyz_when_a_peer_is_down(tmp_path: Path, peers: Peers) -> None:
    settings = gateway_settings(tmp_path, peers, routing_addr=dead_address())
    async with running_gateway(settings) as client, asyncio.timeout(GUARD_S):
        response = await client.get("/readyz")
        alive = await client.get("/healthz")
    body = assert_problem(response, 503, "dependency_unavailable")
    assert response.headers["retry-after"] == str(RETRY_AFTER_S)
    assert body["dependencies"] == {"ticketing": "serving", "routing": "unavailable", "notify": "serving"}
    assert (alive.status_code, alive.json()) == (200, {"status": "ok"})


async def test_readyz_when_a_peer_is_not_serving(gateway: httpx.AsyncClient, peers: Peers) -> None:
    await peers.servers["notify"].health.set("", health_pb2.HealthCheckResponse.NOT_SERVING)
    response = await gateway.get("/readyz")
    body = assert_problem(response, 503, "dependency_unavailable")
    assert body["dependencies"]["notify"] == "not_serving"


async def test_healthz_needs_no_token(gateway: httpx.AsyncClient) -> None:
    response = await gateway.get("/healthz")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})
