"""Routing against real Postgres and NATS: ticketing's events in through JetStream, offers, timers, events out."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from nats.js import JetStreamContext
from support.common.v1 import common_pb2
from support.routing.v1 import events_pb2 as routing_events
from support.ticketing.v1 import events_pb2 as ticketing_events
from support.ticketing.v1 import ticket_pb2

from services.kit.bus.consumer import EventConsumer
from services.kit.bus.envelope import Envelope
from services.kit.bus.outbox import OutboxRelay
from services.kit.bus.streams import declare_consumer
from services.kit.errors import DomainError
from services.kit.proto_enums import to_proto
from services.routing import consumers
from services.routing.domain import (
    Agent,
    AgentProfile,
    EntryState,
    Offer,
    Presence,
    Queue,
    QueueEntry,
    Requirement,
    RoutingRule,
    RuleMatch,
    Skill,
    Step,
)
from services.routing.service import RoutingService
from tests.integration.bus_fixtures import BUS, migrated_pool, stream_messages
from tests.waiting import eventually

pytestmark = pytest.mark.integration


def replica(pool: asyncpg.Pool, js: JetStreamContext, *, relay: bool = True) -> list[asyncio.Task[None]]:
    """One routing replica's background work: the ticket-event consumer, the timer scheduler, the relay."""
    tasks = [
        asyncio.create_task(
            EventConsumer(
                js,
                pool,
                consumers.TICKET_EVENTS,
                consumers.on_ticket_event,
                max_deliver=10,
                together=consumers.TICKETS_CREATED_TOGETHER,  # as the service runs it
            ).run()
        ),
        asyncio.create_task(consumers.scheduler(pool).run()),
    ]
    if relay:
        tasks.append(asyncio.create_task(OutboxRelay(pool, js, "routing").run()))
    return tasks


async def stop(tasks: Sequence[asyncio.Task[None]]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def _ts(at: datetime) -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(at)
    return ts


@dataclass
class Desk:
    """A routing replica and the means to drive it as ticketing and agents would."""

    pool: asyncpg.Pool
    js: JetStreamContext
    service: RoutingService
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def publish(self, event_type: str, ticket_id: uuid.UUID, payload: bytes) -> None:
        envelope = Envelope.new(type=event_type, source="supportdesk/ticketing", subject=str(ticket_id), data=payload)
        await self.js.publish(envelope.type, envelope.data, headers=envelope.headers())

    async def ticket(
        self,
        *,
        category: str = "payment_failed",
        priority: str = "urgent",
        language: str = "zh",
        created_at: datetime | None = None,
    ) -> uuid.UUID:
        ticket_id = uuid.uuid4()
        ticket = ticket_pb2.Ticket(
            id=str(ticket_id),
            customer_id="c-1",
            category=to_proto(ticket_pb2.Category, category),
            priority=to_proto(common_pb2.Priority, priority),
            status=ticket_pb2.TICKET_STATUS_NEW,
            language=language,
            customer_tier="standard",
            version=1,
            create_time=_ts(created_at or datetime.now(UTC)),
        )
        await self.publish(
            "support.ticketing.v1.ticket.created",
            ticket_id,
            ticketing_events.TicketCreated(ticket=ticket).SerializeToString(),
        )
        return ticket_id

    async def status(self, ticket_id: uuid.UUID, status: str, version: int, *, before: str = "open") -> None:
        await self.publish(
            "support.ticketing.v1.ticket.status_changed",
            ticket_id,
            ticketing_events.TicketStatusChanged(
                ticket_id=str(ticket_id),
                from_status=to_proto(ticket_pb2.TicketStatus, before),
                to_status=to_proto(ticket_pb2.TicketStatus, status),
                ticket_version=version,
                actor=ticket_pb2.Actor(type=ticket_pb2.ACTOR_TYPE_AGENT, id="a"),
            ).SerializeToString(),
        )

    async def agent(
        self,
        agent_id: str,
        skills: dict[str, int],
        *,
        languages: tuple[str, ...] = ("zh", "en"),
        capacity: int = 1,
        available: bool = True,
    ) -> Agent:
        profile = AgentProfile(
            display_name=agent_id,
            skills=tuple(Skill(n, p) for n, p in skills.items()),
            languages=languages,
            capacity=capacity,
        )
        agent, _ = await self.service.create_agent(agent_id, profile)
        if available:
            agent = await self.service.set_presence(agent_id, Presence.AVAILABLE)
        return agent

    async def entry(self, ticket_id: uuid.UUID) -> QueueEntry:
        return await self.service.ticket_routing(str(ticket_id))

    async def offers(self, ticket_id: uuid.UUID) -> list[tuple[str, str]]:
        """(agent, state) of every offer of the ticket, oldest first."""
        rows = await self.pool.fetch(
            "SELECT agent_id, state FROM offers WHERE ticket_id = $1 ORDER BY created_at, id", ticket_id
        )
        return [(r["agent_id"], r["state"]) for r in rows]

    async def pending_offer(self, ticket_id: uuid.UUID) -> Offer | None:
        offers, _ = await self.service.list_offers("", [], 100, "")
        return next((o for o in offers if o.ticket_id == ticket_id and o.state.value == "pending"), None)

    async def events(self, event_type: str, subject: object | None = None) -> list[bytes]:
        rows = await self.pool.fetch(
            "SELECT payload FROM outbox WHERE event_type = $1 AND ($2::text IS NULL OR subject = $2) ORDER BY id",
            f"support.routing.v1.{event_type}",
            None if subject is None else str(subject),
        )
        return [bytes(r["payload"]) for r in rows]

    async def until(self, ticket_id: uuid.UUID, state: EntryState, agent_id: str | None = None) -> QueueEntry:
        async def reached() -> bool:
            try:
                entry = await self.entry(ticket_id)
            except Exception:
                return False
            return entry.state is state and (agent_id is None or entry.agent_id == agent_id)

        await eventually(reached, what=f"ticket {ticket_id} {state.value} {agent_id or ''}")
        return await self.entry(ticket_id)


@pytest.fixture
async def desk(fresh_database_url: str, js: JetStreamContext) -> AsyncIterator[Desk]:
    pool = await migrated_pool(fresh_database_url, "routing", "services.routing")
    await declare_consumer(js, consumers.TICKET_EVENTS, BUS)
    desk = Desk(pool, js, RoutingService(pool))
    desk.tasks = replica(pool, js)
    yield desk
    await stop(desk.tasks)
    await pool.close()


async def set_offer_timeout(desk: Desk, queue: str, seconds: float, **options: bool) -> None:
    await desk.service.update_queue(Queue(queue, offer_timeout=timedelta(seconds=seconds), **options))


# --- offers ----------------------------------------------------------------------------------------------


async def test_a_missed_offer_sends_the_agent_away_and_the_ticket_to_the_next_agent(desk: Desk) -> None:
    await set_offer_timeout(desk, "payments", 0.5)
    await desk.agent("expert", {"payments": 5})
    await desk.agent("senior", {"payments": 4})
    ticket = await desk.ticket()

    first = await desk.until(ticket, EntryState.OFFERED)
    assert first.agent_id == "expert", "the highest proficiency wins among equally idle agents"
    await desk.until(ticket, EntryState.OFFERED, "senior")

    assert await desk.offers(ticket) == [("expert", "expired"), ("senior", "pending")]
    expert = await desk.service.get_agent("expert")
    assert (expert.presence, expert.active) == (Presence.AWAY, 0)
    [moved] = [
        routing_events.AgentPresenceChanged.FromString(p) for p in await desk.events("agent.presence_changed", "expert")
    ][-1:]
    assert moved.reason == "missed_offer"
    assert len(await desk.events("offer.expired", ticket)) == 1
    entry = await desk.entry(ticket)
    assert entry.ticket_created_at == first.ticket_created_at, "the ticket keeps its age"


async def test_accepting_assigns_the_ticket_and_tells_ticketing(desk: Desk) -> None:
    await desk.agent("a-1", {"payments": 5})
    ticket = await desk.ticket()
    await desk.until(ticket, EntryState.OFFERED, "a-1")
    offer = await desk.pending_offer(ticket)
    assert offer is not None

    accepted = await desk.service.accept_offer(str(offer.id), "a-1")

    assert accepted.state.value == "accepted"
    entry = await desk.entry(ticket)
    assert (entry.state, entry.agent_id) == (EntryState.ASSIGNED, "a-1")
    agent = await desk.service.get_agent("a-1")
    assert agent.active == 1
    assert agent.last_assigned_at is not None

    async def published() -> bool:
        for message in await stream_messages(desk.js, "ROUTING"):
            if message.subject == "support.routing.v1.ticket.assigned":
                event = routing_events.TicketAssigned.FromString(message.data)
                return (event.ticket_id, event.agent_id, event.queue) == (str(ticket), "a-1", "payments")
        return False

    await eventually(published, what="ticket.assigned on the ROUTING stream")


async def test_declining_returns_the_ticket_and_offers_it_to_someone_else(desk: Desk) -> None:
    await desk.agent("a-1", {"payments": 5})
    await desk.agent("a-2", {"payments": 4})
    ticket = await desk.ticket()
    await desk.until(ticket, EntryState.OFFERED, "a-1")
    offer = await desk.pending_offer(ticket)
    assert offer is not None

    declined = await desk.service.decline_offer(str(offer.id), "a-1", "on a call")

    assert declined.state.value == "declined"
    entry = await desk.until(ticket, EntryState.OFFERED, "a-2")
    assert entry.step == 0
    assert await desk.offers(ticket) == [("a-1", "declined"), ("a-2", "pending")]
    decliner = await desk.service.get_agent("a-1")
    assert (decliner.presence, decliner.active) == (Presence.AVAILABLE, 0), "declining is not being away"


async def test_only_the_offered_agent_may_answer_and_only_once(desk: Desk) -> None:
    await desk.agent("a-1", {"payments": 5})
    ticket = await desk.ticket()
    await desk.until(ticket, EntryState.OFFERED, "a-1")
    offer = await desk.pending_offer(ticket)
    assert offer is not None
    with pytest.raises(DomainError) as other:
        await desk.service.accept_offer(str(offer.id), "someone-else")
    assert other.value.code == "not_offer_agent"
    await desk.service.accept_offer(str(offer.id), "a-1")
    with pytest.raises(DomainError) as again:
        await desk.service.decline_offer(str(offer.id), "a-1", "")
    assert again.value.code == "offer_not_pending"
    with pytest.raises(DomainError) as missing:
        await desk.service.accept_offer(str(uuid.uuid4()), "a-1")
    assert missing.value.code == "offer_not_found"


# --- rules -----------------------------------------------------------------------------------------------


def fast_relaxing_cards_rule() -> RoutingRule:
    """Cards tickets want proficiency 5, then after a second 2, and that second step tells supervisors."""
    return RoutingRule(
        id=uuid.uuid4(),
        name="cards, fast relax",
        position=1,
        match=RuleMatch(categories=("bank_card",)),
        queue="cards",
        steps=(
            Step(after=timedelta(0), requirements=(Requirement("cards", 5),)),
            Step(after=timedelta(seconds=1), requirements=(Requirement("cards", 2),), notify_supervisor=True),
        ),
    )


async def test_a_relaxed_step_lets_a_less_skilled_agent_take_the_ticket(desk: Desk) -> None:
    rule = fast_relaxing_cards_rule()
    await desk.service.create_rule("r-1", rule)
    await desk.agent("junior", {"cards": 2})
    ticket = await desk.ticket(category="bank_card", priority="normal")

    async def queued() -> bool:
        return bool(await desk.pool.fetchval("SELECT count(*) FROM queue_entries WHERE ticket_id = $1", ticket))

    await eventually(queued, what="the ticket to be queued")
    waiting = await desk.entry(ticket)
    if waiting.state is EntryState.WAITING:  # unless this machine took over a second to get here
        assert waiting.step == 0
        assert await desk.offers(ticket) == []

    entry = await desk.until(ticket, EntryState.OFFERED, "junior")
    assert entry.step == 1
    assert entry.rule_id == rule.id
    [escalated] = [routing_events.TicketEscalated.FromString(p) for p in await desk.events("ticket.escalated", ticket)]
    assert (escalated.queue, escalated.step) == ("cards", 1)


async def test_a_backlog_no_agent_can_take_relaxes_together_and_the_next_agent_still_gets_it(desk: Desk) -> None:
    """Steps coming due for many waiting tickets at once are relaxed in a batch: each moves to its next step,
    supervisors hear of each, and an agent who turns up later is still offered them."""
    rule = fast_relaxing_cards_rule()
    await desk.service.create_rule("r-1", rule)
    await desk.agent("novice", {"cards": 1}, capacity=10)  # open, but below both steps
    backlog = [await desk.ticket(category="bank_card", priority="normal") for _ in range(6)]

    async def all_relaxed() -> bool:
        steps = await desk.pool.fetchval(
            "SELECT count(*) FROM queue_entries WHERE ticket_id = ANY($1::uuid[]) AND step = 1", backlog
        )
        return bool(steps == len(backlog))

    await eventually(all_relaxed, what="every ticket of the backlog at its second step")
    for ticket in backlog:
        entry = await desk.entry(ticket)
        assert (entry.state, entry.agent_id) == (EntryState.WAITING, None)
        [escalated] = [
            routing_events.TicketEscalated.FromString(p) for p in await desk.events("ticket.escalated", ticket)
        ]
        assert (escalated.queue, escalated.step) == ("cards", 1)
    assert (
        await desk.pool.fetchval(
            "SELECT count(*) FROM timers WHERE kind = 'route.relax' AND coalesce(fired_at, cancelled_at) IS NULL"
        )
        == 0
    ), "no step is left to relax to"

    await desk.agent("junior", {"cards": 2}, capacity=10)
    for ticket in backlog:
        await desk.until(ticket, EntryState.OFFERED, "junior")


async def test_a_relaxation_due_while_another_transaction_holds_the_entry_is_retried_after(desk: Desk) -> None:
    """The batch of relaxations skips an entry it cannot lock at once and leaves its timer to the one-timer path,
    which gives way (retried with back-off) until the entry is free: the step moves then, once."""
    rule = fast_relaxing_cards_rule()
    await desk.service.create_rule("r-1", rule)
    ticket = await desk.ticket(category="bank_card", priority="normal")
    await desk.until(ticket, EntryState.WAITING)

    async def retried() -> bool:
        attempts = await desk.pool.fetchval(
            "SELECT attempts FROM timers WHERE kind = 'route.relax' AND key = $1", str(ticket)
        )
        return bool(attempts)

    async with desk.pool.acquire() as holder, holder.transaction():
        await holder.execute("SELECT 1 FROM queue_entries WHERE ticket_id = $1 FOR UPDATE", ticket)
        await eventually(retried, what="the relaxation to give way to the transaction holding the entry")
        assert (await desk.entry(ticket)).step == 0

    async def relaxed() -> bool:
        return (await desk.entry(ticket)).step == 1

    await eventually(relaxed, what="the step to move once the entry is free", timeout=15)
    assert len(await desk.events("ticket.escalated", ticket)) == 1


async def test_a_burst_of_new_tickets_is_routed_together_as_each_would_be_alone(desk: Desk) -> None:
    """Tickets created while routing was busy arrive in one fetch and are applied in one transaction: each is
    queued and announced, the ones an agent can take are offered, and the others wait for one."""
    await stop(desk.tasks)
    await desk.agent("a-1", {"payments": 5}, languages=("en",), capacity=3)
    english = [await desk.ticket(language="en", priority="normal") for _ in range(3)]
    chinese = [await desk.ticket(language="zh", priority="normal") for _ in range(5)]
    desk.tasks = replica(desk.pool, desk.js)

    for ticket in english:
        await desk.until(ticket, EntryState.OFFERED, "a-1")
    for ticket in chinese:
        entry = await desk.until(ticket, EntryState.WAITING)
        assert entry.sla_due_at is not None, "its SLA clocks started with it"
    for ticket in [*english, *chinese]:
        assert len(await desk.events("ticket.queued", ticket)) == 1
    assert await desk.pool.fetchval("SELECT count(*) FROM sla_tickets") == len(english) + len(chinese)
    assert (await desk.service.get_agent("a-1")).active == 3

    await desk.agent("a-2", {"payments": 5}, languages=("zh",), capacity=5)
    for ticket in chinese:
        await desk.until(ticket, EntryState.OFFERED, "a-2")


async def test_a_ticket_in_chinese_waits_for_an_agent_who_speaks_it(desk: Desk) -> None:
    await desk.agent("english-only", {"payments": 5}, languages=("en",))
    ticket = await desk.ticket(language="zh")
    await desk.until(ticket, EntryState.WAITING)
    await desk.agent("bilingual", {"payments": 4}, languages=("en", "zh"))
    await desk.until(ticket, EntryState.OFFERED, "bilingual")


# --- queues, capacity, transfers -------------------------------------------------------------------------


async def test_a_direct_assignment_queue_assigns_without_an_offer(desk: Desk) -> None:
    await desk.service.update_queue(Queue("cards", direct_assignment=True))
    await desk.agent("a-1", {"cards": 4})
    ticket = await desk.ticket(category="bank_card", priority="normal")

    await desk.until(ticket, EntryState.ASSIGNED, "a-1")
    assert await desk.offers(ticket) == []
    [assigned] = [routing_events.TicketAssigned.FromString(p) for p in await desk.events("ticket.assigned", ticket)]
    assert assigned.agent_id == "a-1"
    assert await desk.pool.fetchval("SELECT via FROM assignments WHERE ticket_id = $1", ticket) == "direct"


async def test_resolving_a_ticket_frees_capacity_for_the_next_waiting_one(desk: Desk) -> None:
    await desk.service.update_queue(Queue("cards", direct_assignment=True))
    await desk.agent("a-1", {"cards": 4}, capacity=1)
    first = await desk.ticket(category="bank_card", priority="normal")
    await desk.until(first, EntryState.ASSIGNED, "a-1")
    second = await desk.ticket(category="bank_card", priority="normal")
    await desk.until(second, EntryState.WAITING)

    await desk.status(first, "resolved", 3)

    await desk.until(second, EntryState.ASSIGNED, "a-1")
    parked = await desk.entry(first)
    assert (parked.state, parked.ticket_status, parked.agent_id) == (EntryState.PARKED, "resolved", "a-1")
    assert (await desk.service.get_agent("a-1")).active == 1


async def test_a_customer_reply_returns_a_pending_ticket_to_its_agent(desk: Desk) -> None:
    await desk.service.update_queue(Queue("cards", direct_assignment=True))
    await desk.agent("a-1", {"cards": 4}, capacity=2)
    ticket = await desk.ticket(category="bank_card", priority="normal")
    await desk.until(ticket, EntryState.ASSIGNED, "a-1")
    await desk.status(ticket, "pending", 3)
    await desk.until(ticket, EntryState.PARKED)
    assert (await desk.service.get_agent("a-1")).active == 0

    await desk.status(ticket, "open", 4, before="pending")

    await desk.until(ticket, EntryState.ASSIGNED, "a-1")
    assert (await desk.service.get_agent("a-1")).active == 1
    vias = [
        r["via"] for r in await desk.pool.fetch("SELECT via FROM assignments WHERE ticket_id = $1 ORDER BY id", ticket)
    ]
    assert vias == ["direct", "reopen"]


async def test_transfer_to_an_agent_and_to_a_queue(desk: Desk) -> None:
    await desk.service.update_queue(Queue("cards", direct_assignment=True))
    await desk.agent("a-1", {"cards": 4})
    await desk.agent("a-2", {"cards": 1}, languages=("en",))
    ticket = await desk.ticket(category="bank_card", priority="normal")
    await desk.until(ticket, EntryState.ASSIGNED, "a-1")

    moved = await desk.service.transfer(str(ticket), to_agent="a-2", to_queue="", by="sup-1", reason="second opinion")

    assert (moved.state, moved.agent_id) == (EntryState.ASSIGNED, "a-2")
    assert (await desk.service.get_agent("a-1")).active == 0
    assert (await desk.service.get_agent("a-2")).active == 1
    [transferred] = [
        routing_events.TicketTransferred.FromString(p) for p in await desk.events("ticket.transferred", ticket)
    ]
    assert (transferred.from_agent_id, transferred.to_agent_id, transferred.by) == ("a-1", "a-2", "sup-1")

    await desk.service.set_presence("a-1", Presence.AWAY)
    await desk.agent("generalist", {}, languages=("zh",))
    requeued = await desk.service.transfer(str(ticket), to_agent="", to_queue="general", by="sup-1", reason="")

    assert requeued.queue == "general"
    await desk.until(ticket, EntryState.OFFERED, "generalist")
    assert (await desk.service.get_agent("a-2")).active == 0
    open_holders = await desk.pool.fetchval(
        "SELECT count(*) FROM assignments WHERE ticket_id = $1 AND released_at IS NULL", ticket
    )
    assert open_holders == 0


async def test_transfer_refuses_an_agent_at_capacity(desk: Desk) -> None:
    await desk.service.update_queue(Queue("cards", direct_assignment=True))
    await desk.agent("a-1", {"cards": 4})
    await desk.agent("a-2", {"cards": 4})
    first = await desk.ticket(category="bank_card", priority="normal")
    second = await desk.ticket(category="bank_card", priority="normal")
    await desk.until(first, EntryState.ASSIGNED)
    await desk.until(second, EntryState.ASSIGNED)
    holder = (await desk.entry(first)).agent_id
    other = "a-2" if holder == "a-1" else "a-1"

    with pytest.raises(DomainError) as full:
        await desk.service.transfer(str(first), to_agent=other, to_queue="", by="sup-1", reason="")

    assert full.value.code == "agent_over_capacity"
    assert (await desk.entry(first)).agent_id == holder, "a refused transfer changes nothing"


async def test_going_offline_returns_offers_and_open_tickets(desk: Desk) -> None:
    await set_offer_timeout(desk, "payments", 60, requeue_on_offline=True)
    await desk.agent("leaving", {"payments": 5}, capacity=2)
    held = await desk.ticket()
    await desk.until(held, EntryState.OFFERED, "leaving")
    offer = await desk.pending_offer(held)
    assert offer is not None
    await desk.service.accept_offer(str(offer.id), "leaving")
    offered = await desk.ticket()
    await desk.until(offered, EntryState.OFFERED, "leaving")

    await desk.service.set_presence("leaving", Presence.OFFLINE)

    assert await desk.offers(offered) == [("leaving", "withdrawn")]
    for ticket in (held, offered):
        entry = await desk.entry(ticket)
        assert (entry.state, entry.agent_id) == (EntryState.WAITING, None)
    assert (await desk.service.get_agent("leaving")).active == 0
    assert len(await desk.events("offer.withdrawn", offered)) == 1

    await desk.agent("staying", {"payments": 4}, capacity=2)
    await desk.until(held, EntryState.OFFERED, "staying")
    await desk.until(offered, EntryState.OFFERED, "staying")


async def test_urgent_tickets_are_offered_before_older_normal_ones(desk: Desk) -> None:
    await desk.agent("a-1", {"payments": 5}, available=False)
    older = await desk.ticket(category="transaction_query", priority="normal")
    newer = await desk.ticket(category="payment_failed", priority="urgent")
    await desk.until(older, EntryState.WAITING)
    await desk.until(newer, EntryState.WAITING)

    await desk.service.set_presence("a-1", Presence.AVAILABLE)

    await desk.until(newer, EntryState.OFFERED, "a-1")
    assert (await desk.entry(older)).state is EntryState.WAITING


async def test_queue_stats_count_waiting_tickets_agents_and_offers(desk: Desk) -> None:
    await desk.agent("a-1", {"payments": 5})
    offered = await desk.ticket()
    await desk.until(offered, EntryState.OFFERED, "a-1")
    waiting = await desk.ticket()
    await desk.until(waiting, EntryState.WAITING)

    stats, _ = await desk.service.queue_stats(100, "")

    payments = next(s for s in stats if s.queue == "payments")
    assert (payments.waiting, payments.offers_outstanding, payments.agents_busy, payments.agents_available) == (
        1,
        1,
        1,
        0,
    )
    assert payments.longest_wait > timedelta(0)
    assert payments.estimated_wait >= payments.longest_wait, "no throughput yet: the longest wait is the floor"
    assert {s.queue for s in stats} >= {"payments", "account_security", "cards", "complaints", "general"}


async def test_a_status_change_that_overtakes_its_ticket_is_applied_once_the_ticket_arrives(desk: Desk) -> None:
    ticket_id = uuid.uuid4()
    await desk.status(ticket_id, "pending", 2, before="new")
    ticket = ticket_pb2.Ticket(
        id=str(ticket_id),
        customer_id="c-1",
        category=ticket_pb2.CATEGORY_BANK_CARD,
        priority=common_pb2.PRIORITY_NORMAL,
        status=ticket_pb2.TICKET_STATUS_NEW,
        language="en",
        version=1,
        create_time=_ts(datetime.now(UTC)),
    )
    await desk.publish(
        "support.ticketing.v1.ticket.created",
        ticket_id,
        ticketing_events.TicketCreated(ticket=ticket).SerializeToString(),
    )

    parked = await desk.until(ticket_id, EntryState.PARKED)
    assert (parked.ticket_status, parked.ticket_version) == ("pending", 2)


async def test_a_raised_priority_moves_a_ticket_ahead(desk: Desk) -> None:
    await desk.agent("a-1", {"cards": 4}, available=False)
    first = await desk.ticket(category="bank_card", priority="normal")
    second = await desk.ticket(category="bank_card", priority="normal")
    await desk.until(first, EntryState.WAITING)
    await desk.until(second, EntryState.WAITING)
    await desk.publish(
        "support.ticketing.v1.ticket.priority_changed",
        second,
        ticketing_events.TicketPriorityChanged(
            ticket_id=str(second),
            from_priority=common_pb2.PRIORITY_NORMAL,
            to_priority=common_pb2.PRIORITY_HIGH,
            ticket_version=2,
        ).SerializeToString(),
    )

    async def raised() -> bool:
        return (await desk.entry(second)).priority == "high"

    await eventually(raised, what="the new priority")
    await desk.service.set_presence("a-1", Presence.AVAILABLE)
    await desk.until(second, EntryState.OFFERED, "a-1")
    assert (await desk.entry(first)).state is EntryState.WAITING


async def test_a_reopened_ticket_whose_agent_is_full_is_routed_again(desk: Desk) -> None:
    await desk.service.update_queue(Queue("cards", direct_assignment=True))
    await desk.agent("a-1", {"cards": 4}, capacity=1)
    ticket = await desk.ticket(category="bank_card", priority="normal")
    await desk.until(ticket, EntryState.ASSIGNED, "a-1")
    await desk.status(ticket, "pending", 3)
    await desk.until(ticket, EntryState.PARKED)
    other = await desk.ticket(category="bank_card", priority="normal")
    await desk.until(other, EntryState.ASSIGNED, "a-1")

    await desk.status(ticket, "open", 4, before="pending")

    reopened = await desk.until(ticket, EntryState.WAITING)
    assert reopened.agent_id is None
    assert len(await desk.events("ticket.queued", ticket)) == 2
    await desk.agent("a-2", {"cards": 3})
    await desk.until(ticket, EntryState.ASSIGNED, "a-2")
