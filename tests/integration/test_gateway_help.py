"""``/v1/help`` through the real gateway app against the real help centre on a real Postgres."""

from __future__ import annotations

import contextlib
import socket
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from services.gateway.app import create_app
from services.gateway.settings import GatewaySettings
from services.gateway.tokens import load_or_create_local_secret, mint_local_token
from services.kit.grpc_server import GrpcServer
from services.ticketing.help import api as help_api
from tests.integration.bus_fixtures import migrated_pool

pytestmark = pytest.mark.integration

Auth = Callable[..., dict[str, str]]
RETRY_AFTER_S = 3

ARTICLE = {
    "locale": "en",
    "slug": "staking-rewards",
    "title": "When staking rewards arrive",
    "body": "Staking rewards are paid every Tuesday.",
    "category": "other",
    "tags": ["staking"],
    "published": True,
}


def dead_address() -> str:
    """A port the OS just handed out and nobody took: nothing listens there."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"127.0.0.1:{port}"


@contextlib.asynccontextmanager
async def running_gateway(
    tmp_path: Path, ticketing_addr: str, **settings_overrides: Any
) -> AsyncIterator[httpx.AsyncClient]:
    settings = GatewaySettings(
        data_dir=tmp_path,
        ticketing_addr=ticketing_addr,
        routing_addr=dead_address(),
        notify_addr=dead_address(),
        retry_after_s=RETRY_AFTER_S,
        **settings_overrides,
    )
    app: FastAPI = create_app(settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway") as client,
    ):
        yield client


@pytest.fixture
async def ticketing_addr(fresh_database_url: str) -> AsyncIterator[str]:
    pool = await migrated_pool(fresh_database_url, "ticketing", "services.ticketing")
    server = GrpcServer("127.0.0.1", 0, lambda s: help_api.register(s, pool), [help_api.SERVICE_NAME])
    await server.start()
    yield server.address
    await server.stop(0)
    await pool.close()


@pytest.fixture
async def gateway(tmp_path: Path, ticketing_addr: str) -> AsyncIterator[httpx.AsyncClient]:
    async with running_gateway(tmp_path, ticketing_addr) as client:
        yield client


@pytest.fixture
def auth(tmp_path: Path) -> Auth:
    secret = load_or_create_local_secret(tmp_path / "secrets" / "local-jwt.key")

    def headers(role: str, subject: str, **extra: str) -> dict[str, str]:
        token = mint_local_token(secret, role=role, subject=subject, issuer="supportdesk-local", audience="supportdesk")
        return {"Authorization": f"Bearer {token}", **extra}

    return headers


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["code"] == code
    return body


async def test_search_in_both_languages(gateway: httpx.AsyncClient, auth: Auth) -> None:
    zh = await gateway.get(
        "/v1/help/articles", params={"q": "忘记密码", "locale": "zh-CN"}, headers=auth("customer", "c")
    )
    assert zh.status_code == 200, zh.text
    first = zh.json()["results"][0]
    assert first["article"]["slug"] == "reset-password"
    assert first["article"]["locale"] == "zh"
    assert first["article"]["category"] == "password_reset"
    assert first["score"] > 0
    assert "**" in first["snippet"]
    assert zh.json()["fallback_locale"] is None

    en = await gateway.get("/v1/help/articles", params={"q": "card won't link"}, headers=auth("agent", "a"))
    assert en.json()["results"][0]["article"]["slug"] == "link-bank-card"


async def test_without_q_articles_are_listed(gateway: httpx.AsyncClient, auth: Auth) -> None:
    response = await gateway.get(
        "/v1/help/articles", params={"locale": "en", "category": "bank_card", "q": " "}, headers=auth("customer", "c")
    )
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["article"]["slug"] for r in results] == ["link-bank-card", "remove-bank-card"]
    assert {(r["score"], r["snippet"]) for r in results} == {(None, None)}

    paged = await gateway.get("/v1/help/articles", params={"page_size": 3}, headers=auth("customer", "c"))
    assert len(paged.json()["results"]) == 3
    token = paged.json()["next_page_token"]
    following = await gateway.get(
        "/v1/help/articles", params={"page_size": 3, "page_token": token}, headers=auth("customer", "c")
    )
    assert following.json()["results"][0] != paged.json()["results"][0]

    read = await gateway.get(f"/v1/help/articles/{results[0]['article']['id']}", headers=auth("customer", "c"))
    assert read.status_code == 200
    assert read.json() == results[0]["article"]


async def test_unknown_article_is_404(gateway: httpx.AsyncClient, auth: Auth) -> None:
    body = assert_problem(
        await gateway.get(f"/v1/help/articles/{uuid.uuid4()}", headers=auth("customer", "c")), 404, "article_not_found"
    )
    assert body["status"] == 404


async def test_suggestions_before_a_ticket(gateway: httpx.AsyncClient, auth: Auth) -> None:
    response = await gateway.post(
        "/v1/help/suggestions",
        json={"subject": "Payment failed at checkout", "description": "It said declined", "category": "payment_failed"},
        headers=auth("customer", "c"),
    )
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert results[0]["article"]["slug"] == "payment-failed"
    assert len(results) <= 3

    empty = await gateway.post("/v1/help/suggestions", json={"subject": "  "}, headers=auth("customer", "c"))
    assert_problem(empty, 422, "validation_failed")


async def test_only_admins_write_articles(gateway: httpx.AsyncClient, auth: Auth) -> None:
    for role in ("customer", "agent", "supervisor"):
        denied = await gateway.post("/v1/help/articles", json=ARTICLE, headers=auth(role, "x"))
        assert_problem(denied, 403, "forbidden")

    admin = auth("admin", "ad-1", **{"Idempotency-Key": "k-1"})
    created = await gateway.post("/v1/help/articles", json=ARTICLE, headers=admin)
    assert created.status_code == 201, created.text
    article = created.json()
    assert created.headers["location"] == f"/v1/help/articles/{article['id']}"
    assert article["version"] == 1
    replay = await gateway.post("/v1/help/articles", json=ARTICLE, headers=admin)
    assert replay.status_code == 200
    assert replay.json()["id"] == article["id"]

    found = await gateway.get("/v1/help/articles", params={"q": "staking"}, headers=auth("customer", "c"))
    assert [r["article"]["id"] for r in found.json()["results"]] == [article["id"]]

    change = {k: ARTICLE[k] for k in ("title", "category", "tags", "published")}
    change |= {"body": "Staking rewards are paid every Friday.", "expected_version": 1}
    denied_put = await gateway.put(f"/v1/help/articles/{article['id']}", json=change, headers=auth("customer", "c"))
    assert_problem(denied_put, 403, "forbidden")
    updated = await gateway.put(f"/v1/help/articles/{article['id']}", json=change, headers=auth("admin", "ad-1"))
    assert updated.status_code == 200, updated.text
    assert updated.json()["version"] == 2
    stale = await gateway.put(f"/v1/help/articles/{article['id']}", json=change, headers=auth("admin", "ad-1"))
    assert_problem(stale, 409, "article_version_mismatch")
    friday = await gateway.get("/v1/help/articles", params={"q": "friday"}, headers=auth("customer", "c"))
    assert [r["article"]["id"] for r in friday.json()["results"]] == [article["id"]]

    taken = await gateway.post("/v1/help/articles", json=ARTICLE, headers=auth("admin", "ad-1"))
    assert_problem(taken, 409, "article_slug_taken")


async def test_drafts_are_hidden_from_everyone_but_admins(gateway: httpx.AsyncClient, auth: Auth) -> None:
    draft = (
        await gateway.post("/v1/help/articles", json={**ARTICLE, "published": False}, headers=auth("admin", "ad"))
    ).json()
    assert_problem(
        await gateway.get(f"/v1/help/articles/{draft['id']}", headers=auth("agent", "a")), 404, "article_not_found"
    )
    assert (await gateway.get(f"/v1/help/articles/{draft['id']}", headers=auth("admin", "ad"))).status_code == 200
    listing = await gateway.get("/v1/help/articles", params={"include_unpublished": "true"}, headers=auth("agent", "a"))
    assert_problem(listing, 403, "forbidden")
    admin_listing = await gateway.get(
        "/v1/help/articles", params={"include_unpublished": "true", "locale": "en"}, headers=auth("admin", "ad")
    )
    assert draft["id"] in {r["article"]["id"] for r in admin_listing.json()["results"]}


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/help/articles", {**ARTICLE, "author": "me"}),
        ("/v1/help/suggestions", {"subject": "card", "urgent": True}),
    ],
)
async def test_unknown_fields_are_422(gateway: httpx.AsyncClient, auth: Auth, path: str, body: dict[str, Any]) -> None:
    response = await gateway.post(path, json=body, headers=auth("admin", "ad"))
    problem = assert_problem(response, 422, "validation_failed")
    assert [e["code"] for e in problem["errors"]] == ["extra_forbidden"]


async def test_search_gaps_for_supervisors_and_admins(gateway: httpx.AsyncClient, auth: Auth) -> None:
    for _ in range(2):
        miss = await gateway.get("/v1/help/articles", params={"q": "Crypto  Lending"}, headers=auth("customer", "c"))
        assert miss.json()["results"] == []
    assert_problem(await gateway.get("/v1/help/search-gaps", headers=auth("customer", "c")), 403, "forbidden")
    assert_problem(await gateway.get("/v1/help/search-gaps", headers=auth("agent", "a")), 403, "forbidden")
    for role in ("supervisor", "admin"):
        gaps = await gateway.get("/v1/help/search-gaps", params={"locale": "en"}, headers=auth(role, "s"))
        assert gaps.status_code == 200, gaps.text
        assert [(g["query"], g["locale"], g["search_count"]) for g in gaps.json()["gaps"]] == [
            ("crypto lending", "en", 2)
        ]


async def test_bad_input_is_rejected_before_or_by_the_service(gateway: httpx.AsyncClient, auth: Auth) -> None:
    assert_problem(
        await gateway.get("/v1/help/articles", params={"q": "card", "locale": "fr"}, headers=auth("customer", "c")),
        400,
        "unsupported_locale",
    )
    assert_problem(
        await gateway.get("/v1/help/articles", params={"category": "crypto"}, headers=auth("customer", "c")),
        422,
        "validation_failed",
    )
    assert_problem(await gateway.get("/v1/help/articles"), 401, "unauthenticated")


async def test_a_down_ticketing_service_is_503(tmp_path: Path, auth: Auth) -> None:
    async with running_gateway(tmp_path, dead_address()) as gateway:
        response = await gateway.get("/v1/help/articles", params={"q": "refund"}, headers=auth("customer", "c"))
        assert_problem(response, 503, "dependency_unavailable")
        assert response.headers["retry-after"] == str(RETRY_AFTER_S)
