"""gRPC edge of ticketing: protobuf in, domain calls, protobuf out."""

from __future__ import annotations

import asyncio
import logging

import grpc
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import Link, Status, StatusCode
from support.ticketing.v1 import ticketing_service_pb2 as pb
from support.ticketing.v1 import ticketing_service_pb2_grpc as pb_grpc

from services.kit.db import DB_UNAVAILABLE_ERRORS
from services.kit.errors import InvalidArgument
from services.kit.grpc_errors import Context, failure_status, grpc_method, status_message
from services.ticketing import convert
from services.ticketing.service import TicketingService
from services.ticketing.store import TicketFilter

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["TicketingService"].full_name
handled = grpc_method(DB_UNAVAILABLE_ERRORS)
MAX_BATCH_ITEMS = 500
# The span each item of a batch is served in, in its own caller's trace.
ITEM_SPAN = f"/{SERVICE_NAME}/CreateTicket"

log = logging.getLogger(__name__)
tracer = trace.get_tracer(__name__)


class TicketingApi(pb_grpc.TicketingServiceServicer):
    def __init__(self, service: TicketingService) -> None:
        self._service = service

    @handled
    async def CreateTicket(self, request: pb.CreateTicketRequest, context: Context) -> pb.CreateTicketResponse:
        return await self._create(request)

    async def _create(self, request: pb.CreateTicketRequest) -> pb.CreateTicketResponse:
        ticket, created = await self._service.create_ticket(convert.new_ticket(request))
        return pb.CreateTicketResponse(ticket=convert.ticket_message(ticket), created=created)

    @handled
    async def BatchCreateTickets(
        self, request: pb.BatchCreateTicketsRequest, context: Context
    ) -> pb.BatchCreateTicketsResponse:
        if not 1 <= len(request.items) <= MAX_BATCH_ITEMS:
            raise InvalidArgument("batch_size_invalid", f"a batch holds 1 to {MAX_BATCH_ITEMS} items", field="items")
        batch = Link(trace.get_current_span().get_span_context())
        # Together, so that the service's coalescer writes them in as few statements as it can.
        results = await asyncio.gather(*(self._create_item(item, batch) for item in request.items))
        return pb.BatchCreateTicketsResponse(results=results)

    async def _create_item(
        self, item: pb.BatchCreateTicketsRequest.Item, batch: Link
    ) -> pb.BatchCreateTicketsResponse.Result:
        """One item, served as CreateTicket serves a call: in its caller's trace, failing alone."""
        with tracer.start_as_current_span(
            ITEM_SPAN,
            # Without a trace context of its own, the item is served in the batch's trace.
            context=propagate.extract(dict(item.trace_context), context=otel_context.get_current()),
            links=[batch],
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            try:
                response = await self._create(item.request)
            except Exception as exc:
                status = failure_status(exc, DB_UNAVAILABLE_ERRORS)
                if status is None:
                    log.exception("batched create failed")
                    status = status_message(grpc.StatusCode.INTERNAL, "internal", "an unexpected error occurred")
                span.set_attribute("rpc.grpc.status_code", status.code)
                span.set_status(Status(StatusCode.ERROR))
                return pb.BatchCreateTicketsResponse.Result(error=status)
            span.set_attribute("rpc.grpc.status_code", grpc.StatusCode.OK.value[0])
            return pb.BatchCreateTicketsResponse.Result(response=response)

    @handled
    async def GetTicket(self, request: pb.GetTicketRequest, context: Context) -> pb.GetTicketResponse:
        ticket = await self._service.get_ticket(request.ticket_id)
        return pb.GetTicketResponse(ticket=convert.ticket_message(ticket))

    @handled
    async def ListTickets(self, request: pb.ListTicketsRequest, context: Context) -> pb.ListTicketsResponse:
        where = TicketFilter(
            customer_id=request.customer_id,
            assignee_id=request.assignee_id,
            statuses=convert.statuses(request.statuses),
        )
        tickets, token = await self._service.list_tickets(where, request.page_size, request.page_token)
        return pb.ListTicketsResponse(tickets=[convert.ticket_message(t) for t in tickets], next_page_token=token)

    @handled
    async def UpdateTicket(self, request: pb.UpdateTicketRequest, context: Context) -> pb.UpdateTicketResponse:
        ticket = await self._service.update_ticket(
            request.ticket_id,
            convert.actor(request.actor),
            status=convert.optional_status(request.status),
            priority=convert.optional_priority(request.priority),
            resolution_note=request.resolution_note,
            expected_version=request.expected_version,
        )
        return pb.UpdateTicketResponse(ticket=convert.ticket_message(ticket))

    @handled
    async def AddMessage(self, request: pb.AddMessageRequest, context: Context) -> pb.AddMessageResponse:
        message, ticket, created = await self._service.add_message(request.ticket_id, convert.new_message(request))
        return pb.AddMessageResponse(
            message=convert.message_message(message), ticket=convert.ticket_message(ticket), created=created
        )

    @handled
    async def ListMessages(self, request: pb.ListMessagesRequest, context: Context) -> pb.ListMessagesResponse:
        messages, token = await self._service.list_messages(
            request.ticket_id,
            include_internal=request.include_internal,
            requested_size=request.page_size,
            token=request.page_token,
        )
        return pb.ListMessagesResponse(messages=[convert.message_message(m) for m in messages], next_page_token=token)

    @handled
    async def ListTimeline(self, request: pb.ListTimelineRequest, context: Context) -> pb.ListTimelineResponse:
        entries, token = await self._service.timeline(request.ticket_id, request.page_size, request.page_token)
        return pb.ListTimelineResponse(entries=[convert.timeline_message(e) for e in entries], next_page_token=token)

    @handled
    async def RecordCsat(self, request: pb.RecordCsatRequest, context: Context) -> pb.RecordCsatResponse:
        ticket = await self._service.record_csat(
            request.ticket_id, convert.actor(request.actor), request.score, request.comment
        )
        return pb.RecordCsatResponse(ticket=convert.ticket_message(ticket))

    @handled
    async def GetPriorityRules(
        self, request: pb.GetPriorityRulesRequest, context: Context
    ) -> pb.GetPriorityRulesResponse:
        rules = await self._service.priority_rules()
        return pb.GetPriorityRulesResponse(
            rules=[convert.priority_rule_message(c, p) for c, p in sorted(rules.items())]
        )

    @handled
    async def UpdatePriorityRule(
        self, request: pb.UpdatePriorityRuleRequest, context: Context
    ) -> pb.UpdatePriorityRuleResponse:
        category = convert.category(request.rule.category)
        priority = convert.priority(request.rule.priority)
        await self._service.set_priority_rule(category, priority, convert.actor(request.actor))
        return pb.UpdatePriorityRuleResponse(rule=convert.priority_rule_message(category, priority))
