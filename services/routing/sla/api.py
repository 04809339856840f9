"""gRPC edge of SLA: protobuf in, use cases, protobuf out."""

from __future__ import annotations

import grpc
from support.routing.v1 import sla_service_pb2 as pb
from support.routing.v1 import sla_service_pb2_grpc as pb_grpc

from services.kit.db import DB_UNAVAILABLE_ERRORS
from services.kit.grpc_errors import Context, grpc_method
from services.kit.service import Runtime
from services.routing.sla import convert
from services.routing.sla.service import SlaAdmin

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["SlaService"].full_name
handled = grpc_method(DB_UNAVAILABLE_ERRORS)


class SlaApi(pb_grpc.SlaServiceServicer):
    def __init__(self, admin: SlaAdmin) -> None:
        self._admin = admin

    @handled
    async def ListSlaPolicies(self, request: pb.ListSlaPoliciesRequest, context: Context) -> pb.ListSlaPoliciesResponse:
        policies, token = await self._admin.list_policies(request.page_size, request.page_token)
        return pb.ListSlaPoliciesResponse(policies=[convert.policy_message(p) for p in policies], next_page_token=token)

    @handled
    async def CreateSlaPolicy(self, request: pb.CreateSlaPolicyRequest, context: Context) -> pb.CreateSlaPolicyResponse:
        policy, created = await self._admin.create_policy(request.request_id, convert.policy_spec(request.policy))
        return pb.CreateSlaPolicyResponse(policy=convert.policy_message(policy), created=created)

    @handled
    async def UpdateSlaPolicy(self, request: pb.UpdateSlaPolicyRequest, context: Context) -> pb.UpdateSlaPolicyResponse:
        policy = await self._admin.update_policy(
            request.policy.id, request.policy.version, convert.policy_spec(request.policy)
        )
        return pb.UpdateSlaPolicyResponse(policy=convert.policy_message(policy))

    @handled
    async def DeleteSlaPolicy(self, request: pb.DeleteSlaPolicyRequest, context: Context) -> pb.DeleteSlaPolicyResponse:
        await self._admin.delete_policy(request.policy_id)
        return pb.DeleteSlaPolicyResponse()

    @handled
    async def ListCalendars(self, request: pb.ListCalendarsRequest, context: Context) -> pb.ListCalendarsResponse:
        calendars, token = await self._admin.list_calendars(request.page_size, request.page_token)
        return pb.ListCalendarsResponse(
            calendars=[convert.calendar_message(c) for c in calendars], next_page_token=token
        )

    @handled
    async def CreateCalendar(self, request: pb.CreateCalendarRequest, context: Context) -> pb.CreateCalendarResponse:
        calendar, created = await self._admin.create_calendar(
            request.request_id, convert.calendar_spec(request.calendar)
        )
        return pb.CreateCalendarResponse(calendar=convert.calendar_message(calendar), created=created)

    @handled
    async def UpdateCalendar(self, request: pb.UpdateCalendarRequest, context: Context) -> pb.UpdateCalendarResponse:
        calendar = await self._admin.update_calendar(
            request.calendar.id, request.calendar.version, convert.calendar_spec(request.calendar)
        )
        return pb.UpdateCalendarResponse(calendar=convert.calendar_message(calendar))

    @handled
    async def GetTicketSla(self, request: pb.GetTicketSlaRequest, context: Context) -> pb.GetTicketSlaResponse:
        clocks = await self._admin.ticket_clocks(request.ticket_id)
        return pb.GetTicketSlaResponse(clocks=[convert.clock_message(c) for c in clocks])

    @handled
    async def GetSlaStats(self, request: pb.GetSlaStatsRequest, context: Context) -> pb.GetSlaStatsResponse:
        start, end = convert.stats_period(request)
        stats = await self._admin.stats(request.policy_id, request.queue, start, end)
        return pb.GetSlaStatsResponse(stats=[convert.stats_message(s) for s in stats])


def register(server: grpc.aio.Server, runtime: Runtime) -> None:
    """Add the SlaService servicer to routing's gRPC server."""
    pb_grpc.add_SlaServiceServicer_to_server(SlaApi(SlaAdmin(runtime.pool)), server)
