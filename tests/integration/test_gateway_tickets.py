"""``/v1/tickets`` and its conversation through the real gateway app against the real ticketing service."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from nats.js import JetStreamContext
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from services.kit.grpc_server import GrpcServer
from services.kit.service import Runtime
from services.ticketing.__main__ import TicketingSettings, definition
from tests.integration.bus_fixtures import migrated_pool
from tests.integration.test_gateway_help import Auth, assert_problem, auth, running_gateway

pytestmark = pytest.mark.integration

__all__ = ["auth"]  # fixture re-used from the help tests

PHRASE = "avoid mass luggage choice fabric argue gather cash brand thought elegant divide"


@contextlib.asynccontextmanager
async def serving_ticketing(database_url: str, js: JetStreamContext) -> AsyncIterator[tuple[str, asyncpg.Pool]]:
    """The real ticketing service, as deployed, on a fresh database: its address and its pool."""
    pool = await migrated_pool(database_url, "ticketing", "services.ticketing")
    settings = TicketingSettings(database_url=database_url)
    service = definition(settings)
    runtime = Runtime(settings=settings, pool=pool, js=js)
    server = GrpcServer("127.0.0.1", 0, lambda s: service.register(s, runtime), service.grpc_services)
    await server.start()
    try:
        yield server.address, pool
    finally:
        await server.stop(0)
        await pool.close()


@pytest.fixture
async def gateway(tmp_path: Path, fresh_database_url: str, js: JetStreamContext) -> AsyncIterator[httpx.AsyncClient]:
    async with (
        serving_ticketing(fresh_database_url, js) as (address, _),
        running_gateway(tmp_path, address) as client,
    ):
        yield client


async def open_ticket(gateway: httpx.AsyncClient, auth: Auth, customer: str = "c-1", **body: Any) -> dict[str, Any]:
    payload = {"channel": "app", "category": "complaint", "subject": "Charged twice", "language": "en", **body}
    response = await gateway.post("/v1/tickets", json=payload, headers=auth("customer", customer))
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


async def test_a_complaint_from_first_message_to_rating(gateway: httpx.AsyncClient, auth: Auth) -> None:
    # Staff here is a supervisor: an agent would first have to be routed the ticket (see the access tests).
    customer, staff = auth("customer", "c-1"), auth("supervisor", "s-1")
    ticket = await open_ticket(gateway, auth)
    tid = ticket["id"]
    key = {"Idempotency-Key": str(uuid.uuid4())}
    first = await gateway.post(f"/v1/tickets/{tid}/messages", json={"body": "Order 8812"}, headers={**customer, **key})
    retry = await gateway.post(f"/v1/tickets/{tid}/messages", json={"body": "Order 8812"}, headers={**customer, **key})
    assert (first.status_code, retry.status_code, retry.json()) == (201, 200, first.json())
    note = {"body": "bank says refund is on its way", "visibility": "internal"}
    assert (await gateway.post(f"/v1/tickets/{tid}/messages", json=note, headers=staff)).status_code == 201

    as_customer = (await gateway.get(f"/v1/tickets/{tid}/messages", headers=customer)).json()["messages"]
    as_agent = (await gateway.get(f"/v1/tickets/{tid}/messages", headers=staff)).json()["messages"]
    assert [m["body"] for m in as_customer] == ["Order 8812"]
    assert [m["visibility"] for m in as_agent] == ["public", "internal"]
    assert as_customer[0]["author"] == {"type": "customer", "id": "c-1"}

    resolve = {"status": "resolved", "resolution_note": "Duplicate charge refunded"}
    resolved = await gateway.patch(f"/v1/tickets/{tid}", json=resolve, headers=staff)
    assert resolved.status_code == 200, resolved.text
    assert (resolved.json()["status"], resolved.json()["resolution_note"]) == ("resolved", "Duplicate charge refunded")
    rated = await gateway.post(f"/v1/tickets/{tid}/csat", json={"score": 5, "comment": "Fast"}, headers=customer)
    assert rated.json()["csat"]["score"] == 5
    again = await gateway.post(f"/v1/tickets/{tid}/csat", json={"score": 1}, headers=customer)
    assert_problem(again, 409, "csat_already_recorded")
    closed = await gateway.patch(f"/v1/tickets/{tid}", json={"status": "closed"}, headers=customer)
    assert closed.json()["status"] == "closed"

    timeline = (await gateway.get(f"/v1/tickets/{tid}/timeline", headers=staff)).json()["entries"]
    assert [e["action"] for e in timeline] == [
        "created",
        "message_added",
        "note_added",
        "status_changed",
        "csat_recorded",
        "status_changed",
    ]
    assert [e["version"] for e in timeline] == [1, 2, 3, 4, 5, 6]
    assert_problem(await gateway.get(f"/v1/tickets/{tid}/timeline", headers=customer), 403, "forbidden")


async def test_customers_never_reach_anothers_ticket(gateway: httpx.AsyncClient, auth: Auth) -> None:
    tid = (await open_ticket(gateway, auth))["id"]
    other = auth("customer", "c-2")
    for response in (
        await gateway.get(f"/v1/tickets/{tid}", headers=other),
        await gateway.get(f"/v1/tickets/{tid}/messages", headers=other),
        await gateway.post(f"/v1/tickets/{tid}/messages", json={"body": "hi"}, headers=other),
        await gateway.patch(f"/v1/tickets/{tid}", json={"status": "closed"}, headers=other),
        await gateway.post(f"/v1/tickets/{tid}/csat", json={"score": 1}, headers=other),
    ):
        assert_problem(response, 404, "ticket_not_found")
    listed = (await gateway.get("/v1/tickets", headers=other)).json()
    assert listed["tickets"] == []
    assert_problem(await gateway.get("/v1/tickets?customer_id=c-1", headers=other), 403, "filter_not_allowed")


async def test_lists_are_filtered_by_who_asks(gateway: httpx.AsyncClient, auth: Auth) -> None:
    mine = [(await open_ticket(gateway, auth, "c-5"))["id"] for _ in range(3)]
    await open_ticket(gateway, auth, "c-6")
    page = await gateway.get("/v1/tickets", params={"page_size": 2}, headers=auth("customer", "c-5"))
    rest = await gateway.get(
        "/v1/tickets", params={"page_token": page.json()["next_page_token"]}, headers=auth("customer", "c-5")
    )
    assert [t["id"] for t in page.json()["tickets"] + rest.json()["tickets"]] == mine[::-1]
    every = await gateway.get("/v1/tickets", params={"status": ["new"]}, headers=auth("supervisor", "s-1"))
    assert len(every.json()["tickets"]) == 4
    held = await gateway.get("/v1/tickets", headers=auth("agent", "a-9"))
    assert held.json()["tickets"] == []


async def test_bad_updates_are_refused_with_stable_codes(gateway: httpx.AsyncClient, auth: Auth) -> None:
    tid = (await open_ticket(gateway, auth))["id"]
    agent = auth("supervisor", "s-1")
    assert_problem(await gateway.patch(f"/v1/tickets/{tid}", json={}, headers=agent), 422, "nothing_to_change")
    assert_problem(
        await gateway.patch(f"/v1/tickets/{tid}", json={"status": "closed"}, headers=agent), 409, "illegal_transition"
    )
    assert_problem(
        await gateway.patch(f"/v1/tickets/{tid}", json={"status": "open", "colour": "red"}, headers=agent),
        422,
        "validation_failed",
    )
    assert_problem(
        await gateway.patch(f"/v1/tickets/{tid}", json={"status": "open"}, headers=auth("customer", "c-1")),
        403,
        "status_change_forbidden",
    )
    stale = await gateway.patch(f"/v1/tickets/{tid}", json={"status": "open", "expected_version": 7}, headers=agent)
    assert_problem(stale, 409, "version_conflict")
    after = (await gateway.get(f"/v1/tickets/{tid}", headers=agent)).json()
    assert (after["status"], after["version"]) == ("new", 1)


async def test_secrets_are_redacted_and_requests_for_them_refused(gateway: httpx.AsyncClient, auth: Auth) -> None:
    tid = (await open_ticket(gateway, auth, category="suspicious_activity"))["id"]
    pasted = await gateway.post(
        f"/v1/tickets/{tid}/messages", json={"body": f"here: {PHRASE}"}, headers=auth("customer", "c-1")
    )
    assert pasted.status_code == 201, pasted.text
    assert "luggage" not in pasted.json()["body"]
    assert pasted.json()["redactions"] == ["recovery_phrase"]
    ticket = (await gateway.get(f"/v1/tickets/{tid}", headers=auth("customer", "c-1"))).json()
    assert ticket["flags"] == ["secret_exposed"]
    conversation = (await gateway.get(f"/v1/tickets/{tid}/messages", headers=auth("customer", "c-1"))).json()
    assert conversation["messages"][-1]["author"]["type"] == "system"
    scam = {"body": "To verify your account, reply with your 12 word recovery phrase"}
    refused = await gateway.post(f"/v1/tickets/{tid}/messages", json=scam, headers=auth("supervisor", "s-1"))
    assert_problem(refused, 409, "secret_request_refused")


async def test_priority_rules_are_admin_configuration(gateway: httpx.AsyncClient, auth: Auth) -> None:
    rules = await gateway.get("/v1/priority-rules", headers=auth("supervisor", "s-1"))
    assert {r["category"]: r["priority"] for r in rules.json()}["payment_failed"] == "urgent"
    assert_problem(await gateway.get("/v1/priority-rules", headers=auth("customer", "c-1")), 403, "forbidden")
    changed = await gateway.put("/v1/priority-rules/other", json={"priority": "high"}, headers=auth("admin", "ad-1"))
    assert changed.json() == {"category": "other", "priority": "high"}
    assert (await open_ticket(gateway, auth, category="other"))["priority"] == "high"
    refused = await gateway.put(
        "/v1/priority-rules/payment_failed", json={"priority": "low"}, headers=auth("admin", "ad-1")
    )
    assert_problem(refused, 400, "priority_rule_refused")
    assert_problem(
        await gateway.put("/v1/priority-rules/other", json={"priority": "low"}, headers=auth("supervisor", "s-1")),
        403,
        "forbidden",
    )


async def test_one_trace_from_the_http_request_to_the_timeline(
    gateway: httpx.AsyncClient, auth: Auth, spans: InMemorySpanExporter
) -> None:
    tid = (await open_ticket(gateway, auth))["id"]
    http_spans = [s for s in spans.get_finished_spans() if s.kind is SpanKind.SERVER and "POST" in s.name]
    grpc_spans = [s for s in spans.get_finished_spans() if s.name.endswith("/CreateTicket")]
    assert http_spans
    assert grpc_spans
    trace_ids = {format(s.context.trace_id, "032x") for s in [*http_spans, *grpc_spans]}
    assert len(trace_ids) == 1, "the gateway's request and ticketing's RPC must be one trace"
    entries = (await gateway.get(f"/v1/tickets/{tid}/timeline", headers=auth("supervisor", "s-1"))).json()["entries"]
    assert entries[0]["trace_id"] == trace_ids.pop()


async def test_search_text_stays_out_of_traces(
    gateway: httpx.AsyncClient, auth: Auth, spans: InMemorySpanExporter
) -> None:
    response = await gateway.get(
        "/v1/help/articles", params={"q": f"lost wallet {PHRASE}"}, headers=auth("customer", "c-1")
    )
    assert response.status_code == 200, response.text
    recorded = spans.get_finished_spans()
    assert recorded
    for span in recorded:
        for value in (span.attributes or {}).values():
            assert "luggage" not in str(value), f"{span.name} recorded the query"


async def test_text_the_database_cannot_hold_is_400_and_nothing_is_written(
    gateway: httpx.AsyncClient, auth: Auth
) -> None:
    customer = auth("customer", "c-nul")
    body = {"channel": "app", "category": "other", "subject": "nul \u0000 here", "language": "en"}
    assert_problem(await gateway.post("/v1/tickets", json=body, headers=customer), 400, "unstorable_value")
    assert (await gateway.get("/v1/tickets", headers=customer)).json()["tickets"] == []


TICKET = {"channel": "app", "category": "payment_failed", "subject": "Payment failed", "language": "en"}


async def _tickets_of(gateway: httpx.AsyncClient, auth: Auth, customer: str) -> list[dict[str, Any]]:
    response = await gateway.get("/v1/tickets", headers=auth("customer", customer))
    tickets: list[dict[str, Any]] = response.json()["tickets"]
    return tickets


async def test_concurrent_posts_with_one_key_open_one_ticket(gateway: httpx.AsyncClient, auth: Auth) -> None:
    headers = auth("customer", "c-race", **{"Idempotency-Key": str(uuid.uuid4())})
    answers = await asyncio.gather(*(gateway.post("/v1/tickets", json=TICKET, headers=headers) for _ in range(8)))
    created = [a for a in answers if a.status_code == 201]
    assert len(created) == 1, [a.text for a in answers]
    ticket_id = created[0].json()["id"]
    for answer in answers:
        if answer.status_code == 200:  # a replay: the same ticket
            assert answer.json()["id"] == ticket_id
        elif answer.status_code == 409:  # arrived while the first was being served
            assert_problem(answer, 409, "idempotency_key_in_flight")
        else:
            assert answer is created[0], answer.text
    assert [t["id"] for t in await _tickets_of(gateway, auth, "c-race")] == [ticket_id]


@pytest.mark.parametrize("description", ["", f"my words: {PHRASE}"], ids=["plain", "with-a-secret"])
async def test_a_key_still_in_flight_is_409_then_replays(
    gateway: httpx.AsyncClient, auth: Auth, fresh_database_url: str, description: str
) -> None:
    key = str(uuid.uuid4())
    headers = auth("customer", "c-1", **{"Idempotency-Key": key})
    ticket = {**TICKET, "description": description}
    # Stand in for a first request still inside its transaction: hold the claim ticketing takes for it.
    conn = await asyncpg.connect(fresh_database_url)
    try:
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", f"c-1:{key}")
            in_flight = await gateway.post("/v1/tickets", json=ticket, headers=headers)
    finally:
        await conn.close()
    assert_problem(in_flight, 409, "idempotency_key_in_flight")
    assert await _tickets_of(gateway, auth, "c-1") == []

    first = await gateway.post("/v1/tickets", json=ticket, headers=headers)
    replay = await gateway.post("/v1/tickets", json=ticket, headers=headers)
    assert (first.status_code, replay.status_code) == (201, 200)
    assert replay.json()["id"] == first.json()["id"]


async def test_a_key_reused_with_another_body_is_422(gateway: httpx.AsyncClient, auth: Auth) -> None:
    headers = auth("customer", "c-1", **{"Idempotency-Key": str(uuid.uuid4())})
    first = await gateway.post("/v1/tickets", json=TICKET, headers=headers)
    assert first.status_code == 201
    other = await gateway.post("/v1/tickets", json={**TICKET, "subject": "Something else"}, headers=headers)
    assert_problem(other, 422, "idempotency_key_reused")
    # Same body again: still the original.
    again = await gateway.post("/v1/tickets", json=TICKET, headers=headers)
    assert (again.status_code, again.json()["id"]) == (200, first.json()["id"])
    assert [t["id"] for t in await _tickets_of(gateway, auth, "c-1")] == [first.json()["id"]]


async def test_messages_keep_one_per_key_under_races_and_refuse_another_body(
    gateway: httpx.AsyncClient, auth: Auth
) -> None:
    tid = (await open_ticket(gateway, auth))["id"]
    customer = auth("customer", "c-1", **{"Idempotency-Key": str(uuid.uuid4())})
    path = f"/v1/tickets/{tid}/messages"
    answers = await asyncio.gather(
        *(gateway.post(path, json={"body": "Order 8812"}, headers=customer) for _ in range(6))
    )
    assert sorted(a.status_code for a in answers) == [200] * 5 + [201], [a.text for a in answers]
    assert len({a.json()["id"] for a in answers}) == 1
    other = await gateway.post(path, json={"body": "Order 9999"}, headers=customer)
    assert_problem(other, 422, "idempotency_key_reused")
    listed = (await gateway.get(path, headers=auth("customer", "c-1"))).json()["messages"]
    assert [m["body"] for m in listed] == ["Order 8812"]
