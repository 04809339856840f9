"""gRPC edge of notify."""

from __future__ import annotations

from support.notify.v1 import notify_service_pb2 as pb
from support.notify.v1 import notify_service_pb2_grpc as pb_grpc

from services.kit.db import DB_UNAVAILABLE_ERRORS
from services.kit.errors import InvalidArgument
from services.kit.grpc_errors import Context, grpc_method
from services.notify import convert
from services.notify.service import NotifyQueries

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["NotifyService"].full_name


class NotifyApi(pb_grpc.NotifyServiceServicer):
    def __init__(self, queries: NotifyQueries) -> None:
        self._queries = queries

    @grpc_method(DB_UNAVAILABLE_ERRORS)
    async def ListNotifications(
        self, request: pb.ListNotificationsRequest, context: Context
    ) -> pb.ListNotificationsResponse:
        if not request.user_id:
            raise InvalidArgument("invalid_argument", "user_id: required", field="user_id")
        items, next_token = await self._queries.inbox(request.user_id, request.page_size, request.page_token)
        return pb.ListNotificationsResponse(
            notifications=[convert.notification_message(n) for n in items], next_page_token=next_token
        )
