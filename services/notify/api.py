"""gRPC edge of notify."""

from __future__ import annotations

import uuid

from support.notify.v1 import notify_service_pb2 as pb
from support.notify.v1 import notify_service_pb2_grpc as pb_grpc

from services.kit.db import DB_UNAVAILABLE_ERRORS
from services.kit.errors import InvalidArgument
from services.kit.grpc_errors import Context, grpc_method
from services.notify import convert
from services.notify.deliveries.admin import DeliveryAdmin
from services.notify.deliveries.model import Endpoint
from services.notify.inbox import Inbox

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["NotifyService"].full_name
_DB = DB_UNAVAILABLE_ERRORS


class NotifyApi(pb_grpc.NotifyServiceServicer):
    def __init__(self, inbox: Inbox, admin: DeliveryAdmin) -> None:
        self._inbox = inbox
        self._admin = admin

    @grpc_method(_DB)
    async def ListNotifications(
        self, request: pb.ListNotificationsRequest, context: Context
    ) -> pb.ListNotificationsResponse:
        page = await self._inbox.page(
            request.user_id, request.audiences, request.page_size, request.page_token, unread_only=request.unread_only
        )
        return pb.ListNotificationsResponse(
            notifications=[convert.notification_message(n) for n in page.items],
            next_page_token=page.next_token,
            unread_count=page.unread,
        )

    @grpc_method(_DB)
    async def ReplayNotifications(
        self, request: pb.ReplayNotificationsRequest, context: Context
    ) -> pb.ReplayNotificationsResponse:
        items = await self._inbox.replay(request.user_id, request.audiences, request.after_id, request.limit)
        return pb.ReplayNotificationsResponse(notifications=[convert.notification_message(n) for n in items])

    @grpc_method(_DB)
    async def MarkNotificationsRead(
        self, request: pb.MarkNotificationsReadRequest, context: Context
    ) -> pb.MarkNotificationsReadResponse:
        marked = await self._inbox.mark_read(request.user_id, request.audiences, request.notification_ids, request.all)
        return pb.MarkNotificationsReadResponse(marked_count=marked)

    @grpc_method(_DB)
    async def GetPreferences(self, request: pb.GetPreferencesRequest, context: Context) -> pb.GetPreferencesResponse:
        return pb.GetPreferencesResponse(
            preferences=convert.preferences_message(await self._inbox.preferences(request.user_id))
        )

    @grpc_method(_DB)
    async def UpdatePreferences(
        self, request: pb.UpdatePreferencesRequest, context: Context
    ) -> pb.UpdatePreferencesResponse:
        saved = await self._inbox.save_preferences(convert.preferences_from(request.preferences))
        return pb.UpdatePreferencesResponse(preferences=convert.preferences_message(saved))

    @grpc_method(_DB)
    async def DisownAlert(self, request: pb.DisownAlertRequest, context: Context) -> pb.DisownAlertResponse:
        alert = await self._inbox.disown_alert(request.user_id, request.notification_id)
        return pb.DisownAlertResponse(
            notification=convert.notification_message(alert.notification), alert_id=alert.alert_id, locale=alert.locale
        )

    @grpc_method(_DB)
    async def CreateWebhookEndpoint(
        self, request: pb.CreateWebhookEndpointRequest, context: Context
    ) -> pb.CreateWebhookEndpointResponse:
        e = request.endpoint
        endpoint, created = await self._admin.create_endpoint(
            request.request_id,
            Endpoint(
                id=uuid.uuid4(),
                subscriber=e.subscriber,
                url=e.url,
                secret="",
                event_types=tuple(e.event_types),
                enabled=e.enabled,
                description=e.description,
            ),
        )
        return pb.CreateWebhookEndpointResponse(
            endpoint=convert.endpoint_message(endpoint, with_secret=True), created=created
        )

    @grpc_method(_DB)
    async def ListWebhookEndpoints(
        self, request: pb.ListWebhookEndpointsRequest, context: Context
    ) -> pb.ListWebhookEndpointsResponse:
        items, token = await self._admin.endpoints(request.page_size, request.page_token)
        return pb.ListWebhookEndpointsResponse(
            endpoints=[convert.endpoint_message(e) for e in items], next_page_token=token
        )

    @grpc_method(_DB)
    async def GetWebhookEndpoint(
        self, request: pb.GetWebhookEndpointRequest, context: Context
    ) -> pb.GetWebhookEndpointResponse:
        return pb.GetWebhookEndpointResponse(
            endpoint=convert.endpoint_message(await self._admin.endpoint(request.endpoint_id))
        )

    @grpc_method(_DB)
    async def UpdateWebhookEndpoint(
        self, request: pb.UpdateWebhookEndpointRequest, context: Context
    ) -> pb.UpdateWebhookEndpointResponse:
        e = request.endpoint
        try:
            endpoint_id = uuid.UUID(e.id)
        except ValueError:
            raise InvalidArgument("invalid_argument", "endpoint.id: not an id", field="endpoint.id") from None
        changes = Endpoint(
            id=endpoint_id,
            subscriber=e.subscriber,
            url=e.url,
            secret="",
            event_types=tuple(e.event_types),
            enabled=e.enabled,
            description=e.description,
        )
        updated = await self._admin.update_endpoint(changes, request.expected_version)
        return pb.UpdateWebhookEndpointResponse(endpoint=convert.endpoint_message(updated))

    @grpc_method(_DB)
    async def DeleteWebhookEndpoint(
        self, request: pb.DeleteWebhookEndpointRequest, context: Context
    ) -> pb.DeleteWebhookEndpointResponse:
        await self._admin.delete_endpoint(request.endpoint_id)
        return pb.DeleteWebhookEndpointResponse()

    @grpc_method(_DB)
    async def ListDeliveries(self, request: pb.ListDeliveriesRequest, context: Context) -> pb.ListDeliveriesResponse:
        items, token = await self._admin.deliveries(
            request.page_size,
            request.page_token,
            status=convert.delivery_status(request.status),
            channel=convert.delivery_channel(request.channel),
            endpoint_id=request.endpoint_id,
        )
        return pb.ListDeliveriesResponse(deliveries=[convert.delivery_message(d) for d in items], next_page_token=token)

    @grpc_method(_DB)
    async def GetDelivery(self, request: pb.GetDeliveryRequest, context: Context) -> pb.GetDeliveryResponse:
        return pb.GetDeliveryResponse(
            delivery=convert.delivery_message(await self._admin.delivery(request.delivery_id))
        )

    @grpc_method(_DB)
    async def ReplayDelivery(self, request: pb.ReplayDeliveryRequest, context: Context) -> pb.ReplayDeliveryResponse:
        return pb.ReplayDeliveryResponse(
            delivery=convert.delivery_message(await self._admin.replay(request.delivery_id))
        )
