"""gRPC edge of routing: protobuf in, use cases, protobuf out."""

from __future__ import annotations

import uuid

from support.routing.v1 import routing_service_pb2 as pb
from support.routing.v1 import routing_service_pb2_grpc as pb_grpc

from services.kit.db import DB_UNAVAILABLE_ERRORS
from services.kit.grpc_errors import Context, grpc_method
from services.routing import convert
from services.routing.service import RoutingService, rule_key

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["RoutingService"].full_name
handled = grpc_method(DB_UNAVAILABLE_ERRORS)


class RoutingApi(pb_grpc.RoutingServiceServicer):
    def __init__(self, service: RoutingService) -> None:
        self._service = service

    # --- tickets and queues ------------------------------------------------------------------------------

    @handled
    async def GetTicketRouting(
        self, request: pb.GetTicketRoutingRequest, context: Context
    ) -> pb.GetTicketRoutingResponse:
        entry = await self._service.ticket_routing(request.ticket_id)
        return pb.GetTicketRoutingResponse(entry=convert.entry_message(entry))

    @handled
    async def ListQueueStats(self, request: pb.ListQueueStatsRequest, context: Context) -> pb.ListQueueStatsResponse:
        stats, token = await self._service.queue_stats(request.page_size, request.page_token)
        return pb.ListQueueStatsResponse(queues=[convert.stats_message(s) for s in stats], next_page_token=token)

    @handled
    async def TransferTicket(self, request: pb.TransferTicketRequest, context: Context) -> pb.TransferTicketResponse:
        entry = await self._service.transfer(
            request.ticket_id,
            to_agent=request.to_agent_id,
            to_queue=request.to_queue,
            by=request.by,
            reason=request.reason,
        )
        return pb.TransferTicketResponse(entry=convert.entry_message(entry))

    @handled
    async def ListQueues(self, request: pb.ListQueuesRequest, context: Context) -> pb.ListQueuesResponse:
        queues, token = await self._service.list_queues(request.page_size, request.page_token)
        return pb.ListQueuesResponse(queues=[convert.queue_message(q) for q in queues], next_page_token=token)

    @handled
    async def UpdateQueue(self, request: pb.UpdateQueueRequest, context: Context) -> pb.UpdateQueueResponse:
        queue = await self._service.update_queue(convert.queue(request.queue))
        return pb.UpdateQueueResponse(queue=convert.queue_message(queue))

    # --- agents ------------------------------------------------------------------------------------------

    @handled
    async def CreateAgent(self, request: pb.CreateAgentRequest, context: Context) -> pb.CreateAgentResponse:
        profile = convert.profile(request.display_name, request.skills, request.languages, request.capacity)
        agent, created = await self._service.create_agent(request.agent_id, profile, request_id=request.request_id)
        return pb.CreateAgentResponse(agent=convert.agent_message(agent), created=created)

    @handled
    async def GetAgent(self, request: pb.GetAgentRequest, context: Context) -> pb.GetAgentResponse:
        agent = await self._service.get_agent(request.agent_id)
        return pb.GetAgentResponse(agent=convert.agent_message(agent))

    @handled
    async def ListAgents(self, request: pb.ListAgentsRequest, context: Context) -> pb.ListAgentsResponse:
        found, token = await self._service.list_agents(
            convert.presences(request.presences), request.skill, request.page_size, request.page_token
        )
        return pb.ListAgentsResponse(agents=[convert.agent_message(a) for a in found], next_page_token=token)

    @handled
    async def CountAgents(self, request: pb.CountAgentsRequest, context: Context) -> pb.CountAgentsResponse:
        counts = await self._service.count_agents()
        return pb.CountAgentsResponse(
            available=counts.available, busy=counts.busy, away=counts.away, offline=counts.offline
        )

    @handled
    async def UpdateAgent(self, request: pb.UpdateAgentRequest, context: Context) -> pb.UpdateAgentResponse:
        profile = convert.profile(request.display_name, request.skills, request.languages, request.capacity)
        agent = await self._service.update_agent(request.agent_id, profile, request.expected_version)
        return pb.UpdateAgentResponse(agent=convert.agent_message(agent))

    @handled
    async def SetAgentPresence(
        self, request: pb.SetAgentPresenceRequest, context: Context
    ) -> pb.SetAgentPresenceResponse:
        agent = await self._service.set_presence(request.agent_id, convert.presence(request.presence))
        return pb.SetAgentPresenceResponse(agent=convert.agent_message(agent))

    # --- offers ------------------------------------------------------------------------------------------

    @handled
    async def ListOffers(self, request: pb.ListOffersRequest, context: Context) -> pb.ListOffersResponse:
        found, token = await self._service.list_offers(
            request.agent_id, convert.offer_states(request.states), request.page_size, request.page_token
        )
        return pb.ListOffersResponse(offers=[convert.offer_message(o) for o in found], next_page_token=token)

    @handled
    async def AcceptOffer(self, request: pb.AcceptOfferRequest, context: Context) -> pb.AcceptOfferResponse:
        offer = await self._service.accept_offer(request.offer_id, request.agent_id)
        return pb.AcceptOfferResponse(offer=convert.offer_message(offer))

    @handled
    async def DeclineOffer(self, request: pb.DeclineOfferRequest, context: Context) -> pb.DeclineOfferResponse:
        offer = await self._service.decline_offer(request.offer_id, request.agent_id, request.reason)
        return pb.DeclineOfferResponse(offer=convert.offer_message(offer))

    # --- rules -------------------------------------------------------------------------------------------

    @handled
    async def ListRoutingRules(
        self, request: pb.ListRoutingRulesRequest, context: Context
    ) -> pb.ListRoutingRulesResponse:
        found, token = await self._service.list_rules(request.page_size, request.page_token)
        return pb.ListRoutingRulesResponse(rules=[convert.rule_message(r) for r in found], next_page_token=token)

    @handled
    async def CreateRoutingRule(
        self, request: pb.CreateRoutingRuleRequest, context: Context
    ) -> pb.CreateRoutingRuleResponse:
        rule, created = await self._service.create_rule(request.request_id, convert.rule(request.rule, uuid.uuid4()))
        return pb.CreateRoutingRuleResponse(rule=convert.rule_message(rule), created=created)

    @handled
    async def UpdateRoutingRule(
        self, request: pb.UpdateRoutingRuleRequest, context: Context
    ) -> pb.UpdateRoutingRuleResponse:
        rule = await self._service.update_rule(convert.rule(request.rule, rule_key(request.rule.id)))
        return pb.UpdateRoutingRuleResponse(rule=convert.rule_message(rule))

    @handled
    async def DeleteRoutingRule(
        self, request: pb.DeleteRoutingRuleRequest, context: Context
    ) -> pb.DeleteRoutingRuleResponse:
        await self._service.delete_rule(request.rule_id)
        return pb.DeleteRoutingRuleResponse()
