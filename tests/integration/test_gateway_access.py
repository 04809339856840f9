"""Per-object access through the real gateway, ticketing and routing: agents see only what is routed to them."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.integration.test_gateway_agents import AGENT, gateway, until
from tests.integration.test_gateway_help import Auth, assert_problem, auth

pytestmark = pytest.mark.integration

__all__ = ["auth", "gateway"]

OTHER_AGENT = {**AGENT, "agent_id": "a-2", "skills": [{"name": "cards", "proficiency": 5}]}
DESCRIPTION = "Charged twice. Call me on 13800138000 or mail zhang.wei@example.com"


def ticket_paths(tid: str) -> list[tuple[str, str, dict[str, Any] | None]]:
    return [
        ("GET", f"/v1/tickets/{tid}", None),
        ("PATCH", f"/v1/tickets/{tid}", {"priority": "high"}),
        ("GET", f"/v1/tickets/{tid}/messages", None),
        ("POST", f"/v1/tickets/{tid}/messages", {"body": "Looking into it"}),
        ("GET", f"/v1/tickets/{tid}/timeline", None),
        ("GET", f"/v1/tickets/{tid}/routing", None),
        ("GET", f"/v1/tickets/{tid}/sla", None),
    ]


async def test_agents_reach_only_tickets_offered_to_or_held_by_them(gateway: httpx.AsyncClient, auth: Auth) -> None:
    admin, customer = auth("admin", "ad-1"), auth("customer", "c-1")
    offered, bystander = auth("agent", "a-1"), auth("agent", "a-2")
    for profile, headers in ((AGENT, offered), (OTHER_AGENT, bystander)):
        assert (await gateway.post("/v1/agents", json=profile, headers=admin)).status_code == 201
        agent_id = profile["agent_id"]
        await gateway.put(f"/v1/agents/{agent_id}/presence", json={"presence": "available"}, headers=headers)
    body = {"channel": "app", "category": "payment_failed", "subject": "Payment failed", "description": DESCRIPTION}
    tid = (await gateway.post("/v1/tickets", json={**body, "language": "en"}, headers=customer)).json()["id"]

    async def pending_offer() -> list[dict[str, Any]]:
        page = await gateway.get("/v1/agents/a-1/offers", params={"state": "pending"}, headers=offered)
        return [o for o in page.json()["offers"] if o["ticket_id"] == tid]

    [offer] = await until(pending_offer, "the offer to a-1")

    # Offered, not yet held: the agent may read it to decide, with personal data masked.
    seen = await gateway.get(f"/v1/tickets/{tid}", headers=offered)
    assert seen.status_code == 200, seen.text
    assert seen.json()["assignee_id"] is None
    assert seen.json()["description"] == "Charged twice. Call me on 138****8000 or mail z***@example.com"
    unmasked = await gateway.get(f"/v1/tickets/{tid}", headers=auth("supervisor", "s-1"))
    assert unmasked.json()["description"] == DESCRIPTION

    for method, path, payload in ticket_paths(tid):
        answer = await gateway.request(method, path, json=payload, headers=bystander)
        assert_problem(answer, 404, "ticket_not_found")
        other_customer = await gateway.request(method, path, json=payload, headers=auth("customer", "c-2"))
        assert other_customer.status_code in (403, 404), (method, path, other_customer.text)

    assert (await gateway.post(f"/v1/offers/{offer['id']}/accept", headers=offered)).status_code == 200
    reply = await gateway.post(f"/v1/tickets/{tid}/messages", json={"body": "Is 13800138000 yours?"}, headers=offered)
    assert reply.status_code == 201, reply.text
    assert reply.json()["body"] == "Is 138****8000 yours?"
    conversation = await gateway.get(f"/v1/tickets/{tid}/messages", headers=customer)
    assert conversation.json()["messages"][-1]["body"] == "Is 13800138000 yours?"
    for method, path, payload in ticket_paths(tid):
        answer = await gateway.request(method, path, json=payload, headers=offered)
        assert answer.status_code in (200, 201), (method, path, answer.text)
        assert_problem(await gateway.request(method, path, json=payload, headers=bystander), 404, "ticket_not_found")
