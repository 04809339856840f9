"""Per-caller rate limits: the GCRA arithmetic, and the 429 and ``RateLimit`` headers at the HTTP edge."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any

import httpx
import pytest
from fastapi import Depends, FastAPI

from services.gateway.app import create_app
from services.gateway.auth import authenticate
from services.gateway.principal import Principal
from services.gateway.ratelimit import Gcra
from services.gateway.settings import GatewaySettings
from services.gateway.tokens import load_or_create_local_secret, mint_local_token
from tests.unit.test_gateway_auth import NoPeers

S = 1_000_000_000
READS, WRITES, WINDOW_S = 3, 2, 60


class TestGcra:
    def test_a_quiet_caller_gets_the_whole_quota_at_once_then_one_per_interval(self) -> None:
        gcra = Gcra(quota=4, window_ns=60 * S)
        t0 = 1000 * S
        decisions = [gcra.hit("c", t0) for _ in range(4)]
        assert [d.allowed for d in decisions] == [True] * 4
        assert [d.remaining for d in decisions] == [3, 2, 1, 0]

        denied = gcra.hit("c", t0)
        assert not denied.allowed
        assert denied.retry_after_ns == 15 * S  # one interval: 60 s / 4
        assert denied.reset_ns == 60 * S

        assert not gcra.hit("c", t0 + 15 * S - 1).allowed
        again = gcra.hit("c", t0 + 15 * S)
        assert again.allowed
        assert again.remaining == 0

    def test_a_denied_request_costs_nothing(self) -> None:
        gcra = Gcra(quota=1, window_ns=10 * S)
        assert gcra.hit("c", 0).allowed
        for t in range(1, 10):
            assert not gcra.hit("c", t * S).allowed
        assert gcra.hit("c", 10 * S).allowed

    def test_callers_have_their_own_budgets(self) -> None:
        gcra = Gcra(quota=1, window_ns=10 * S)
        assert gcra.hit("a", 0).allowed
        assert not gcra.hit("a", 0).allowed
        assert gcra.hit("b", 0).allowed

    def test_callers_back_to_a_full_quota_are_forgotten(self) -> None:
        gcra = Gcra(quota=2, window_ns=10 * S)
        gcra.hit("idle", 0)
        gcra.hit("busy", 0)
        assert len(gcra) == 2
        gcra.hit("busy", 10 * S)  # a sweep: "idle" is whole again, "busy" has just spent
        assert len(gcra) == 1
        assert gcra.hit("idle", 10 * S).remaining == 1

    def test_a_policy_needs_a_positive_quota_and_window(self) -> None:
        with pytest.raises(ValueError, match="positive"):
            Gcra(quota=0, window_ns=S)
        with pytest.raises(ValueError, match="positive"):
            Gcra(quota=1, window_ns=0)


def _app(tmp_path: Path, **overrides: object) -> FastAPI:
    settings = GatewaySettings(
        data_dir=tmp_path,
        rate_limit_reads=READS,
        rate_limit_writes=WRITES,
        rate_limit_window_s=WINDOW_S,
        **overrides,  # type: ignore[arg-type]
    )
    app = create_app(settings, clients=NoPeers())

    @app.get("/probe")
    async def read(principal: Annotated[Principal, Depends(authenticate)]) -> dict[str, str]:
        return {"subject": principal.subject}

    @app.post("/probe")
    async def write(principal: Annotated[Principal, Depends(authenticate)]) -> dict[str, str]:
        return {"subject": principal.subject}

    return app


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=_app(tmp_path))
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        yield client


@pytest.fixture
def bearer(tmp_path: Path) -> Any:
    secret = load_or_create_local_secret(tmp_path / "secrets" / "local-jwt.key")

    def headers(subject: str) -> dict[str, str]:
        token = mint_local_token(
            secret, role="customer", subject=subject, issuer="supportdesk-local", audience="supportdesk"
        )
        return {"Authorization": f"Bearer {token}"}

    return headers


def _remaining(response: httpx.Response, policy: str) -> int:
    match = re.fullmatch(rf'"{policy}";r=(\d+);t=(\d+)', response.headers["ratelimit"])
    assert match, response.headers["ratelimit"]
    return int(match.group(1))


async def test_successful_answers_carry_the_policy_and_what_remains(client: httpx.AsyncClient, bearer: Any) -> None:
    responses = [await client.get("/probe", headers=bearer("c-1")) for _ in range(READS)]
    assert [r.status_code for r in responses] == [200] * READS
    assert responses[0].headers["ratelimit-policy"] == f'"reads";q={READS};w={WINDOW_S}'
    assert [_remaining(r, "reads") for r in responses] == [2, 1, 0]


async def test_a_spent_budget_is_429_with_retry_after(client: httpx.AsyncClient, bearer: Any) -> None:
    for _ in range(READS):
        await client.get("/probe", headers=bearer("c-1"))
    response = await client.get("/probe", headers=bearer("c-1"))
    assert response.status_code == 429
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "rate_limited"
    assert int(response.headers["retry-after"]) == WINDOW_S // READS
    assert _remaining(response, "reads") == 0
    assert response.headers["ratelimit-policy"] == f'"reads";q={READS};w={WINDOW_S}'


async def test_writes_and_reads_and_callers_have_separate_budgets(client: httpx.AsyncClient, bearer: Any) -> None:
    for _ in range(READS):
        await client.get("/probe", headers=bearer("c-1"))
    assert (await client.get("/probe", headers=bearer("c-1"))).status_code == 429

    write = await client.post("/probe", headers=bearer("c-1"))
    assert write.status_code == 200
    assert write.headers["ratelimit-policy"] == f'"writes";q={WRITES};w={WINDOW_S}'
    assert _remaining(write, "writes") == WRITES - 1

    assert (await client.get("/probe", headers=bearer("c-2"))).status_code == 200


async def test_callers_without_a_valid_token_spend_their_address_budget(client: httpx.AsyncClient) -> None:
    answers = [await client.get("/probe", headers={"Authorization": "Bearer nonsense"}) for _ in range(READS)]
    assert [r.status_code for r in answers] == [401] * READS
    assert [_remaining(r, "reads") for r in answers] == [2, 1, 0]
    # Same address, no token at all: the same budget, now spent.
    response = await client.get("/probe")
    assert response.status_code == 429
    assert response.json()["code"] == "rate_limited"


async def test_limits_can_be_turned_off(tmp_path: Path, bearer: Any) -> None:
    transport = httpx.ASGITransport(app=_app(tmp_path, rate_limit_enabled=False))
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        responses = [await client.get("/probe", headers=bearer("c-1")) for _ in range(READS * 3)]
    assert {r.status_code for r in responses} == {200}
    assert "ratelimit" not in responses[-1].headers


async def test_probes_are_not_limited(client: httpx.AsyncClient) -> None:
    responses = [await client.get("/healthz") for _ in range(READS * 2)]
    assert {r.status_code for r in responses} == {200}
    assert "ratelimit" not in responses[-1].headers


async def test_the_api_description_documents_429_on_authenticated_operations(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]
    limited = paths["/v1/tickets"]["post"]["responses"]["429"]
    assert set(limited["headers"]) == {"Retry-After", "RateLimit", "RateLimit-Policy"}
    assert "application/problem+json" in limited["content"]
    assert "429" not in paths["/healthz"]["get"]["responses"]
