"""Edge policies every route shares: CORS as configured, and request bodies that refuse unknown fields."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from services.gateway.app import create_app
from services.gateway.settings import GatewaySettings
from tests.unit.test_gateway_auth import NoPeers

ALLOWED = "https://console.example"


async def _client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway") as client:
        yield client


@pytest.fixture
async def cors_client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(GatewaySettings(data_dir=tmp_path, cors_origins=f"{ALLOWED}, https://app.example"), NoPeers())
    async for client in _client(app):
        yield client


def preflight(origin: str) -> dict[str, str]:
    return {
        "Origin": origin,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type, idempotency-key",
    }


async def test_a_configured_origin_may_call_and_read_the_limit_headers(cors_client: httpx.AsyncClient) -> None:
    response = await cors_client.options("/v1/tickets", headers=preflight(ALLOWED))
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == ALLOWED
    assert "POST" in response.headers["access-control-allow-methods"]
    assert "idempotency-key" in response.headers["access-control-allow-headers"].lower()

    # Error answers carry CORS headers too, or a browser could not read the problem.
    answer = await cors_client.get("/v1/tickets", headers={"Origin": ALLOWED})
    assert answer.status_code == 401
    assert answer.headers["access-control-allow-origin"] == ALLOWED
    exposed = {name.strip().lower() for name in answer.headers["access-control-expose-headers"].split(",")}
    assert {"retry-after", "ratelimit", "ratelimit-policy", "location"} <= exposed


async def test_another_origin_is_not_allowed(cors_client: httpx.AsyncClient) -> None:
    response = await cors_client.options("/v1/tickets", headers=preflight("https://evil.example"))
    assert response.status_code == 400
    assert "access-control-allow-origin" not in response.headers


async def test_without_configured_origins_no_cors_headers_are_sent(tmp_path: Path) -> None:
    async for client in _client(create_app(GatewaySettings(data_dir=tmp_path), NoPeers())):
        response = await client.get("/healthz", headers={"Origin": ALLOWED})
        assert response.status_code == 200
        assert "access-control-allow-origin" not in response.headers


def _objects(schema: dict[str, Any], components: dict[str, Any], seen: set[str]) -> list[tuple[str, dict[str, Any]]]:
    """Every object schema reachable from ``schema``, named by component where it has one."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        if name in seen:
            return []
        seen.add(name)
        return [(name, components[name]), *_objects(components[name], components, seen)]
    found: list[tuple[str, dict[str, Any]]] = []
    for sub in schema.get("properties", {}).values():
        found += _objects(sub, components, seen)
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), dict):
            found += _objects(schema[key], components, seen)
    for key in ("anyOf", "oneOf", "allOf"):
        for sub in schema.get(key, []):
            found += _objects(sub, components, seen)
    return found


def test_every_request_body_refuses_unknown_fields(tmp_path: Path) -> None:
    spec = create_app(GatewaySettings(data_dir=tmp_path), NoPeers()).openapi()
    components = spec["components"]["schemas"]
    checked = 0
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            body = operation.get("requestBody", {}).get("content", {}).get("application/json")
            if body is None:
                continue
            for name, schema in _objects(body["schema"], components, set()):
                if schema.get("type") == "object" and "properties" in schema:
                    assert schema.get("additionalProperties") is False, f"{method.upper()} {path}: {name}"
                    checked += 1
    assert checked >= 10  # the walk found the API's bodies, not nothing
