"""Routing and SLA configuration and statistics through the real gateway against real ticketing and routing."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.test_gateway_agents import gateway
from tests.integration.test_gateway_help import RETRY_AFTER_S, Auth, assert_problem, auth, dead_address, running_gateway
from tests.waiting import eventually

pytestmark = pytest.mark.integration

__all__ = ["auth", "gateway"]

RULE: dict[str, Any] = {
    "name": "Beta testers",
    "position": 5,
    "match": {"categories": ["beta_access"], "languages": ["en"]},
    "queue": "beta",
    "steps": [
        {"after_seconds": 0, "requirements": [{"skill": "beta", "min_proficiency": 3}]},
        {"after_seconds": 120, "any_agent": True, "notify_supervisor": True},
    ],
}
POLICY: dict[str, Any] = {
    "name": "Beta",
    "position": 5,
    "match": {"categories": ["beta_access"]},
    "targets": [{"metric": "first_response", "target_seconds": 120}, {"metric": "resolution", "target_seconds": 3600}],
}
CALENDAR: dict[str, Any] = {
    "name": "Shanghai office",
    "time_zone": "Asia/Shanghai",
    "hours": [{"weekday": day, "open": "09:00", "close": "18:00"} for day in range(1, 6)],
    "holidays": ["2026-10-01"],
}
FORBIDDEN_FOR_CONFIG = (("agent", "a-1"), ("customer", "c-1"))


def key() -> dict[str, str]:
    return {"Idempotency-Key": str(uuid.uuid4())}


async def test_routing_rules_are_listed_created_replaced_and_deleted(gateway: httpx.AsyncClient, auth: Auth) -> None:
    admin, supervisor = auth("admin", "ad-1"), auth("supervisor", "s-1")
    for role, subject in FORBIDDEN_FOR_CONFIG:
        assert_problem(await gateway.get("/v1/routing-rules", headers=auth(role, subject)), 403, "forbidden")
    assert_problem(await gateway.post("/v1/routing-rules", json=RULE, headers=supervisor), 403, "forbidden")

    first = await gateway.get("/v1/routing-rules", params={"page_size": 2}, headers=supervisor)
    assert first.status_code == 200, first.text
    assert [r["name"] for r in first.json()["rules"]] == ["Payments", "Account security"]
    following = await gateway.get(
        "/v1/routing-rules", params={"page_size": 2, "page_token": first.json()["next_page_token"]}, headers=admin
    )
    assert [r["name"] for r in following.json()["rules"]] == ["Cards", "Complaints"]

    idempotency = key()
    created = await gateway.post("/v1/routing-rules", json=RULE, headers={**admin, **idempotency})
    again = await gateway.post("/v1/routing-rules", json=RULE, headers={**admin, **idempotency})
    assert (created.status_code, again.status_code) == (201, 200), created.text
    rule = created.json()
    assert again.json() == rule
    assert created.headers["Location"] == f"/v1/routing-rules/{rule['id']}"
    assert (rule["queue"], rule["version"], rule["match"]["categories"]) == ("beta", 1, ["beta_access"])
    assert rule["steps"][1] == {
        "after_seconds": 120.0,
        "requirements": [],
        "any_agent": True,
        "notify_supervisor": True,
    }
    assert (await gateway.get(f"/v1/routing-rules/{rule['id']}", headers=supervisor)).json() == rule

    renamed = await gateway.put(
        f"/v1/routing-rules/{rule['id']}", json={**RULE, "name": "Beta", "expected_version": 1}, headers=admin
    )
    assert (renamed.status_code, renamed.json()["name"], renamed.json()["version"]) == (200, "Beta", 2), renamed.text
    stale = {**RULE, "expected_version": 1}
    assert_problem(
        await gateway.put(f"/v1/routing-rules/{rule['id']}", json=stale, headers=admin), 409, "version_conflict"
    )
    assert_problem(
        await gateway.put(f"/v1/routing-rules/{rule['id']}", json=RULE, headers=supervisor), 403, "forbidden"
    )

    assert (await gateway.delete(f"/v1/routing-rules/{rule['id']}", headers=admin)).status_code == 204
    for response in (
        await gateway.get(f"/v1/routing-rules/{rule['id']}", headers=admin),
        await gateway.delete(f"/v1/routing-rules/{rule['id']}", headers=admin),
        await gateway.put(f"/v1/routing-rules/{uuid.uuid4()}", json=RULE, headers=admin),
    ):
        assert_problem(response, 404, "rule_not_found")


async def test_routing_rule_validation(gateway: httpx.AsyncClient, auth: Auth) -> None:
    admin = auth("admin", "ad-1")
    invalid = [
        {**RULE, "colour": "red"},
        {**RULE, "match": {"categories": ["lottery"]}},
        {**RULE, "steps": []},
        {**RULE, "queue": "Not A Queue"},
        {**RULE, "steps": [{"after_seconds": 0, "requirements": [{"skill": "beta", "min_proficiency": 6}]}]},
        {**RULE, "steps": [{"after_seconds": 0, "extra": True}]},
    ]
    for body in invalid:
        assert_problem(await gateway.post("/v1/routing-rules", json=body, headers=admin), 422, "validation_failed")
    late_start = {**RULE, "steps": [{"after_seconds": 30}]}
    problem = assert_problem(
        await gateway.post("/v1/routing-rules", json=late_start, headers=admin), 400, "invalid_argument"
    )
    assert problem["errors"][0]["field"] == "rule.steps.after"
    assert_problem(await gateway.delete("/v1/routing-rules/not%20an%20id", headers=admin), 422, "validation_failed")


async def test_queue_settings_are_read_and_replaced(gateway: httpx.AsyncClient, auth: Auth) -> None:
    admin, supervisor = auth("admin", "ad-1"), auth("supervisor", "s-1")
    stats = await gateway.get("/v1/queues", headers=supervisor)
    assert stats.status_code == 200, stats.text
    assert {"payments", "general"} <= {q["queue"] for q in stats.json()["queues"]}
    assert "estimated_wait_seconds" in stats.json()["queues"][0]

    current = await gateway.get("/v1/queues/payments/settings", headers=supervisor)
    assert current.json() == {
        "queue": "payments",
        "direct_assignment": False,
        "offer_timeout_seconds": 30.0,
        "requeue_on_offline": False,
        "version": 1,
    }, current.text
    for role, subject in FORBIDDEN_FOR_CONFIG:
        assert_problem(await gateway.get("/v1/queues/payments/settings", headers=auth(role, subject)), 403, "forbidden")
    change = {"direct_assignment": True, "offer_timeout_seconds": 45, "expected_version": 1}
    assert_problem(await gateway.put("/v1/queues/payments/settings", json=change, headers=supervisor), 403, "forbidden")
    replaced = await gateway.put("/v1/queues/payments/settings", json=change, headers=admin)
    assert replaced.status_code == 200, replaced.text
    assert (replaced.json()["direct_assignment"], replaced.json()["offer_timeout_seconds"]) == (True, 45.0)
    assert (await gateway.get("/v1/queues/payments/settings", headers=admin)).json() == replaced.json()
    assert_problem(
        await gateway.put("/v1/queues/payments/settings", json=change, headers=admin), 409, "version_conflict"
    )

    assert_problem(await gateway.get("/v1/queues/vip/settings", headers=admin), 404, "queue_not_found")
    created = await gateway.put("/v1/queues/vip/settings", json={}, headers=admin)
    assert (created.status_code, created.json()["queue"]) == (200, "vip"), created.text
    assert (await gateway.get("/v1/queues/vip/settings", headers=admin)).status_code == 200
    for body in ({"offer_timeout_seconds": 0}, {"offer_timeout_seconds": 3601}, {"colour": "red"}):
        assert_problem(await gateway.put("/v1/queues/vip/settings", json=body, headers=admin), 422, "validation_failed")
    assert_problem(await gateway.put("/v1/queues/VIP/settings", json={}, headers=admin), 422, "validation_failed")


async def test_sla_policies_are_listed_created_replaced_and_deleted(gateway: httpx.AsyncClient, auth: Auth) -> None:
    admin, supervisor = auth("admin", "ad-1"), auth("supervisor", "s-1")
    for role, subject in FORBIDDEN_FOR_CONFIG:
        assert_problem(await gateway.get("/v1/sla/policies", headers=auth(role, subject)), 403, "forbidden")
    assert_problem(await gateway.post("/v1/sla/policies", json=POLICY, headers=supervisor), 403, "forbidden")

    defaults = await gateway.get("/v1/sla/policies", params={"page_size": 1}, headers=supervisor)
    assert [p["name"] for p in defaults.json()["policies"]] == ["Urgent"], defaults.text
    urgent = defaults.json()["policies"][0]
    assert {(t["metric"], t["target_seconds"]) for t in urgent["targets"]} >= {("first_response", 120.0)}
    assert urgent["match"]["priorities"] == ["urgent"]
    rest = await gateway.get(
        "/v1/sla/policies", params={"page_token": defaults.json()["next_page_token"]}, headers=supervisor
    )
    assert [p["name"] for p in rest.json()["policies"]] == ["Default"]

    idempotency = key()
    created = await gateway.post("/v1/sla/policies", json=POLICY, headers={**admin, **idempotency})
    again = await gateway.post("/v1/sla/policies", json=POLICY, headers={**admin, **idempotency})
    assert (created.status_code, again.status_code) == (201, 200), created.text
    policy = created.json()
    assert again.json()["id"] == policy["id"]
    assert created.headers["Location"] == f"/v1/sla/policies/{policy['id']}"
    assert (policy["warning_percents"], policy["calendar_id"], policy["version"]) == ([50, 80], None, 1)
    assert (await gateway.get(f"/v1/sla/policies/{policy['id']}", headers=supervisor)).json() == policy

    replaced = await gateway.put(
        f"/v1/sla/policies/{policy['id']}",
        json={**POLICY, "escalation": {"raise_priority": True}, "expected_version": 1},
        headers=admin,
    )
    assert replaced.status_code == 200, replaced.text
    assert (replaced.json()["escalation"]["raise_priority"], replaced.json()["version"]) == (True, 2)
    assert_problem(
        await gateway.put(f"/v1/sla/policies/{policy['id']}", json={**POLICY, "expected_version": 1}, headers=admin),
        409,
        "version_conflict",
    )

    twice = {**POLICY, "targets": [{"metric": "resolution", "target_seconds": 60}] * 2}
    for body in (twice, {**POLICY, "targets": []}, {**POLICY, "warning_percents": [100]}, {**POLICY, "x": 1}):
        assert_problem(await gateway.post("/v1/sla/policies", json=body, headers=admin), 422, "validation_failed")
    no_calendar = {**POLICY, "calendar_id": str(uuid.uuid4())}
    assert_problem(await gateway.post("/v1/sla/policies", json=no_calendar, headers=admin), 404, "calendar_not_found")

    assert (await gateway.delete(f"/v1/sla/policies/{policy['id']}", headers=admin)).status_code == 204
    for response in (
        await gateway.get(f"/v1/sla/policies/{policy['id']}", headers=admin),
        await gateway.delete(f"/v1/sla/policies/{policy['id']}", headers=admin),
        await gateway.put(f"/v1/sla/policies/{uuid.uuid4()}", json=POLICY, headers=admin),
    ):
        assert_problem(response, 404, "policy_not_found")


async def test_calendars_are_listed_created_and_replaced(gateway: httpx.AsyncClient, auth: Auth) -> None:
    admin, supervisor = auth("admin", "ad-1"), auth("supervisor", "s-1")
    for role, subject in FORBIDDEN_FOR_CONFIG:
        assert_problem(await gateway.get("/v1/sla/calendars", headers=auth(role, subject)), 403, "forbidden")
    assert_problem(await gateway.post("/v1/sla/calendars", json=CALENDAR, headers=supervisor), 403, "forbidden")

    idempotency = key()
    created = await gateway.post("/v1/sla/calendars", json=CALENDAR, headers={**admin, **idempotency})
    again = await gateway.post("/v1/sla/calendars", json=CALENDAR, headers={**admin, **idempotency})
    assert (created.status_code, again.status_code) == (201, 200), created.text
    calendar = created.json()
    assert again.json() == calendar
    assert created.headers["Location"] == f"/v1/sla/calendars/{calendar['id']}"
    assert (calendar["time_zone"], calendar["holidays"], len(calendar["hours"])) == ("Asia/Shanghai", ["2026-10-01"], 5)
    other = await gateway.post("/v1/sla/calendars", json={**CALENDAR, "name": "London"}, headers=admin)
    assert other.status_code == 201, other.text

    page = await gateway.get("/v1/sla/calendars", params={"page_size": 1}, headers=supervisor)
    assert len(page.json()["calendars"]) == 1, page.text
    assert page.json()["next_page_token"]
    listed = await gateway.get(
        "/v1/sla/calendars", params={"page_size": 1, "page_token": page.json()["next_page_token"]}, headers=supervisor
    )
    ids = {page.json()["calendars"][0]["id"], listed.json()["calendars"][0]["id"]}
    assert ids == {calendar["id"], other.json()["id"]}
    assert (await gateway.get(f"/v1/sla/calendars/{calendar['id']}", headers=supervisor)).json() == calendar

    weekend = {**CALENDAR, "hours": [{"weekday": 6, "open": "10:00", "close": "16:00"}], "expected_version": 1}
    replaced = await gateway.put(f"/v1/sla/calendars/{calendar['id']}", json=weekend, headers=admin)
    assert replaced.status_code == 200, replaced.text
    assert (replaced.json()["hours"], replaced.json()["version"]) == (
        [{"weekday": 6, "open": "10:00", "close": "16:00"}],
        2,
    )
    assert_problem(
        await gateway.put(f"/v1/sla/calendars/{calendar['id']}", json=weekend, headers=admin), 409, "version_conflict"
    )

    # A policy may now use the calendar.
    business = await gateway.post("/v1/sla/policies", json={**POLICY, "calendar_id": calendar["id"]}, headers=admin)
    assert (business.status_code, business.json()["calendar_id"]) == (201, calendar["id"]), business.text

    for body in (
        {**CALENDAR, "hours": []},
        {**CALENDAR, "hours": [{"weekday": 8, "open": "09:00", "close": "10:00"}]},
        {**CALENDAR, "holidays": ["someday"]},
    ):
        assert_problem(await gateway.post("/v1/sla/calendars", json=body, headers=admin), 422, "validation_failed")
    assert_problem(
        await gateway.post("/v1/sla/calendars", json={**CALENDAR, "time_zone": "Mars/Olympus"}, headers=admin),
        400,
        "unknown_time_zone",
    )
    assert_problem(await gateway.get(f"/v1/sla/calendars/{uuid.uuid4()}", headers=admin), 404, "calendar_not_found")
    assert_problem(
        await gateway.put(f"/v1/sla/calendars/{uuid.uuid4()}", json=CALENDAR, headers=admin), 404, "calendar_not_found"
    )


async def test_rest_configuration_routes_a_new_ticket_and_sets_its_clocks(
    gateway: httpx.AsyncClient, auth: Auth
) -> None:
    admin, supervisor, agent = auth("admin", "ad-1"), auth("supervisor", "s-1"), auth("agent", "a-1")
    rule = await gateway.post("/v1/routing-rules", json=RULE, headers=admin)
    policy = await gateway.post("/v1/sla/policies", json=POLICY, headers=admin)
    assert (rule.status_code, policy.status_code) == (201, 201), (rule.text, policy.text)

    ticket = await gateway.post(
        "/v1/tickets",
        json={"channel": "app", "category": "beta_access", "subject": "Beta invite", "language": "en"},
        headers=auth("customer", "c-1"),
    )
    tid = ticket.json()["id"]

    async def routed() -> bool:
        entry = await gateway.get(f"/v1/tickets/{tid}/routing", headers=supervisor)
        return entry.status_code == 200 and entry.json()["queue"] == "beta"

    await eventually(routed, what="the ticket queued by the REST-created rule")

    async def clocked() -> bool:
        return len((await gateway.get(f"/v1/tickets/{tid}/sla", headers=supervisor)).json()["clocks"]) == 2

    await eventually(clocked, what="the ticket's SLA clocks")
    sla = (await gateway.get(f"/v1/tickets/{tid}/sla", headers=supervisor)).json()
    assert sla["ticket_id"] == tid
    clocks = {c["metric"]: c for c in sla["clocks"]}
    assert set(clocks) == {"first_response", "resolution"}
    first = clocks["first_response"]
    assert (first["policy_id"], first["target_seconds"], first["state"]) == (policy.json()["id"], 120.0, "running")
    assert first["deadline"] is not None
    assert first["stopped_at"] is None

    assert_problem(await gateway.get(f"/v1/tickets/{tid}/sla", headers=auth("customer", "c-1")), 403, "forbidden")
    assert_problem(await gateway.get(f"/v1/tickets/{uuid.uuid4()}/sla", headers=agent), 404, "ticket_not_found")

    stats = await gateway.get("/v1/sla/stats", params={"policy_id": policy.json()["id"]}, headers=supervisor)
    assert stats.status_code == 200, stats.text
    assert stats.json()["stats"], stats.text
    assert {s["policy_id"] for s in stats.json()["stats"]} == {policy.json()["id"]}
    assert {s["metric"] for s in stats.json()["stats"]} <= {"first_response", "resolution"}
    assert_problem(await gateway.get("/v1/sla/stats", headers=agent), 403, "forbidden")
    assert_problem(
        await gateway.get("/v1/sla/stats", params={"policy_id": "nope"}, headers=admin), 422, "validation_failed"
    )
    backwards = {"start": "2026-01-02T00:00:00Z", "end": "2026-01-01T00:00:00Z"}
    assert_problem(await gateway.get("/v1/sla/stats", params=backwards, headers=admin), 400, "invalid_argument")
    naive = {"start": "2026-01-01T00:00:00"}
    assert_problem(await gateway.get("/v1/sla/stats", params=naive, headers=admin), 422, "validation_failed")


async def test_configuration_answers_503_while_routing_is_down(tmp_path: Path, auth: Auth) -> None:
    async with running_gateway(tmp_path, dead_address()) as client:
        for path in ("/v1/routing-rules", "/v1/queues/payments/settings", "/v1/sla/policies", "/v1/sla/stats"):
            response = assert_problem(
                await client.get(path, headers=auth("admin", "ad-1")), 503, "dependency_unavailable"
            )
            assert response["status"] == 503
        answer = await client.post("/v1/sla/calendars", json=CALENDAR, headers=auth("admin", "ad-1"))
        assert (answer.status_code, answer.headers["Retry-After"]) == (503, str(RETRY_AFTER_S))


async def test_a_version_beyond_what_is_stored_is_400_not_500(gateway: httpx.AsyncClient, auth: Auth) -> None:
    settings = {"direct_assignment": True, "offer_timeout_seconds": 30, "expected_version": 161683135508}
    answer = await gateway.put("/v1/queues/payments/settings", json=settings, headers=auth("admin", "ad-1"))
    assert_problem(answer, 400, "unstorable_value")
