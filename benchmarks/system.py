"""Our system end to end: ``supportdesk up`` (gateway, ticketing, routing, notify) driven over HTTP.

Phases, each measured on the running stack (the load comes from ``loadgen``):

1. Saturation: ``POST /v1/tickets`` from ``connections`` clients back to back: creations per second. Then
   *created and routed*: tickets whose routing consumer has handled them (queue entry written) per second,
   from the start of the load until ticketing's outbox is empty and routing's consumer has nothing pending.
2. Latency at 25/50/75/100 % of that maximum, open loop (queueing shows), routing caught up between phases.
3. Agents available: agents with the skill and language the tickets need, set available over the API; an
   agent simulator watches ``support.routing.v1.offer.created`` on NATS and accepts each offer over the API
   with the agent's token. First saturated, for this workload's own maximum (tickets created, offered and
   accepted per second); then, with new agents, tickets at half that maximum: create -> offer (the offer event
   reaches the agent) and create -> assignment (the accept answered 200), measured from each request's
   scheduled start. Each step's agents then step away, so the next step's tickets go to its own agents.
4. The live stream: every agent of phase 3 holds ``/v1/stream`` open, and each offer's frame is timed from
   the offer event on NATS (notify's consumer, its outbox and relay, the gateway's push). Memory (RSS) of
   each service process at each stage.

Phases 1 and 2 create Chinese-language tickets that no agent of phase 3 (English only) can take, so they
wait in their queue (a realistic backlog) without stealing phase 3's agents. Every ticket is of a
normal-priority category, and the backlog's queue relaxes only after 10 minutes: no SLA warning or relaxation
comes due within a default run (the first, a warning at half of the 5-minute first response, about 150 s after
a ticket is created). Urgent tickets, warned after 60 s, would load phase 3 with the warnings, breaches and
relaxations of thousands of backlog tickets coming due together, and "half of the maximum" would find the
cores nearly full. The cost of firing timers is measured on its own by ``sla_timers.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import nats
import orjson
import psutil  # type: ignore[import-untyped]
from nats.aio.client import Client as Nats
from nats.aio.msg import Msg
from support.routing.v1 import events_pb2 as routing_events
from websockets.asyncio.client import ClientConnection, connect

from benchmarks.common import HOST, CpuMeter, latency_ms, log_messages, supportdesk_up
from benchmarks.gateway_api import post_factory
from benchmarks.loadgen import Connection, at_rate, request_bytes, saturate
from services.gateway.tokens import load_or_create_local_secret, mint_local_token
from services.kit.bus.streams import ALL_STREAMS

SERVICES = ("gateway", "ticketing", "routing", "notify")
ROUTING_CONSUMER = ("TICKETING", "routing-ticket-events")
OFFER_CREATED = "support.routing.v1.offer.created"
# Normal-priority categories, the backlog's in a queue that relaxes late: see the module docstring (ADR 0068).
BACKLOG_TICKETS = {"language": "zh", "category": "other"}
AGENT_TICKETS = {"language": "en", "category": "transaction_query"}
# Like a chat desk: a few tickets at once per agent, so the load spreads over many agents as it would.
AGENT_CAPACITY = 10
MIN_AGENTS = 20
CATCH_UP_TIMEOUT_S = 180.0
UNPUBLISHED_SQL = """
SELECT (SELECT count(*) FROM ticketing.outbox WHERE published_at IS NULL)
     + (SELECT count(*) FROM routing.outbox WHERE published_at IS NULL)
     + (SELECT count(*) FROM notify.outbox WHERE published_at IS NULL)
     + (SELECT count(*) FROM routing.timers WHERE fired_at IS NULL AND cancelled_at IS NULL AND due_at <= now())
"""
# Events still waiting, across every outbox and consumer, below which the stack counts as settled.
SETTLED_AT_MOST = 20


@dataclass
class Stack:
    port: int
    pid: int
    servers_dir: Path  # where the run's Postgres and NATS keep their data
    secret: bytes
    db: asyncpg.Connection
    nc: Nats

    def token(self, role: str, subject: str) -> str:
        return mint_local_token(
            self.secret, role=role, subject=subject, issuer="supportdesk-local", audience="supportdesk"
        )


def stack_meter(up_pid: int, servers_dir: Path) -> CpuMeter:
    """The CPU of every part of the stack: the four services started by ``supportdesk up``, and the Postgres
    (with its backends) and NATS servers under ``servers_dir``."""
    services: dict[str, int] = {}
    for child in psutil.Process(up_pid).children(recursive=True):
        with contextlib.suppress(psutil.Error):
            cmdline = " ".join(child.cmdline())
            services.update({name: child.pid for name in SERVICES if f"services.{name}" in cmdline})
    return CpuMeter(pids=services, folders={"postgres": servers_dir / "postgres", "nats": servers_dir / "nats"})


def service_rss_mb(up_pid: int) -> dict[str, float]:
    """Resident memory of each service process started by ``supportdesk up``."""
    found: dict[str, float] = {}
    for child in psutil.Process(up_pid).children(recursive=True):
        with contextlib.suppress(psutil.Error):
            cmdline = " ".join(child.cmdline())
            for name in SERVICES:
                if f"services.{name}" in cmdline:
                    found[name] = round(child.memory_info().rss / 2**20, 1)
    return found


async def caught_up(stack: Stack) -> float:
    """Wait until every created ticket is published and handled by routing; returns when (perf_counter)."""
    js = stack.nc.jetstream()
    deadline = time.perf_counter() + CATCH_UP_TIMEOUT_S
    while time.perf_counter() < deadline:
        unpublished = await stack.db.fetchval("SELECT count(*) FROM ticketing.outbox WHERE published_at IS NULL")
        if not unpublished:
            info = await js.consumer_info(*ROUTING_CONSUMER)
            if not info.num_pending and not info.num_ack_pending:
                return time.perf_counter()
        await asyncio.sleep(0.05)
    raise SystemExit(f"routing did not catch up within {CATCH_UP_TIMEOUT_S:.0f} s")


async def settled(stack: Stack) -> float:
    """Wait until the stack has worked off what earlier phases left (every service's outbox published, routing's
    due timers fired, every consumer of every stream with at most a trickle pending), so a phase measures its
    own load; the seconds waited, at most ``CATCH_UP_TIMEOUT_S`` (then the phase starts anyway). A backlog's
    SLA timers keep a trickle coming for minutes, hence "at most" a few events."""
    js = stack.nc.jetstream()
    started = time.perf_counter()
    deadline = started + CATCH_UP_TIMEOUT_S
    while time.perf_counter() < deadline:
        unpublished = await stack.db.fetchval(UNPUBLISHED_SQL)
        pending = 0
        for stream in ALL_STREAMS:
            for info in await js.consumers_info(stream.name):
                pending += (info.num_pending or 0) + (info.num_ack_pending or 0)
        if unpublished + pending <= SETTLED_AT_MOST:
            return time.perf_counter() - started
        await asyncio.sleep(0.1)
    return time.perf_counter() - started


def utilisation(cpu_ms_per_item: dict[str, float], items: int, seconds: float) -> float:
    """The share of all cores the stack kept busy: ``cpu_ms_per_item`` (``CpuMeter.per``) over ``seconds``."""
    return round(cpu_ms_per_item["total"] * items / 1000 / seconds / (os.cpu_count() or 1), 2)


async def routed_count(stack: Stack) -> int:
    return int(await stack.db.fetchval("SELECT count(*) FROM routing.queue_entries"))


async def saturation(stack: Stack, customer: str, duration_s: float, connections: int) -> dict[str, Any]:
    make = post_factory(stack.port, customer, BACKLOG_TICKETS)
    await saturate(HOST, stack.port, make, connections=connections, duration_s=min(3.0, duration_s))  # warm-up
    await caught_up(stack)
    routed_before = await routed_count(stack)
    meter = stack_meter(stack.pid, stack.servers_dir)
    meter.start()
    began = time.perf_counter()
    peak = await saturate(HOST, stack.port, make, connections=connections, duration_s=duration_s)
    load_ended = time.perf_counter()
    done = await caught_up(stack)
    routed = await routed_count(stack) - routed_before
    cpu = meter.per(routed)
    return {
        # Where the two cores go: per ticket created and routed, by process (the load generator excluded).
        "cpu_ms_per_ticket": cpu,
        "cpu_utilisation": utilisation(cpu, routed, done - began),
        "create": peak.summary(),
        "created": len(peak.latencies_ms),
        "routed": routed,
        "created_and_routed_per_s": round(routed / (done - began), 1),
        "routing_backlog_drained_after_load_s": round(done - load_ended, 2),
    }


async def latency_curve(stack: Stack, customer: str, peak: float, duration_s: float) -> dict[str, Any]:
    make = post_factory(stack.port, customer, BACKLOG_TICKETS)
    curve: dict[str, Any] = {}
    for share in (25, 50, 75, 100):
        results = await at_rate(HOST, stack.port, make, rate=peak * share / 100, duration_s=duration_s)
        ended = time.perf_counter()
        curve[f"{share}%"] = {**results.summary(), "routing_drained_s": round(await caught_up(stack) - ended, 2)}
    return curve


async def call(conn: Connection, method: str, path: str, token: str, body: object = None) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    payload = b"" if body is None else orjson.dumps(body)
    status, answer = await conn.exchange(request_bytes(method, f"{HOST}", path, headers, payload))
    return status, orjson.loads(answer) if answer else None


class AgentSimulator:
    """Accepts every offer made to its agents as soon as the offer event arrives, and times both."""

    def __init__(self, stack: Stack, tokens: dict[str, str]) -> None:
        self.stack, self.tokens = stack, tokens
        self.offered: dict[str, float] = {}
        self.pushed: dict[str, float] = {}
        self.assigned: dict[str, float] = {}
        self.offers = 0
        self.accept_errors: dict[int, int] = {}
        self._idle: asyncio.Queue[Connection] = asyncio.Queue()
        self._tasks: set[asyncio.Task[None]] = set()

    @contextlib.asynccontextmanager
    async def running(self) -> Any:
        for _ in range(16):
            self._idle.put_nowait(await Connection.open(HOST, self.stack.port))
        async with contextlib.AsyncExitStack() as streams:
            # Each agent's live stream, as the agent's app holds it: the offer arrives there too (via notify).
            for token in self.tokens.values():
                ws = await streams.enter_async_context(
                    connect(f"ws://{HOST}:{self.stack.port}/v1/stream?access_token={token}")
                )
                self._start(self._watch_stream(ws))
            subscription = await self.stack.nc.subscribe(OFFER_CREATED, cb=self._on_offer)
            try:
                yield self
            finally:
                await subscription.unsubscribe()
                for task in list(self._tasks):
                    if task.get_name() == "stream":
                        task.cancel()
                await asyncio.gather(*self._tasks, return_exceptions=True)
                while not self._idle.empty():
                    self._idle.get_nowait().close()

    def _start(self, work: Any, name: str = "stream") -> None:
        task = asyncio.create_task(work, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _watch_stream(self, ws: ClientConnection) -> None:
        async for frame in ws:
            ticket_id = orjson.loads(frame).get("data", {}).get("ticket_id")
            if ticket_id:
                self.pushed.setdefault(ticket_id, time.perf_counter())

    async def _on_offer(self, msg: Msg) -> None:
        received = time.perf_counter()
        offer = routing_events.OfferChanged.FromString(msg.data).offer
        if offer.agent_id not in self.tokens:
            return
        self.offers += 1
        self.offered.setdefault(offer.ticket_id, received)
        self._start(self._accept(offer.id, offer.ticket_id, self.tokens[offer.agent_id]), name="accept")

    async def _accept(self, offer_id: str, ticket_id: str, token: str) -> None:
        conn = await self._idle.get()
        try:
            status, _ = await call(conn, "POST", f"/v1/offers/{offer_id}/accept", token)
            if status == 0:  # the server had closed the idle keep-alive connection before reading the request
                status, _ = await call(conn, "POST", f"/v1/offers/{offer_id}/accept", token)
        finally:
            self._idle.put_nowait(conn)
        if status == 200:
            self.assigned.setdefault(ticket_id, time.perf_counter())
        else:
            self.accept_errors[status] = self.accept_errors.get(status, 0) + 1


async def add_agents(stack: Stack, count: int) -> dict[str, str]:
    """``count`` English-speaking payments experts, available: their tokens by id."""
    supervisor = stack.token("supervisor", "s-bench")
    conn = await Connection.open(HOST, stack.port)
    tokens: dict[str, str] = {}
    try:
        for i in range(count):
            agent_id = f"bench-agent-{i:03}-{uuid.uuid4().hex[:6]}"
            profile = {
                "agent_id": agent_id,
                "display_name": f"Bench agent {i}",
                "skills": [{"name": "payments", "proficiency": 5}],
                "languages": ["en"],
                "capacity": AGENT_CAPACITY,
            }
            status, answer = await call(conn, "POST", "/v1/agents", supervisor, profile)
            if status != 201:
                raise SystemExit(f"creating an agent answered {status}: {answer}")
            await set_presence(conn, supervisor, agent_id, "available")
            tokens[agent_id] = stack.token("agent", agent_id)
    finally:
        conn.close()
    return tokens


async def set_presence(conn: Connection, supervisor: str, agent_id: str, presence: str) -> None:
    status, answer = await call(conn, "PUT", f"/v1/agents/{agent_id}/presence", supervisor, {"presence": presence})
    if status != 200:
        raise SystemExit(f"setting presence answered {status}: {answer}")


async def step_away(stack: Stack, agent_ids: list[str]) -> None:
    """The agents take no more offers (and keep what they hold): a later phase's tickets go to its own agents."""
    conn = await Connection.open(HOST, stack.port)
    try:
        for agent_id in agent_ids:
            await set_presence(conn, stack.token("supervisor", "s-bench"), agent_id, "away")
    finally:
        conn.close()


async def offers(
    stack: Stack, customer: str, duration_s: float, *, rate: float | None, connections: int = 32, most: float = 0.0
) -> dict[str, Any]:
    """Tickets agents can take, at ``rate`` (open loop), or with ``rate`` None as fast as the stack answers
    (``connections`` clients, at most ``most`` per second expected: it sizes the agents)."""
    tickets = math.ceil((rate or most) * duration_s)
    tokens = await add_agents(stack, max(MIN_AGENTS, math.ceil(tickets * 1.2 / AGENT_CAPACITY)))
    created: dict[str, float] = {}

    def on_response(scheduled: float, status: int, body: bytes) -> None:
        if status == 201:
            created[orjson.loads(body)["id"]] = scheduled

    simulator = AgentSimulator(stack, tokens)
    make = post_factory(stack.port, customer, AGENT_TICKETS)
    settled_s = await settled(stack)
    meter = stack_meter(stack.pid, stack.servers_dir)
    async with simulator.running():
        meter.start()
        began = time.perf_counter()
        if rate is None:
            results = await saturate(
                HOST, stack.port, make, connections=connections, duration_s=duration_s, on_response=on_response
            )
        else:
            results = await at_rate(HOST, stack.port, make, rate=rate, duration_s=duration_s, on_response=on_response)
        deadline = time.perf_counter() + 60
        # Both sets are filled by callbacks; a deadline bounds the wait for the last accepts.
        while len(simulator.assigned.keys() & created.keys()) < len(created) and time.perf_counter() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        metered_s = time.perf_counter() - began
        taken = len(simulator.assigned.keys() & created.keys())
        # Everything the stack did meanwhile, earlier phases' leftovers included, per ticket this phase assigned.
        cpu = meter.per(taken)
    await step_away(stack, list(tokens))
    to_offer = [simulator.offered[t] - at for t, at in created.items() if t in simulator.offered]
    to_assigned = [simulator.assigned[t] - at for t, at in created.items() if t in simulator.assigned]
    pushed = [
        simulator.pushed[t] - simulator.offered[t] for t in created if t in simulator.pushed and t in simulator.offered
    ]
    last_assigned = max((simulator.assigned[t] for t in created if t in simulator.assigned), default=began)
    return {
        "rate_per_s": round(results.rate, 1),
        "settled_before_s": round(settled_s, 1),
        "agents": len(tokens),
        "create": results.summary(),
        "created": len(created),
        "offered": len(to_offer),
        "assigned": len(to_assigned),
        # Created, offered and accepted, from the start of the load to the last accept.
        "created_and_assigned_per_s": round(len(to_assigned) / max(last_assigned - began, 1e-9), 1),
        "cpu_ms_per_ticket": cpu,
        "cpu_utilisation": utilisation(cpu, taken, metered_s),
        "offers_made": simulator.offers,
        "accept_errors": simulator.accept_errors,
        "create_to_offer_ms": latency_ms(to_offer),
        "create_to_assignment_ms": latency_ms(to_assigned),
        "pushed": len(pushed),
        "offer_event_to_stream_frame_ms": latency_ms(pushed),
        "create_to_offer_stages_ms": await offer_stages(stack, list(created)),
    }


STAGES_SQL = """
WITH t AS (SELECT id, created_at FROM ticketing.tickets WHERE id = ANY($1::uuid[])),
created AS (
    SELECT subject::uuid AS id, min(published_at) AS at FROM ticketing.outbox
    WHERE event_type = 'support.ticketing.v1.ticket.created' AND subject = ANY($2::text[]) GROUP BY 1
),
queued AS (SELECT ticket_id AS id, enqueued_at AS at FROM routing.queue_entries WHERE ticket_id = ANY($1::uuid[])),
offered AS (
    SELECT ticket_id AS id, min(created_at) AS at FROM routing.offers WHERE ticket_id = ANY($1::uuid[]) GROUP BY 1
),
announced AS (
    SELECT subject::uuid AS id, min(published_at) AS at FROM routing.outbox
    WHERE event_type = 'support.routing.v1.offer.created' AND subject = ANY($2::text[]) GROUP BY 1
)
SELECT extract(epoch FROM created.at - t.created_at) AS ticketing_relay,
       extract(epoch FROM queued.at - created.at) AS routing_consumer,
       extract(epoch FROM offered.at - queued.at) AS dispatch,
       extract(epoch FROM announced.at - offered.at) AS routing_relay
FROM t JOIN created USING (id) JOIN queued USING (id) JOIN offered USING (id) JOIN announced USING (id)
"""


async def offer_stages(stack: Stack, ticket_ids: list[str]) -> dict[str, dict[str, float]]:
    """Where create -> offer time goes, from the rows' own timestamps (published_at: when the PubAck was recorded).

    ticketing_relay: ticket committed -> its event published; routing_consumer: published -> routing queued it;
    dispatch: queued -> offer committed (0 unless the offer came from a later re-check); routing_relay: offer
    committed -> its event published.
    """
    rows = await stack.db.fetch(STAGES_SQL, ticket_ids, ticket_ids)
    stages = ("ticketing_relay", "routing_consumer", "dispatch", "routing_relay")
    return {stage: latency_ms([float(r[stage]) for r in rows]) for stage in stages}


@contextlib.contextmanager
def _started(data_dir: Path, env: dict[str, str]) -> Iterator[tuple[int, int]]:
    extra = {
        "NATS_URL": env["NATS_URL"],
        "DATABASE_URL": env["DATABASE_URL"],
        # Harmless where the gateway has no such setting; where it has, the load is one customer's.
        "SUPPORTDESK_RATE_LIMIT_ENABLED": "false",
    }
    with supportdesk_up(data_dir, extra) as (url, pid):
        yield int(url.rsplit(":", 1)[1]), pid


async def run(data_dir: Path, env: dict[str, str], duration_s: float, connections: int) -> dict[str, Any]:
    """All phases on one ``supportdesk up`` using the run's NATS and Postgres (``env``)."""
    with _started(data_dir, env) as (port, pid):
        secret = load_or_create_local_secret(data_dir / "secrets" / "local-jwt.key")
        db = await asyncpg.connect(env["DATABASE_URL"])
        nc = await nats.connect(env["NATS_URL"])
        stack = Stack(port, pid, data_dir.parent, secret, db, nc)
        try:
            customer = stack.token("customer", "c-bench")
            memory: dict[str, Any] = {"idle": service_rss_mb(pid)}
            sat = await saturation(stack, customer, duration_s, connections)
            memory[f"after saturation ({await routed_count(stack):,} queued)"] = service_rss_mb(pid)
            peak = float(sat["create"]["rate_per_s"])
            curve = await latency_curve(stack, customer, peak, duration_s)
            # Tickets agents take cost more than a backlog (an offer, an accept, an assignment, notifications):
            # that workload's own maximum, then half of it.
            agents_peak = await offers(stack, customer, duration_s, rate=None, connections=connections, most=peak)
            half = float(agents_peak["created_and_assigned_per_s"]) / 2
            with_agents = await offers(stack, customer, duration_s, rate=half)
            logged = log_messages(data_dir / "supportdesk-up.log")
            memory[
                f"end ({await routed_count(stack):,} queued, {agents_peak['agents'] + with_agents['agents']} agents)"
            ] = service_rss_mb(pid)
        finally:
            await nc.close()
            await db.close()
    return {
        "saturation": sat,
        "latency_by_load": curve,
        "with_agents_saturated": agents_peak,
        "with_agents": with_agents,
        "memory_rss_mb": memory,
        "service_log_warnings": logged,
    }
