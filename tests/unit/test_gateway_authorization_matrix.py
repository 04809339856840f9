"""Every role against every endpoint: who is let through and who gets 403 ``forbidden``.

The table is the access policy, written down once. Peers are unreachable here: a caller who is let through
gets whatever comes next (422 for an empty body, 503 for a peer), never 401 or 403 ``forbidden``. Which
*objects* a permitted caller reaches (own tickets, tickets routed to an agent, one's own agent profile and
offers) is tested against the real services in tests/integration/test_gateway_access.py and the route tests.
A route missing from the table fails the test: new endpoints must state their policy here.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from services.gateway.app import create_app
from services.gateway.settings import GatewaySettings
from services.gateway.tokens import load_or_create_local_secret, mint_local_token
from tests.integration.test_gateway_help import dead_address

C, A, S, AD = "customer", "agent", "supervisor", "admin"
EVERYONE = (C, A, S, AD)
STAFF = (A, S, AD)
MANAGERS = (S, AD)
ADMINS = (AD,)
PUBLIC = ()  # no token needed

POLICY: dict[tuple[str, str], tuple[str, ...]] = {
    ("GET", "/healthz"): PUBLIC,
    ("GET", "/readyz"): PUBLIC,
    ("POST", "/v1/tickets"): (C, A, S),
    ("GET", "/v1/tickets"): EVERYONE,
    ("GET", "/v1/tickets/{ticket_id}"): EVERYONE,
    ("PATCH", "/v1/tickets/{ticket_id}"): EVERYONE,
    ("GET", "/v1/tickets/{ticket_id}/routing"): STAFF,
    ("GET", "/v1/tickets/{ticket_id}/sla"): STAFF,
    ("GET", "/v1/tickets/{ticket_id}/messages"): EVERYONE,
    ("POST", "/v1/tickets/{ticket_id}/messages"): (C, A, S),
    ("GET", "/v1/tickets/{ticket_id}/timeline"): STAFF,
    ("POST", "/v1/tickets/{ticket_id}/csat"): (C,),
    ("POST", "/v1/tickets/{ticket_id}/transfer"): MANAGERS,
    ("GET", "/v1/priority-rules"): MANAGERS,
    ("PUT", "/v1/priority-rules/{category}"): ADMINS,
    ("POST", "/v1/agents"): MANAGERS,
    ("GET", "/v1/agents"): MANAGERS,
    ("GET", "/v1/agents/{agent_id}"): STAFF,
    ("PUT", "/v1/agents/{agent_id}"): MANAGERS,
    ("PUT", "/v1/agents/{agent_id}/presence"): STAFF,
    ("GET", "/v1/agents/{agent_id}/offers"): STAFF,
    ("POST", "/v1/offers/{offer_id}/accept"): (A,),
    ("POST", "/v1/offers/{offer_id}/decline"): (A,),
    ("GET", "/v1/queues"): MANAGERS,
    ("GET", "/v1/queues/{queue}/settings"): MANAGERS,
    ("PUT", "/v1/queues/{queue}/settings"): ADMINS,
    ("GET", "/v1/notifications"): EVERYONE,
    ("POST", "/v1/notifications/read"): EVERYONE,
    ("GET", "/v1/notifications/preferences"): EVERYONE,
    ("PUT", "/v1/notifications/preferences"): EVERYONE,
    ("POST", "/v1/notifications/{notification_id}/not-me"): (C,),
    ("GET", "/v1/webhooks"): ADMINS,
    ("POST", "/v1/webhooks"): ADMINS,
    ("GET", "/v1/webhooks/{webhook_id}"): ADMINS,
    ("PUT", "/v1/webhooks/{webhook_id}"): ADMINS,
    ("DELETE", "/v1/webhooks/{webhook_id}"): ADMINS,
    ("GET", "/v1/deliveries"): MANAGERS,
    ("GET", "/v1/dead-letters"): MANAGERS,
    ("GET", "/v1/deliveries/{delivery_id}"): MANAGERS,
    ("POST", "/v1/deliveries/{delivery_id}/replay"): ADMINS,
    ("GET", "/v1/help/articles"): EVERYONE,
    ("POST", "/v1/help/articles"): ADMINS,
    ("GET", "/v1/help/articles/{article_id}"): EVERYONE,
    ("PUT", "/v1/help/articles/{article_id}"): ADMINS,
    ("POST", "/v1/help/suggestions"): EVERYONE,
    ("GET", "/v1/help/search-gaps"): MANAGERS,
    ("GET", "/v1/routing-rules"): MANAGERS,
    ("POST", "/v1/routing-rules"): ADMINS,
    ("GET", "/v1/routing-rules/{rule_id}"): MANAGERS,
    ("PUT", "/v1/routing-rules/{rule_id}"): ADMINS,
    ("DELETE", "/v1/routing-rules/{rule_id}"): ADMINS,
    ("GET", "/v1/sla/policies"): MANAGERS,
    ("POST", "/v1/sla/policies"): ADMINS,
    ("GET", "/v1/sla/policies/{policy_id}"): MANAGERS,
    ("PUT", "/v1/sla/policies/{policy_id}"): ADMINS,
    ("DELETE", "/v1/sla/policies/{policy_id}"): ADMINS,
    ("GET", "/v1/sla/calendars"): MANAGERS,
    ("POST", "/v1/sla/calendars"): ADMINS,
    ("GET", "/v1/sla/calendars/{calendar_id}"): MANAGERS,
    ("PUT", "/v1/sla/calendars/{calendar_id}"): ADMINS,
    ("GET", "/v1/sla/stats"): MANAGERS,
    ("GET", "/v1/ops/overview"): MANAGERS,
}

SUBJECT = "x-1"  # also every path id: an agent acting on "their own" profile is still only let through


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> FastAPI:
    settings = GatewaySettings(
        data_dir=tmp_path_factory.mktemp("gateway"),
        ticketing_addr=dead_address(),
        routing_addr=dead_address(),
        notify_addr=dead_address(),
    )
    return create_app(settings)


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway") as http,
    ):
        yield http


def token(app: FastAPI, role: str) -> str:
    settings: GatewaySettings = app.state.settings
    secret = load_or_create_local_secret(settings.local_secret_path)
    return mint_local_token(
        secret, role=role, subject=SUBJECT, issuer=settings.jwt_issuer, audience=settings.jwt_audience
    )


def operations(app: FastAPI) -> set[tuple[str, str]]:
    return {(method.upper(), path) for path, ops in app.openapi()["paths"].items() for method in ops}


def test_every_endpoint_has_a_stated_policy(app: FastAPI) -> None:
    assert operations(app) == set(POLICY)


@pytest.mark.parametrize(("method", "path"), sorted(POLICY))
async def test_each_role_is_let_through_or_forbidden_as_stated(
    app: FastAPI, client: httpx.AsyncClient, method: str, path: str
) -> None:
    url = re.sub(r"\{[^}]+\}", SUBJECT, path)
    body = {} if method in ("POST", "PUT", "PATCH") else None
    allowed = POLICY[(method, path)]
    anonymous = await client.request(method, url, json=body)
    if allowed == PUBLIC:
        assert anonymous.status_code not in (401, 403), anonymous.text
        return
    assert anonymous.status_code == 401, anonymous.text
    assert anonymous.headers["www-authenticate"].startswith("Bearer")
    for role in EVERYONE:
        answer = await client.request(method, url, json=body, headers={"Authorization": f"Bearer {token(app, role)}"})
        forbidden = answer.status_code == 403 and answer.json().get("code") == "forbidden"
        assert answer.status_code != 401, (role, answer.text)
        assert forbidden is (role not in allowed), (role, answer.status_code, answer.text)
