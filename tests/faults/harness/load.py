"""A steady load of customers and agents that logs every request as invoked, then ok / failed / unknown.

- **ok**: a 2xx answer; the effect happened.
- **failed**: a 4xx answer; the request was refused and changed nothing.
- **unknown**: a 5xx answer, a timeout or a dropped connection; the effect may or may not have happened.
  Creations are retried after healing with the same ``Idempotency-Key`` and body until the answer is
  definite, which is how an "unknown" is resolved.

Everything random comes from one ``random.Random(seed)``; request ids count up, so a run is repeatable up to
the timing of the faults.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.faults.harness.system import System

CATEGORIES = ("payment_failed", "account_frozen", "bank_card", "complaint", "transaction_query", "other")
SKILLS = ("payments", "account_security", "cards", "complaints")
# Unknown answers are retried until definite; a retry that still fails this long after healing is reported.
RESOLVE_DEADLINE_S = 60.0


@dataclass
class Request:
    id: int
    op: str
    actor: str
    target: str = ""
    key: str = ""
    body: dict[str, Any] | None = None
    outcome: str = "invoked"
    status: int | None = None
    error: str = ""
    result_id: str = ""
    started: float = field(default_factory=time.monotonic)
    ended: float = 0.0
    retries: int = 0


@dataclass(frozen=True, slots=True)
class LoadShape:
    customers: int = 12
    agents: int = 6
    agent_capacity: int = 3
    # Pauses between one actor's requests, in seconds (each actor runs one request at a time).
    customer_pause_s: float = 1.0
    agent_pause_s: float = 0.4


class Load:
    def __init__(self, system: System, seed: int, shape: LoadShape = LoadShape()) -> None:
        self.system = system
        self.rng = random.Random(seed)
        self.shape = shape
        self.requests: list[Request] = []
        self.responses: list[bytes] = []  # every body the gateway answered, for the secret checks
        self._next_id = 0
        self._stop = asyncio.Event()
        self._http = httpx.AsyncClient(base_url=system.gateway_url, timeout=httpx.Timeout(8.0))
        self.customer_ids = [f"c-{i}" for i in range(shape.customers)]
        self.agent_ids = [f"a-{i}" for i in range(shape.agents)]
        # Tickets each customer opened (ok answers), for their messages.
        self._tickets_of: dict[str, list[str]] = {c: [] for c in self.customer_ids}

    async def close(self) -> None:
        await self._http.aclose()

    # --- set-up (before the faults; must succeed) ------------------------------------------------------

    async def set_up(self, *, sla_seconds: int = 4) -> None:
        """Agents for every queue, and a short SLA policy so that timers fire during the run."""
        admin = self.system.auth("admin", "admin-1")
        policy = {
            "name": "Fault suite",
            "position": 1,
            "targets": [
                {"metric": "first_response", "target_seconds": sla_seconds},
                {"metric": "next_response", "target_seconds": sla_seconds + 2},
                {"metric": "resolution", "target_seconds": sla_seconds * 3},
            ],
            "escalation": {"raise_priority": True, "notify_supervisor": True},
        }
        response = await self._http.post(
            "/v1/sla/policies", json=policy, headers={**admin, "Idempotency-Key": "fault-suite-policy"}
        )
        assert response.status_code in (200, 201), response.text
        for agent in self.agent_ids:
            body = {
                "agent_id": agent,
                "display_name": agent,
                "skills": [{"name": s, "proficiency": 5} for s in SKILLS],
                "languages": ["en", "zh"],
                "capacity": self.shape.agent_capacity,
            }
            response = await self._http.post(
                "/v1/agents", json=body, headers={**admin, "Idempotency-Key": f"agent-{agent}"}
            )
            assert response.status_code in (200, 201), response.text
            response = await self._http.put(
                f"/v1/agents/{agent}/presence",
                json={"presence": "available"},
                headers=self.system.auth("agent", agent),
            )
            assert response.status_code == 200, response.text

    # --- running -----------------------------------------------------------------------------------------

    async def run(self, duration_s: float, until: Awaitable[None]) -> None:
        """Every actor works for ``duration_s`` and until ``until`` is done (the faults, healing, a tail)."""
        self._stop.clear()
        actors = [self._customer(c) for c in self.customer_ids] + [self._agent(a) for a in self.agent_ids]
        running = asyncio.gather(*actors)
        try:
            await asyncio.gather(asyncio.sleep(duration_s), until)
        finally:
            # Each actor finishes the request it is in (bounded by the client timeout): none stays "invoked".
            self._stop.set()
            await running

    async def _pause(self, mean_s: float) -> None:
        await asyncio.sleep(self.rng.uniform(0.5 * mean_s, 1.5 * mean_s))

    async def _customer(self, customer: str) -> None:
        headers = self.system.auth("customer", customer)
        while not self._stop.is_set():
            await self._pause(self.shape.customer_pause_s)
            mine = self._tickets_of[customer]
            if mine and self.rng.random() < 0.35:
                await self._add_message(customer, headers, self.rng.choice(mine))
            else:
                await self._create_ticket(customer, headers)

    async def _agent(self, agent: str) -> None:
        headers = self.system.auth("agent", agent)
        while not self._stop.is_set():
            await self._pause(self.shape.agent_pause_s)
            roll = self.rng.random()
            if roll < 0.08:
                presence = self.rng.choice(("available", "available", "away"))
                await self._call(
                    "presence",
                    agent,
                    lambda p=presence: self._http.put(
                        f"/v1/agents/{agent}/presence", json={"presence": p}, headers=headers
                    ),
                    target=presence,
                )
            elif roll < 0.2:
                await self._call(
                    "presence",
                    agent,
                    lambda: self._http.put(
                        f"/v1/agents/{agent}/presence", json={"presence": "available"}, headers=headers
                    ),
                    target="available",
                )
            else:
                await self._work(agent, headers)

    async def _work(self, agent: str, headers: dict[str, str]) -> None:
        """Accept a pending offer; else answer or resolve a held ticket (which frees capacity)."""
        offers = await self._call(
            "list_offers",
            agent,
            lambda: self._http.get(f"/v1/agents/{agent}/offers", params={"state": "pending"}, headers=headers),
        )
        pending = offers.get("offers", []) if offers else []
        if pending:
            offer = pending[0]
            await self._call(
                "accept",
                agent,
                lambda: self._http.post(f"/v1/offers/{offer['id']}/accept", headers=headers),
                target=offer["ticket_id"],
                result_id=offer["id"],
            )
            return
        held = await self._call(
            "list_held", agent, lambda: self._http.get("/v1/tickets", params={"status": "open"}, headers=headers)
        )
        tickets = held.get("tickets", []) if held else []
        if not tickets:
            return
        ticket = self.rng.choice(tickets)["id"]
        if self.rng.random() < 0.6:
            await self._add_message(agent, headers, ticket)
        else:
            await self._call(
                "resolve",
                agent,
                lambda: self._http.patch(f"/v1/tickets/{ticket}", json={"status": "resolved"}, headers=headers),
                target=ticket,
            )

    async def _create_ticket(self, customer: str, headers: dict[str, str]) -> None:
        number = self._next_id
        body = {
            "channel": self.rng.choice(("app", "web", "email", "social")),
            "category": self.rng.choice(CATEGORIES),
            "subject": f"fault suite request {number}",
            "description": f"customer {customer}, request {number}",
            "language": self.rng.choice(("en", "zh")),
        }
        key = str(uuid.UUID(int=self.rng.getrandbits(128), version=4))
        answer = await self._call(
            "create_ticket",
            customer,
            lambda: self._http.post("/v1/tickets", json=body, headers={**headers, "Idempotency-Key": key}),
            key=key,
            body=body,
        )
        if answer:
            self._tickets_of[customer].append(answer["id"])

    async def _add_message(self, author: str, headers: dict[str, str], ticket: str) -> None:
        body = {"body": f"message {self._next_id} from {author}"}
        key = str(uuid.UUID(int=self.rng.getrandbits(128), version=4))
        await self._call(
            "add_message",
            author,
            lambda: self._http.post(
                f"/v1/tickets/{ticket}/messages", json=body, headers={**headers, "Idempotency-Key": key}
            ),
            target=ticket,
            key=key,
            body=body,
        )

    async def _call(
        self,
        op: str,
        actor: str,
        send: Callable[[], Awaitable[httpx.Response]],
        *,
        target: str = "",
        key: str = "",
        body: dict[str, Any] | None = None,
        result_id: str = "",
    ) -> dict[str, Any] | None:
        request = Request(self._next_id, op, actor, target=target, key=key, body=body, result_id=result_id)
        self._next_id += 1
        self.requests.append(request)
        return await self._send(request, send)

    async def _send(self, request: Request, send: Callable[[], Awaitable[httpx.Response]]) -> dict[str, Any] | None:
        try:
            response = await send()
        except asyncio.CancelledError:
            request.outcome, request.error = "unknown", "cancelled"
            raise
        except httpx.HTTPError as error:
            request.outcome, request.error = "unknown", type(error).__name__
            request.ended = time.monotonic()
            return None
        request.ended = time.monotonic()
        request.status = response.status_code
        self.responses.append(response.content)
        if response.status_code >= 500:
            request.outcome = "unknown"
            request.error = _code(response)
            return None
        if response.status_code >= 400:
            request.outcome = "failed"
            request.error = _code(response)
            return None
        request.outcome = "ok"
        answer: dict[str, Any] = response.json()
        if request.op in ("create_ticket", "add_message"):
            request.result_id = str(answer["id"])
        return answer

    # --- after healing -----------------------------------------------------------------------------------

    async def resolve_unknowns(self) -> int:
        """Retry every unknown creation with its own key and body until the answer is definite."""
        unknown = [r for r in self.requests if r.outcome == "unknown" and r.op in ("create_ticket", "add_message")]
        deadline = time.monotonic() + RESOLVE_DEADLINE_S
        for request in unknown:
            headers = {**self.system.auth(*_principal(request.actor)), "Idempotency-Key": request.key}
            path = "/v1/tickets" if request.op == "create_ticket" else f"/v1/tickets/{request.target}/messages"
            while request.outcome == "unknown" and time.monotonic() < deadline:
                request.retries += 1
                answer = await self._send(
                    request, lambda p=path, h=headers, r=request: self._http.post(p, json=r.body, headers=h)
                )
                if answer and request.op == "create_ticket":
                    self._tickets_of[request.actor].append(answer["id"])
                if request.outcome == "unknown":
                    await asyncio.sleep(0.2)
        return len(unknown)

    def summary(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for r in self.requests:
            counts[r.outcome] = counts.get(r.outcome, 0) + 1
        return counts

    def by_op(self) -> dict[str, dict[str, int]]:
        table: dict[str, dict[str, int]] = {}
        for r in self.requests:
            row = table.setdefault(r.op, {})
            row[r.outcome] = row.get(r.outcome, 0) + 1
        return table

    def write_log(self, path: Path) -> None:
        with path.open("w", encoding="utf-8") as out:
            for r in self.requests:
                out.write(json.dumps(asdict(r), ensure_ascii=False) + "\n")


def _principal(actor: str) -> tuple[str, str]:
    return ("agent" if actor.startswith("a-") else "customer", actor)


def _code(response: httpx.Response) -> str:
    with contextlib.suppress(ValueError):
        return str(response.json().get("code", response.status_code))
    return str(response.status_code)
