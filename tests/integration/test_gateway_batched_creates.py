"""``POST /v1/tickets`` arriving together share calls to the real ticketing service (ADR 0069), and each
request is still answered as if it had made its own call: its ticket, its error, its trace, its deadline."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import grpc
import httpx
import pytest
from nats.js import JetStreamContext
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import REGISTRY

from tests.integration import test_gateway_edges as edges
from tests.integration.test_gateway_edges import Peers, peers
from tests.integration.test_gateway_help import RETRY_AFTER_S, Auth, assert_problem, auth, running_gateway
from tests.integration.test_gateway_tickets import serving_ticketing
from tests.waiting import eventually

pytestmark = pytest.mark.integration

__all__ = ["auth", "peers"]  # fixtures re-used from the help and edge tests

BODY = {"channel": "app", "category": "payment_failed", "subject": "Payment failed", "language": "en"}
# Bounds a test that would otherwise hang; the gateway answers long before.
GUARD_S = 30


@pytest.fixture
async def ticketing(fresh_database_url: str, js: JetStreamContext) -> AsyncIterator[tuple[str, asyncpg.Pool]]:
    async with serving_ticketing(fresh_database_url, js) as served:
        yield served


def batched_calls() -> tuple[float, float]:
    """How many calls the gateway's creates have shared so far, and how many creates those calls held."""
    labels = {"write": "gateway.create_tickets"}
    count = REGISTRY.get_sample_value("supportdesk_coalesced_batch_calls_count", labels) or 0.0
    held = REGISTRY.get_sample_value("supportdesk_coalesced_batch_calls_sum", labels) or 0.0
    return count, held


def post(gateway: httpx.AsyncClient, headers: dict[str, str], **body: Any) -> Any:
    return gateway.post("/v1/tickets", json={**BODY, **body}, headers=headers)


async def test_creates_arriving_together_share_calls_and_each_gets_its_own_answer(
    tmp_path: Path, ticketing: tuple[str, asyncpg.Pool], auth: Auth, spans: InMemorySpanExporter
) -> None:
    address, pool = ticketing
    async with running_gateway(tmp_path, address, create_calls_in_flight=1) as gateway:
        customer = auth("customer", "c-1")
        replayed, reused = str(uuid.uuid4()), str(uuid.uuid4())
        original = await post(gateway, {**customer, "Idempotency-Key": replayed})
        assert (await post(gateway, {**customer, "Idempotency-Key": reused})).status_code == 201
        calls_before, held_before = batched_calls()

        trace_ids = [uuid.uuid4().hex for _ in range(30)]
        fresh = [
            post(
                gateway,
                {**customer, "Idempotency-Key": str(uuid.uuid4()), "traceparent": f"00-{t}-00f067aa0ba902b7-01"},
            )
            for t in trace_ids
        ]
        replay = post(gateway, {**customer, "Idempotency-Key": replayed})
        conflict = post(gateway, {**customer, "Idempotency-Key": reused}, subject="Something else")
        *created, replayed_answer, conflict_answer = await asyncio.gather(*fresh, replay, conflict)

        calls, held = batched_calls()
        assert held - held_before == 32, "every create went through the shared calls"
        assert calls - calls_before < 32, "creates arriving together shared a call"

        assert [r.status_code for r in created] == [201] * 30, [r.text for r in created if r.status_code != 201]
        assert len({r.json()["id"] for r in created}) == 30
        assert (replayed_answer.status_code, replayed_answer.json()["id"]) == (200, original.json()["id"])
        assert_problem(conflict_answer, 422, "idempotency_key_reused")

        # Each ticket is in the trace of the request that opened it, not in its neighbours'.
        staff = auth("supervisor", "s-1")
        for trace_id, response in zip(trace_ids, created, strict=True):
            timeline = await gateway.get(f"/v1/tickets/{response.json()['id']}/timeline", headers=staff)
            assert timeline.json()["entries"][0]["trace_id"] == trace_id
    assert await pool.fetchval("SELECT count(*) FROM tickets") == 32


async def test_a_create_waiting_behind_a_stuck_call_answers_503_at_its_deadline_and_nothing_is_lost(
    tmp_path: Path, ticketing: tuple[str, asyncpg.Pool], auth: Auth
) -> None:
    address, pool = ticketing
    customer = auth("customer", "c-1")
    keys = [str(uuid.uuid4()), str(uuid.uuid4())]
    async with running_gateway(tmp_path, address, create_calls_in_flight=1, request_timeout_s=1.0) as gateway:
        async with pool.acquire() as lock, lock.transaction():
            # Ticket inserts wait for this lock: the first create's call is stuck in ticketing.
            await lock.execute("LOCK TABLE tickets IN SHARE MODE")
            first = asyncio.create_task(post(gateway, {**customer, "Idempotency-Key": keys[0]}))

            async def insert_waits() -> bool:
                waiting = await pool.fetchval(
                    "SELECT count(*) FROM pg_stat_activity"
                    " WHERE wait_event_type = 'Lock' AND datname = current_database()"
                )
                return bool(waiting)

            await eventually(insert_waits, what="the first create to wait on the lock")
            # The one call allowed is in flight: this create waits for it, then for its own.
            second = asyncio.create_task(post(gateway, {**customer, "Idempotency-Key": keys[1]}))
            async with asyncio.timeout(GUARD_S):
                answers = await asyncio.gather(first, second)
        for answer in answers:
            assert_problem(answer, 503, "dependency_unavailable")
            assert answer.headers["Retry-After"] == str(RETRY_AFTER_S)

        # Lock released: retries with the same keys get one ticket each, whatever had already been written.
        retried = [await post(gateway, {**customer, "Idempotency-Key": key}) for key in keys]
        assert {r.status_code for r in retried} <= {200, 201}
        assert len({r.json()["id"] for r in retried}) == 2
    assert await pool.fetchval("SELECT count(*) FROM tickets") == 2


async def concurrent_creates(gateway: httpx.AsyncClient, auth: Auth, count: int) -> list[httpx.Response]:
    customer = auth("customer", "c-1")
    return list(
        await asyncio.gather(*(post(gateway, {**customer, "Idempotency-Key": str(uuid.uuid4())}) for _ in range(count)))
    )


async def test_creates_fall_back_to_a_call_each_when_ticketing_has_no_batch_call(
    tmp_path: Path, peers: Peers, auth: Auth
) -> None:
    """A ticketing replica older than BatchCreateTickets (mid-upgrade) still gets every create."""
    settings = edges.gateway_settings(tmp_path, peers, create_calls_in_flight=1)
    async with edges.running_gateway(settings) as gateway, asyncio.timeout(GUARD_S):
        answers = await concurrent_creates(gateway, auth, 20)
    assert peers.ticketing.batch_calls >= 1, "creates arriving together were offered as a batch"
    assert [a.status_code for a in answers] == [201] * 20
    assert len({a.json()["id"] for a in answers}) == 20
    assert len(peers.ticketing.create_requests) == 20


async def test_a_batch_call_that_fails_whole_answers_503_for_each_of_its_creates(
    tmp_path: Path, peers: Peers, auth: Auth
) -> None:
    peers.ticketing.batch_refusal = grpc.StatusCode.UNAVAILABLE
    settings = edges.gateway_settings(tmp_path, peers, create_calls_in_flight=1)
    async with edges.running_gateway(settings) as gateway, asyncio.timeout(GUARD_S):
        answers = await concurrent_creates(gateway, auth, 20)
    assert peers.ticketing.batch_calls >= 1
    refused = [a for a in answers if a.status_code != 201]
    assert refused, "the creates of the failed batch call are refused"
    for answer in refused:
        assert_problem(answer, 503, "dependency_unavailable")
        assert answer.headers["Retry-After"] == str(edges.RETRY_AFTER_S)
    # Only the creates sent alone reached CreateTicket, and only they were answered 201.
    assert len(peers.ticketing.create_requests) == len(answers) - len(refused)
