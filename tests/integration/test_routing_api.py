"""RoutingService over gRPC: every RPC, its validation, and its stable error reasons."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg
import grpc
import pytest
from google.protobuf.duration_pb2 import Duration
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from support.common.v1 import common_pb2
from support.routing.v1 import agent_pb2, offer_pb2, queue_pb2, rule_pb2
from support.routing.v1 import routing_service_pb2 as pb
from support.routing.v1 import routing_service_pb2_grpc as pb_grpc

from services.kit.grpc_server import GrpcServer
from services.routing import config_cache, tickets
from services.routing.api import SERVICE_NAME, RoutingApi
from services.routing.domain import TicketFacts
from services.routing.service import RoutingService
from tests.integration.bus_fixtures import migrated_pool

pytestmark = pytest.mark.integration


@dataclass
class Api:
    stub: pb_grpc.RoutingServiceStub
    pool: asyncpg.Pool

    async def ticket(self, category: str = "bank_card", language: str = "zh") -> uuid.UUID:
        """A ticket as ticketing's created event would bring it (without the bus)."""
        facts = TicketFacts(
            ticket_id=uuid.uuid4(),
            category=category,
            language=language,
            priority="normal",
            customer_tier="standard",
            status="new",
            version=1,
            created_at=datetime.now(UTC),
        )
        async with self.pool.acquire() as conn, conn.transaction():
            await tickets.on_created(conn, facts, datetime.now(UTC), await config_cache.current(conn))
        return facts.ticket_id


@pytest.fixture
async def api(fresh_database_url: str) -> AsyncIterator[Api]:
    pool = await migrated_pool(fresh_database_url, "routing", "services.routing")
    server = GrpcServer(
        "127.0.0.1",
        0,
        lambda s: pb_grpc.add_RoutingServiceServicer_to_server(RoutingApi(RoutingService(pool)), s),
        [SERVICE_NAME],
    )
    await server.start()
    channel = grpc.aio.insecure_channel(server.address)
    yield Api(pb_grpc.RoutingServiceStub(channel), pool)
    await channel.close()
    await server.stop(0)
    await pool.close()


def reason(error: grpc.aio.AioRpcError) -> str:
    status = rpc_status.from_call(error)
    assert status is not None
    info = error_details_pb2.ErrorInfo()
    assert status.details[0].Unpack(info)
    return info.reason


async def fails(call: object, code: grpc.StatusCode, why: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call  # type: ignore[misc]
    assert (caught.value.code(), reason(caught.value)) == (code, why)


def agent_request(agent_id: str, capacity: int = 2, **skills: int) -> pb.CreateAgentRequest:
    return pb.CreateAgentRequest(
        request_id=f"r-{agent_id}",
        agent_id=agent_id,
        display_name=f"Agent {agent_id}",
        skills=[agent_pb2.Skill(name=n, proficiency=p) for n, p in (skills or {"cards": 4}).items()],
        languages=["zh", "en"],
        capacity=capacity,
    )


async def test_agents_are_created_once_read_listed_and_updated(api: Api) -> None:
    first = await api.stub.CreateAgent(agent_request("li", payments=5, cards=3))
    again = await api.stub.CreateAgent(agent_request("li", payments=5, cards=3))
    unkeyed = agent_request("li", payments=5, cards=3)
    unkeyed.request_id = ""
    same_profile = await api.stub.CreateAgent(unkeyed)
    await api.stub.CreateAgent(agent_request("wang", cards=2))

    assert first.created
    assert (again.created, same_profile.created) == (False, False)
    assert again.agent == first.agent == same_profile.agent
    await fails(
        api.stub.CreateAgent(agent_request("li", capacity=9)),
        grpc.StatusCode.FAILED_PRECONDITION,
        "idempotency_key_reused",
    )
    other = agent_request("li", capacity=9)
    other.request_id = "r-other"
    await fails(api.stub.CreateAgent(other), grpc.StatusCode.ALREADY_EXISTS, "agent_exists")
    assert first.agent.presence == agent_pb2.PRESENCE_OFFLINE
    assert {(s.name, s.proficiency) for s in first.agent.skills} == {("payments", 5), ("cards", 3)}
    got = await api.stub.GetAgent(pb.GetAgentRequest(agent_id="li"))
    assert got.agent == first.agent

    page = await api.stub.ListAgents(pb.ListAgentsRequest(page_size=1))
    rest = await api.stub.ListAgents(pb.ListAgentsRequest(page_size=1, page_token=page.next_page_token))
    assert [a.id for a in page.agents] + [a.id for a in rest.agents] == ["li", "wang"]
    skilled = await api.stub.ListAgents(pb.ListAgentsRequest(skill="payments"))
    assert [a.id for a in skilled.agents] == ["li"]

    await api.stub.SetAgentPresence(pb.SetAgentPresenceRequest(agent_id="wang", presence=agent_pb2.PRESENCE_AVAILABLE))
    available = await api.stub.ListAgents(pb.ListAgentsRequest(presences=[agent_pb2.PRESENCE_AVAILABLE]))
    assert [a.id for a in available.agents] == ["wang"]

    updated = await api.stub.UpdateAgent(
        pb.UpdateAgentRequest(
            agent_id="li",
            display_name="Li Wei",
            skills=[agent_pb2.Skill(name="complaints", proficiency=4)],
            languages=["zh"],
            capacity=4,
            expected_version=first.agent.version,
        )
    )
    assert (updated.agent.display_name, updated.agent.capacity, list(updated.agent.languages)) == ("Li Wei", 4, ["zh"])
    assert updated.agent.version == first.agent.version + 1
    stale = api.stub.UpdateAgent(
        pb.UpdateAgentRequest(agent_id="li", display_name="x", capacity=1, expected_version=first.agent.version)
    )
    await fails(stale, grpc.StatusCode.FAILED_PRECONDITION, "version_conflict")


async def test_agent_errors(api: Api) -> None:
    await fails(api.stub.GetAgent(pb.GetAgentRequest(agent_id="nobody")), grpc.StatusCode.NOT_FOUND, "agent_not_found")
    bad_skill = agent_request("x", cards=9)
    await fails(api.stub.CreateAgent(bad_skill), grpc.StatusCode.INVALID_ARGUMENT, "invalid_argument")
    await fails(api.stub.CreateAgent(agent_request("")), grpc.StatusCode.INVALID_ARGUMENT, "invalid_argument")
    await api.stub.CreateAgent(agent_request("li"))
    await fails(
        api.stub.SetAgentPresence(pb.SetAgentPresenceRequest(agent_id="li")),
        grpc.StatusCode.INVALID_ARGUMENT,
        "invalid_argument",
    )
    await fails(
        api.stub.SetAgentPresence(pb.SetAgentPresenceRequest(agent_id="nobody", presence=agent_pb2.PRESENCE_AWAY)),
        grpc.StatusCode.NOT_FOUND,
        "agent_not_found",
    )
    rules_token = (await api.stub.ListRoutingRules(pb.ListRoutingRulesRequest(page_size=1))).next_page_token
    await fails(
        api.stub.ListOffers(pb.ListOffersRequest(page_token=rules_token)),
        grpc.StatusCode.INVALID_ARGUMENT,
        "invalid_page_token",
    )


async def test_capacity_cannot_drop_below_what_the_agent_holds(api: Api) -> None:
    await api.stub.UpdateQueue(pb.UpdateQueueRequest(queue=rule_pb2.Queue(name="cards", direct_assignment=True)))
    await api.stub.CreateAgent(agent_request("li", capacity=2))
    await api.stub.SetAgentPresence(pb.SetAgentPresenceRequest(agent_id="li", presence=agent_pb2.PRESENCE_AVAILABLE))
    await api.ticket()
    await api.ticket()
    held = await api.stub.GetAgent(pb.GetAgentRequest(agent_id="li"))
    assert held.agent.active_tickets == 2

    shrink = pb.UpdateAgentRequest(
        agent_id="li", display_name="li", skills=[agent_pb2.Skill(name="cards", proficiency=4)], capacity=1
    )
    await fails(api.stub.UpdateAgent(shrink), grpc.StatusCode.FAILED_PRECONDITION, "agent_over_capacity")


async def test_offers_are_listed_and_answered_only_as_the_contract_says(api: Api) -> None:
    await api.stub.CreateAgent(agent_request("li", capacity=3))
    await api.stub.SetAgentPresence(pb.SetAgentPresenceRequest(agent_id="li", presence=agent_pb2.PRESENCE_AVAILABLE))
    ticket_ids = [await api.ticket() for _ in range(3)]

    first = await api.stub.ListOffers(pb.ListOffersRequest(agent_id="li", page_size=2))
    second = await api.stub.ListOffers(
        pb.ListOffersRequest(agent_id="li", page_size=2, page_token=first.next_page_token)
    )
    offers = [*first.offers, *second.offers]
    assert sorted(o.ticket_id for o in offers) == sorted(str(t) for t in ticket_ids)
    assert {o.state for o in offers} == {offer_pb2.OFFER_STATE_PENDING}
    assert all(o.expire_time.ToDatetime() > o.create_time.ToDatetime() for o in offers)

    accepted = await api.stub.AcceptOffer(pb.AcceptOfferRequest(offer_id=offers[0].id, agent_id="li"))
    assert accepted.offer.state == offer_pb2.OFFER_STATE_ACCEPTED
    assert accepted.offer.HasField("respond_time")
    only_pending = await api.stub.ListOffers(pb.ListOffersRequest(states=[offer_pb2.OFFER_STATE_PENDING]))
    assert len(only_pending.offers) == 2

    routing = await api.stub.GetTicketRouting(pb.GetTicketRoutingRequest(ticket_id=offers[0].ticket_id))
    assert (routing.entry.state, routing.entry.agent_id, routing.entry.queue) == (
        queue_pb2.QUEUE_ENTRY_STATE_ASSIGNED,
        "li",
        "cards",
    )
    assert routing.entry.rule_id
    assert (routing.entry.category, routing.entry.language) == ("bank_card", "zh")

    await fails(
        api.stub.AcceptOffer(pb.AcceptOfferRequest(offer_id=offers[0].id, agent_id="li")),
        grpc.StatusCode.FAILED_PRECONDITION,
        "offer_not_pending",
    )
    await fails(
        api.stub.DeclineOffer(pb.DeclineOfferRequest(offer_id=offers[1].id, agent_id="wang")),
        grpc.StatusCode.PERMISSION_DENIED,
        "not_offer_agent",
    )
    await fails(
        api.stub.AcceptOffer(pb.AcceptOfferRequest(offer_id="not-an-id", agent_id="li")),
        grpc.StatusCode.NOT_FOUND,
        "offer_not_found",
    )
    declined = await api.stub.DeclineOffer(pb.DeclineOfferRequest(offer_id=offers[1].id, agent_id="li", reason="x"))
    assert declined.offer.state == offer_pb2.OFFER_STATE_DECLINED


def payments_rule(**overrides: object) -> rule_pb2.RoutingRule:
    fields: dict[str, object] = {
        "name": "VIP payments",
        "position": 5,
        "match": rule_pb2.RuleMatch(
            categories=["payment_failed"], customer_tiers=["vip"], priorities=[common_pb2.PRIORITY_URGENT]
        ),
        "queue": "vip",
        "steps": [
            rule_pb2.RoutingStep(requirements=[rule_pb2.SkillRequirement(skill="payments", min_proficiency=5)]),
            rule_pb2.RoutingStep(after=Duration(seconds=30), any_agent=True, notify_supervisor=True),
        ],
    }
    fields.update(overrides)
    return rule_pb2.RoutingRule(**fields)  # type: ignore[arg-type]


async def test_rules_ship_with_defaults_and_are_edited_by_admins(api: Api) -> None:
    defaults = await api.stub.ListRoutingRules(pb.ListRoutingRulesRequest())
    assert [r.queue for r in defaults.rules] == ["payments", "account_security", "cards", "complaints", "general"]
    payments = defaults.rules[0]
    assert [(s.after.seconds, [(q.skill, q.min_proficiency) for q in s.requirements]) for s in payments.steps] == [
        (0, [("payments", 4)]),
        (60, [("payments", 2)]),
        (120, []),
    ]
    assert payments.steps[-1].notify_supervisor

    created = await api.stub.CreateRoutingRule(pb.CreateRoutingRuleRequest(request_id="k-1", rule=payments_rule()))
    retried = await api.stub.CreateRoutingRule(pb.CreateRoutingRuleRequest(request_id="k-1", rule=payments_rule()))
    assert created.created
    assert not retried.created
    assert retried.rule == created.rule
    queues = await api.stub.ListQueues(pb.ListQueuesRequest())
    assert "vip" in [q.name for q in queues.queues], "a rule's new queue is created with the defaults"

    first_page = await api.stub.ListRoutingRules(pb.ListRoutingRulesRequest(page_size=1))
    assert first_page.rules[0].id == created.rule.id

    changed = payments_rule(id=created.rule.id, name="VIP payments (relaxed)", version=created.rule.version)
    updated = await api.stub.UpdateRoutingRule(pb.UpdateRoutingRuleRequest(rule=changed))
    assert (updated.rule.name, updated.rule.version) == ("VIP payments (relaxed)", created.rule.version + 1)
    await fails(
        api.stub.UpdateRoutingRule(pb.UpdateRoutingRuleRequest(rule=changed)),
        grpc.StatusCode.FAILED_PRECONDITION,
        "version_conflict",
    )

    await api.stub.DeleteRoutingRule(pb.DeleteRoutingRuleRequest(rule_id=created.rule.id))
    await fails(
        api.stub.DeleteRoutingRule(pb.DeleteRoutingRuleRequest(rule_id=created.rule.id)),
        grpc.StatusCode.NOT_FOUND,
        "rule_not_found",
    )
    unknown = payments_rule(id=str(uuid.uuid4()))
    await fails(
        api.stub.UpdateRoutingRule(pb.UpdateRoutingRuleRequest(rule=unknown)),
        grpc.StatusCode.NOT_FOUND,
        "rule_not_found",
    )
    late_first_step = payments_rule(steps=[rule_pb2.RoutingStep(after=Duration(seconds=5))])
    await fails(
        api.stub.CreateRoutingRule(pb.CreateRoutingRuleRequest(rule=late_first_step)),
        grpc.StatusCode.INVALID_ARGUMENT,
        "invalid_argument",
    )


async def test_queues_are_created_and_updated_with_a_version(api: Api) -> None:
    created = await api.stub.UpdateQueue(
        pb.UpdateQueueRequest(queue=rule_pb2.Queue(name="vip", direct_assignment=True, requeue_on_offline=True))
    )
    assert created.queue.offer_timeout.seconds == 30, "unset means the default"
    assert created.queue.version == 1
    moved = await api.stub.UpdateQueue(
        pb.UpdateQueueRequest(queue=rule_pb2.Queue(name="vip", offer_timeout=Duration(seconds=45), version=1))
    )
    assert (moved.queue.offer_timeout.seconds, moved.queue.direct_assignment, moved.queue.version) == (45, False, 2)
    await fails(
        api.stub.UpdateQueue(pb.UpdateQueueRequest(queue=rule_pb2.Queue(name="vip", version=1))),
        grpc.StatusCode.FAILED_PRECONDITION,
        "version_conflict",
    )
    await fails(
        api.stub.UpdateQueue(pb.UpdateQueueRequest(queue=rule_pb2.Queue(name="Not A Name"))),
        grpc.StatusCode.INVALID_ARGUMENT,
        "invalid_argument",
    )
    listed = await api.stub.ListQueues(pb.ListQueuesRequest(page_size=2))
    assert [q.name for q in listed.queues] == ["account_security", "cards"]
    assert listed.next_page_token


async def test_ticket_routing_stats_and_transfer_errors(api: Api) -> None:
    await fails(
        api.stub.GetTicketRouting(pb.GetTicketRoutingRequest(ticket_id=str(uuid.uuid4()))),
        grpc.StatusCode.NOT_FOUND,
        "ticket_not_routed",
    )
    ticket = await api.ticket()
    entry = await api.stub.GetTicketRouting(pb.GetTicketRoutingRequest(ticket_id=str(ticket)))
    assert entry.entry.state == queue_pb2.QUEUE_ENTRY_STATE_WAITING
    stats = await api.stub.ListQueueStats(pb.ListQueueStatsRequest())
    cards = next(s for s in stats.queues if s.queue == "cards")
    assert (cards.waiting, cards.agents_available, cards.offers_outstanding) == (1, 0, 0)

    both = pb.TransferTicketRequest(ticket_id=str(ticket), to_agent_id="li", to_queue="general")
    await fails(api.stub.TransferTicket(both), grpc.StatusCode.INVALID_ARGUMENT, "invalid_argument")
    await fails(
        api.stub.TransferTicket(pb.TransferTicketRequest(ticket_id=str(ticket), to_agent_id="nobody")),
        grpc.StatusCode.NOT_FOUND,
        "agent_not_found",
    )
    await fails(
        api.stub.TransferTicket(pb.TransferTicketRequest(ticket_id=str(ticket), to_queue="nowhere")),
        grpc.StatusCode.NOT_FOUND,
        "queue_not_found",
    )
    await api.stub.CreateAgent(agent_request("li"))
    await fails(
        api.stub.TransferTicket(pb.TransferTicketRequest(ticket_id=str(ticket), to_agent_id="li")),
        grpc.StatusCode.FAILED_PRECONDITION,
        "agent_offline",
    )
    await api.stub.SetAgentPresence(pb.SetAgentPresenceRequest(agent_id="li", presence=agent_pb2.PRESENCE_AWAY))
    moved = await api.stub.TransferTicket(pb.TransferTicketRequest(ticket_id=str(ticket), to_agent_id="li", by="s-1"))
    assert (moved.entry.state, moved.entry.agent_id) == (queue_pb2.QUEUE_ENTRY_STATE_ASSIGNED, "li")
