"""``Idempotency-Key`` on every creating POST but tickets' (``test_gateway_tickets`` has those), through the real
gateway against real ticketing, routing and notify: replay, 422 for another body, 409 while in flight, and one
object under a burst of identical POSTs."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import nats
import pytest
from fastapi import FastAPI

from services.gateway.app import create_app
from services.gateway.settings import GatewaySettings
from services.gateway.tokens import load_or_create_local_secret, mint_local_token
from services.kit.grpc_server import GrpcServer
from services.kit.idempotency_store import claim_key
from services.kit.service import Runtime, ServiceDefinition
from services.kit.settings import ServiceSettings
from services.notify.__main__ import DEFINITION as NOTIFY
from services.notify.deliveries import admin as webhook_admin
from services.notify.settings import NotifySettings
from services.routing import agents, service
from services.routing.__main__ import DEFINITION as ROUTING
from services.routing.sla import service as sla
from services.ticketing.__main__ import TicketingSettings, definition
from services.ticketing.help import service as help_service
from tests.integration.bus_fixtures import migrated_pool
from tests.integration.test_gateway_help import assert_problem

pytestmark = pytest.mark.integration

ADMIN = "ad-idem"
BURST = 8

Body = dict[str, Any]


@dataclass(frozen=True)
class Creating:
    """A creating POST: how to build a body around a unique ``marker`` and find what it created in a list."""

    name: str
    path: str
    scope: str
    body: Callable[[str], Body]
    other: Callable[[Body], Body]
    listing: str
    listed: Callable[[Body], list[Body]]
    # The field of a created object that holds the marker.
    marked: str
    # The same request with the defaults the gateway fills in written out: the same body.
    with_defaults: Callable[[Body], Body] | None = None
    params: dict[str, str] = field(default_factory=dict)


SKILLS = [{"name": "payments", "proficiency": 5}]
TARGETS = [{"metric": "first_response", "target_seconds": 300}]
HOURS = [{"weekday": day, "open": "09:00", "close": "18:00"} for day in range(1, 6)]

CASES = [
    Creating(
        name="agent",
        path="/v1/agents",
        scope=agents.CLAIM_SCOPE,
        body=lambda m: {"agent_id": m, "display_name": "Li Lei", "skills": SKILLS, "languages": ["en"], "capacity": 2},
        other=lambda b: {**b, "capacity": 3},
        listing="/v1/agents",
        listed=lambda page: page["agents"],
        marked="id",
    ),
    Creating(
        name="help-article",
        path="/v1/help/articles",
        scope=help_service.CLAIM_SCOPE,
        body=lambda m: {
            "locale": "en",
            "slug": m,
            "title": "Staking rewards",
            "body": "When rewards arrive.",
            "category": "beta_access",
        },
        other=lambda b: {**b, "title": "Staking rewards, again"},
        listing="/v1/help/articles",
        listed=lambda page: [r["article"] for r in page["results"]],
        marked="slug",
        with_defaults=lambda b: {**b, "tags": [], "published": False},
        params={"include_unpublished": "true", "page_size": "100"},
    ),
    Creating(
        name="routing-rule",
        path="/v1/routing-rules",
        scope=service.RULE_CLAIM_SCOPE,
        body=lambda m: {
            "name": m,
            "position": 50,
            "match": {"categories": ["beta_access"]},
            "queue": "beta",
            "steps": [{"after_seconds": 0, "any_agent": True}],
        },
        other=lambda b: {**b, "queue": "beta-two"},
        listing="/v1/routing-rules",
        listed=lambda page: page["rules"],
        marked="name",
        params={"page_size": "100"},
    ),
    Creating(
        name="sla-policy",
        path="/v1/sla/policies",
        scope=sla.POLICY_CLAIM_SCOPE,
        # No position: "after the last" is decided by the service and never makes a retry differ.
        body=lambda m: {"name": m, "match": {"categories": ["beta_access"]}, "targets": TARGETS},
        other=lambda b: {**b, "targets": [{"metric": "first_response", "target_seconds": 120}]},
        listing="/v1/sla/policies",
        listed=lambda page: page["policies"],
        marked="name",
        with_defaults=lambda b: {**b, "warning_percents": [50, 80]},
        params={"page_size": "100"},
    ),
    Creating(
        name="sla-calendar",
        path="/v1/sla/calendars",
        scope=sla.CALENDAR_CLAIM_SCOPE,
        body=lambda m: {"name": m, "time_zone": "Asia/Shanghai", "hours": HOURS},
        other=lambda b: {**b, "holidays": ["2026-10-01"]},
        listing="/v1/sla/calendars",
        listed=lambda page: page["calendars"],
        marked="name",
        with_defaults=lambda b: {**b, "holidays": []},
        params={"page_size": "100"},
    ),
    Creating(
        name="webhook",
        path="/v1/webhooks",
        scope=webhook_admin.CLAIM_SCOPE,
        body=lambda m: {"subscriber": m, "url": "https://risk.example/hook", "event_types": ["wallet.>"]},
        other=lambda b: {**b, "url": "https://risk.example/other"},
        listing="/v1/webhooks",
        listed=lambda page: page["webhooks"],
        marked="subscriber",
        with_defaults=lambda b: {**b, "enabled": True, "description": ""},
        params={"page_size": "100"},
    ),
]


@dataclass
class Desk:
    http: httpx.AsyncClient
    database_url: str
    secret: bytes

    def admin(self, key: str | None = None) -> dict[str, str]:
        token = mint_local_token(
            self.secret, role="admin", subject=ADMIN, issuer="supportdesk-local", audience="supportdesk"
        )
        return {"Authorization": f"Bearer {token}", **({"Idempotency-Key": key} if key else {})}

    async def count(self, case: Creating, marker: str) -> int:
        page = await self.http.get(case.listing, params=case.params, headers=self.admin())
        assert page.status_code == 200, page.text
        return sum(1 for item in case.listed(page.json()) if item[case.marked] == marker)


@contextlib.asynccontextmanager
async def serving(service_definition: ServiceDefinition, settings: ServiceSettings, js: Any) -> AsyncIterator[str]:
    """A service's gRPC API alone (no relay, no consumers: creating needs neither); yields its address."""
    pool = await migrated_pool(settings.database_url, service_definition.schema, service_definition.package)
    runtime = Runtime(settings=settings, pool=pool, js=js)
    server = GrpcServer(
        "127.0.0.1", 0, lambda s: service_definition.register(s, runtime), service_definition.grpc_services
    )
    await server.start()
    try:
        yield server.address
    finally:
        await server.stop(0)
        await pool.close()


@pytest.fixture(scope="module")
async def desk(
    tmp_path_factory: pytest.TempPathFactory, module_database_url: str, nats_url: str
) -> AsyncIterator[Desk]:
    data_dir: Path = tmp_path_factory.mktemp("gateway")
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    ticketing_settings = TicketingSettings(database_url=module_database_url)
    try:
        async with (
            serving(definition(ticketing_settings), ticketing_settings, js) as ticketing,
            serving(ROUTING, ServiceSettings(database_url=module_database_url), js) as routing,
            serving(NOTIFY, NotifySettings(database_url=module_database_url), js) as notify,
        ):
            app: FastAPI = create_app(
                GatewaySettings(
                    data_dir=data_dir,
                    ticketing_addr=ticketing,
                    routing_addr=routing,
                    notify_addr=notify,
                    # The bursts below are one caller's; the budget is not what is under test.
                    rate_limit_enabled=False,
                )
            )
            async with (
                app.router.lifespan_context(app),
                httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway") as http,
            ):
                secret = load_or_create_local_secret(data_dir / "secrets" / "local-jwt.key")
                yield Desk(http, module_database_url, secret)
    finally:
        await nc.close()


def fresh_marker() -> str:
    # Valid as an agent id, a slug, a name and a subscriber.
    return f"idem-{uuid.uuid4().hex[:12]}"


@pytest.fixture(params=CASES, ids=[case.name for case in CASES])
def case(request: pytest.FixtureRequest) -> Creating:
    chosen: Creating = request.param
    return chosen


async def test_the_same_key_and_body_replay_the_original(desk: Desk, case: Creating) -> None:
    marker, key = fresh_marker(), str(uuid.uuid4())
    body = case.body(marker)
    first = await desk.http.post(case.path, json=body, headers=desk.admin(key))
    assert first.status_code == 201, first.text
    replays = [await desk.http.post(case.path, json=body, headers=desk.admin(key))]
    if case.with_defaults is not None:  # the defaults written out ask for the same
        replays.append(await desk.http.post(case.path, json=case.with_defaults(body), headers=desk.admin(key)))
    for replay in replays:
        assert replay.status_code == 200, replay.text
        assert replay.json() == first.json()
        assert replay.headers["Location"] == first.headers["Location"]
    assert await desk.count(case, marker) == 1


async def test_the_same_key_with_another_body_is_422(desk: Desk, case: Creating) -> None:
    marker, key = fresh_marker(), str(uuid.uuid4())
    body = case.body(marker)
    first = await desk.http.post(case.path, json=body, headers=desk.admin(key))
    assert first.status_code == 201, first.text
    assert_problem(
        await desk.http.post(case.path, json=case.other(body), headers=desk.admin(key)), 422, "idempotency_key_reused"
    )
    # Nor does another marker under the key create anything.
    assert_problem(
        await desk.http.post(case.path, json=case.body(fresh_marker()), headers=desk.admin(key)),
        422,
        "idempotency_key_reused",
    )
    again = await desk.http.post(case.path, json=body, headers=desk.admin(key))
    assert (again.status_code, again.json()) == (200, first.json())
    assert await desk.count(case, marker) == 1


async def test_concurrent_identical_posts_create_one(desk: Desk, case: Creating) -> None:
    marker, key = fresh_marker(), str(uuid.uuid4())
    body = case.body(marker)
    answers = await asyncio.gather(
        *(desk.http.post(case.path, json=body, headers=desk.admin(key)) for _ in range(BURST))
    )
    created = [a for a in answers if a.status_code == 201]
    assert len(created) == 1, [a.text for a in answers]
    for answer in answers:
        if answer.status_code == 200:  # a replay: the same object
            assert answer.json()["id"] == created[0].json()["id"]
        elif answer.status_code == 409:  # arrived while the first was being served
            assert_problem(answer, 409, "idempotency_key_in_flight")
        else:
            assert answer is created[0], answer.text
    assert await desk.count(case, marker) == 1


async def test_a_key_in_flight_is_409_then_the_retry_creates(desk: Desk, case: Creating) -> None:
    marker, key = fresh_marker(), str(uuid.uuid4())
    body = case.body(marker)
    # Stand in for a first request still inside its transaction: hold the claim the service takes for it.
    conn = await asyncpg.connect(desk.database_url)
    try:
        async with conn.transaction():
            await conn.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", claim_key(case.scope, f"{ADMIN}:{key}")
            )
            in_flight = await desk.http.post(case.path, json=body, headers=desk.admin(key))
    finally:
        await conn.close()
    assert_problem(in_flight, 409, "idempotency_key_in_flight")
    assert await desk.count(case, marker) == 0

    first = await desk.http.post(case.path, json=body, headers=desk.admin(key))
    replay = await desk.http.post(case.path, json=body, headers=desk.admin(key))
    assert (first.status_code, replay.status_code) == (201, 200), first.text
    assert replay.json()["id"] == first.json()["id"]


async def test_the_longest_key_the_gateway_accepts_is_stored(desk: Desk, case: Creating) -> None:
    key = "k" * 255
    body = case.body(fresh_marker())
    first = await desk.http.post(case.path, json=body, headers=desk.admin(key))
    assert first.status_code == 201, first.text
    assert (await desk.http.post(case.path, json=body, headers=desk.admin(key))).status_code == 200


async def test_an_agent_id_is_its_own_key_for_the_same_profile_only(desk: Desk) -> None:
    """The agent id names the agent: the same profile again under any key is a harmless retry, another profile
    for the id is a conflict, never a silent 200 with the profile that was there."""
    agent = CASES[0]
    marker = fresh_marker()
    body = agent.body(marker)
    first = await desk.http.post(agent.path, json=body, headers=desk.admin(str(uuid.uuid4())))
    assert first.status_code == 201, first.text
    for key in (str(uuid.uuid4()), None):
        same = await desk.http.post(agent.path, json=body, headers=desk.admin(key))
        assert (same.status_code, same.json()) == (200, first.json())
    assert_problem(
        await desk.http.post(agent.path, json=agent.other(body), headers=desk.admin(str(uuid.uuid4()))),
        409,
        "agent_exists",
    )
    assert await desk.count(agent, marker) == 1
