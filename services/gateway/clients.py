"""gRPC channels to ticketing, routing and notify, and the calls routes make through them.

Every call carries a deadline (what is left of the HTTP request's ``request_timeout_s``, see ``deadline``)
and ``wait_for_ready=False``, so a peer that is down fails at once and a slow one fails at the deadline;
both become 503 ``dependency_unavailable``.
Failures reach routes as ``ProblemError``; protobuf never leaves this module and ``mapping``.
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

import grpc
import grpc.aio
from grpc_health.v1 import health_pb2, health_pb2_grpc
from support.notify.v1 import notify_service_pb2, notify_service_pb2_grpc, webhook_pb2
from support.routing.v1 import routing_service_pb2, routing_service_pb2_grpc, sla_service_pb2, sla_service_pb2_grpc
from support.ticketing.v1 import (
    help_service_pb2,
    help_service_pb2_grpc,
    ticketing_service_pb2,
    ticketing_service_pb2_grpc,
)

from services.gateway import deadline, mapping, mapping_config, mapping_notify, schemas, schemas_config, schemas_notify
from services.gateway.batched_creates import BatchedCreates
from services.gateway.grpc_errors import problem_from_rpc_error
from services.gateway.principal import Principal
from services.gateway.problems import ProblemError, dependency_unavailable
from services.gateway.rpc_tracing import TracedChannel
from services.gateway.schemas_ops import OpsAgentsOut
from services.gateway.settings import GatewaySettings

TICKETING = "ticketing"
ROUTING = "routing"
NOTIFY = "notify"

_CHANNEL_OPTIONS = (
    ("grpc.primary_user_agent", "supportdesk-gateway"),
    # A channel backs off between reconnect attempts and, without waiting for ready, fails calls until the
    # next attempt; capping the back-off lets the gateway notice a restarted peer within seconds, not minutes.
    ("grpc.max_reconnect_backoff_ms", 5000),
)


class ServiceClients:
    """Owns one channel per peer service. Create it inside the running event loop (app lifespan)."""

    def __init__(
        self,
        *,
        ticketing_addr: str,
        routing_addr: str,
        notify_addr: str,
        timeout_s: float,
        readiness_timeout_s: float,
        retry_after_s: int,
        create_calls_in_flight: int = 4,
        create_batch_max: int = 100,
    ) -> None:
        self._timeout_s = timeout_s
        self._readiness_timeout_s = readiness_timeout_s
        self._retry_after_s = retry_after_s
        self._channels: dict[str, Any] = {
            name: grpc.aio.insecure_channel(address, options=_CHANNEL_OPTIONS)
            for name, address in ((TICKETING, ticketing_addr), (ROUTING, routing_addr), (NOTIFY, notify_addr))
        }
        # The stubs' calls send the request's trace context along, so one trace spans every hop; health
        # probes (readiness) are not traced.
        # TracedChannel stands in for the channel it wraps (the stubs only ask it for multi-callables).
        traced = {name: cast(grpc.aio.Channel, TracedChannel(channel)) for name, channel in self._channels.items()}
        self.ticketing: ticketing_service_pb2_grpc.TicketingServiceAsyncStub = (
            ticketing_service_pb2_grpc.TicketingServiceStub(traced[TICKETING])
        )
        # Creates arriving together share a call (ADR 0069).
        self._creates = BatchedCreates(self.ticketing, concurrency=create_calls_in_flight, max_batch=create_batch_max)
        # The help centre is part of ticketing and shares its channel.
        self.help: help_service_pb2_grpc.HelpServiceAsyncStub = help_service_pb2_grpc.HelpServiceStub(traced[TICKETING])
        self.routing: routing_service_pb2_grpc.RoutingServiceAsyncStub = routing_service_pb2_grpc.RoutingServiceStub(
            traced[ROUTING]
        )
        # SLA administration is part of routing and shares its channel.
        self.sla: sla_service_pb2_grpc.SlaServiceAsyncStub = sla_service_pb2_grpc.SlaServiceStub(traced[ROUTING])
        self.notify: notify_service_pb2_grpc.NotifyServiceAsyncStub = notify_service_pb2_grpc.NotifyServiceStub(
            traced[NOTIFY]
        )
        self._health: dict[str, Any] = {
            name: health_pb2_grpc.HealthStub(channel) for name, channel in self._channels.items()
        }

    @classmethod
    def from_settings(cls, settings: GatewaySettings) -> ServiceClients:
        return cls(
            ticketing_addr=settings.ticketing_addr,
            routing_addr=settings.routing_addr,
            notify_addr=settings.notify_addr,
            timeout_s=settings.request_timeout_s,
            readiness_timeout_s=settings.readiness_timeout_s,
            retry_after_s=settings.retry_after_s,
            create_calls_in_flight=settings.create_calls_in_flight,
            create_batch_max=settings.create_batch_max,
        )

    async def close(self) -> None:
        await asyncio.gather(*(channel.close() for channel in self._channels.values()))

    async def _call(self, service: str, method: Any, request: Any) -> Any:
        timeout_s = deadline.remaining_s(self._timeout_s)
        if timeout_s <= 0:
            # Earlier calls spent the request's budget: the caller has stopped waiting.
            raise dependency_unavailable(self._retry_after_s)
        try:
            return await method(request, timeout=timeout_s, wait_for_ready=False)
        except grpc.aio.AioRpcError as exc:
            raise problem_from_rpc_error(exc, retry_after_s=self._retry_after_s, service=service) from exc
        except grpc.aio.UsageError as exc:
            # The channel was closed under the call: the gateway is shutting down.
            raise dependency_unavailable(self._retry_after_s) from exc

    async def create_ticket(
        self, body: schemas.CreateTicketIn, *, customer_id: str, request_id: str
    ) -> tuple[schemas.TicketOut, bool]:
        """The ticket and whether this call created it (False: the request_id was seen before)."""
        request = mapping.create_ticket_request(body, customer_id=customer_id, request_id=request_id)
        response: ticketing_service_pb2.CreateTicketResponse = await self._call(TICKETING, self._creates, request)
        return mapping.ticket_out(response.ticket), response.created

    async def get_ticket(self, ticket_id: str) -> schemas.TicketOut:
        response: ticketing_service_pb2.GetTicketResponse = await self._call(
            TICKETING, self.ticketing.GetTicket, ticketing_service_pb2.GetTicketRequest(ticket_id=ticket_id)
        )
        return mapping.ticket_out(response.ticket)

    async def list_tickets(self, request: ticketing_service_pb2.ListTicketsRequest) -> schemas.TicketPage:
        response: ticketing_service_pb2.ListTicketsResponse = await self._call(
            TICKETING, self.ticketing.ListTickets, request
        )
        return mapping.ticket_page(response)

    async def update_ticket(
        self, ticket_id: str, body: schemas.UpdateTicketIn, principal: Principal
    ) -> schemas.TicketOut:
        response: ticketing_service_pb2.UpdateTicketResponse = await self._call(
            TICKETING, self.ticketing.UpdateTicket, mapping.update_ticket_request(ticket_id, body, principal)
        )
        return mapping.ticket_out(response.ticket)

    async def add_message(
        self, ticket_id: str, body: schemas.MessageIn, principal: Principal, *, request_id: str
    ) -> tuple[schemas.MessageOut, bool]:
        """The message and whether this call added it (False: the request_id was seen before)."""
        response: ticketing_service_pb2.AddMessageResponse = await self._call(
            TICKETING,
            self.ticketing.AddMessage,
            mapping.add_message_request(ticket_id, body, principal, request_id=request_id),
        )
        return mapping.message_out(response.message), response.created

    async def list_messages(
        self, ticket_id: str, *, include_internal: bool, page_size: int | None, page_token: str | None
    ) -> schemas.MessagePage:
        request = ticketing_service_pb2.ListMessagesRequest(
            ticket_id=ticket_id,
            include_internal=include_internal,
            page_size=page_size or 0,
            page_token=page_token or "",
        )
        response: ticketing_service_pb2.ListMessagesResponse = await self._call(
            TICKETING, self.ticketing.ListMessages, request
        )
        return mapping.message_page(response)

    async def list_timeline(
        self, ticket_id: str, *, page_size: int | None, page_token: str | None
    ) -> schemas.TimelinePage:
        request = ticketing_service_pb2.ListTimelineRequest(
            ticket_id=ticket_id, page_size=page_size or 0, page_token=page_token or ""
        )
        response: ticketing_service_pb2.ListTimelineResponse = await self._call(
            TICKETING, self.ticketing.ListTimeline, request
        )
        return mapping.timeline_page(response)

    async def record_csat(self, ticket_id: str, body: schemas.CsatIn, principal: Principal) -> schemas.TicketOut:
        request = ticketing_service_pb2.RecordCsatRequest(
            ticket_id=ticket_id, actor=mapping.actor_in(principal), score=body.score, comment=body.comment
        )
        response: ticketing_service_pb2.RecordCsatResponse = await self._call(
            TICKETING, self.ticketing.RecordCsat, request
        )
        return mapping.ticket_out(response.ticket)

    async def priority_rules(self) -> list[schemas.PriorityRuleOut]:
        response: ticketing_service_pb2.GetPriorityRulesResponse = await self._call(
            TICKETING, self.ticketing.GetPriorityRules, ticketing_service_pb2.GetPriorityRulesRequest()
        )
        return [mapping.priority_rule_out(r) for r in response.rules]

    async def set_priority_rule(
        self, category: schemas.Category, priority: schemas.Priority, principal: Principal
    ) -> schemas.PriorityRuleOut:
        request = ticketing_service_pb2.UpdatePriorityRuleRequest(
            rule=mapping.priority_rule_in(category, priority), actor=mapping.actor_in(principal)
        )
        response: ticketing_service_pb2.UpdatePriorityRuleResponse = await self._call(
            TICKETING, self.ticketing.UpdatePriorityRule, request
        )
        return mapping.priority_rule_out(response.rule)

    async def get_ticket_routing(self, ticket_id: str) -> schemas.QueueEntryOut:
        response: routing_service_pb2.GetTicketRoutingResponse = await self._call(
            ROUTING,
            self.routing.GetTicketRouting,
            routing_service_pb2.GetTicketRoutingRequest(ticket_id=ticket_id),
        )
        return mapping.queue_entry_out(response.entry)

    async def list_queue_stats(self, *, page_size: int | None, page_token: str | None) -> schemas.QueueStatsPage:
        response: routing_service_pb2.ListQueueStatsResponse = await self._call(
            ROUTING, self.routing.ListQueueStats, mapping.list_queue_stats_request(page_size, page_token)
        )
        return mapping.queue_stats_page(response)

    async def count_agents(self) -> OpsAgentsOut:
        response: routing_service_pb2.CountAgentsResponse = await self._call(
            ROUTING, self.routing.CountAgents, routing_service_pb2.CountAgentsRequest()
        )
        return mapping.agent_counts(response)

    async def list_notifications(
        self, principal: Principal, *, page_size: int | None, page_token: str | None, unread_only: bool
    ) -> schemas.NotificationPage:
        response: notify_service_pb2.ListNotificationsResponse = await self._call(
            NOTIFY,
            self.notify.ListNotifications,
            mapping.list_notifications_request(principal, page_size, page_token, unread_only),
        )
        return mapping.notification_page(response)

    async def replay_notifications(
        self, principal: Principal, after_id: str, *, limit: int
    ) -> list[schemas.NotificationOut]:
        request = notify_service_pb2.ReplayNotificationsRequest(
            user_id=principal.subject, audiences=mapping.audiences_of(principal), after_id=after_id, limit=limit
        )
        response: notify_service_pb2.ReplayNotificationsResponse = await self._call(
            NOTIFY, self.notify.ReplayNotifications, request
        )
        return [mapping.notification_out(n) for n in response.notifications]

    async def mark_notifications_read(self, principal: Principal, ids: list[str], everything: bool) -> int:
        request = notify_service_pb2.MarkNotificationsReadRequest(
            user_id=principal.subject, audiences=mapping.audiences_of(principal), notification_ids=ids, all=everything
        )
        response: notify_service_pb2.MarkNotificationsReadResponse = await self._call(
            NOTIFY, self.notify.MarkNotificationsRead, request
        )
        return response.marked_count

    async def get_preferences(self, user_id: str) -> schemas_notify.PreferencesOut:
        request = notify_service_pb2.GetPreferencesRequest(user_id=user_id)
        response: notify_service_pb2.GetPreferencesResponse = await self._call(
            NOTIFY, self.notify.GetPreferences, request
        )
        return mapping_notify.preferences_out(response.preferences)

    async def update_preferences(
        self, user_id: str, body: schemas_notify.PreferencesIn
    ) -> schemas_notify.PreferencesOut:
        request = notify_service_pb2.UpdatePreferencesRequest(preferences=mapping_notify.preferences_in(user_id, body))
        response: notify_service_pb2.UpdatePreferencesResponse = await self._call(
            NOTIFY, self.notify.UpdatePreferences, request
        )
        return mapping_notify.preferences_out(response.preferences)

    async def disown_alert(self, customer_id: str, notification_id: str) -> tuple[schemas.TicketOut, bool]:
        """Open (once per alert) an urgent suspicious-activity ticket for an alert the customer disowns."""
        disowned: notify_service_pb2.DisownAlertResponse = await self._call(
            NOTIFY,
            self.notify.DisownAlert,
            notify_service_pb2.DisownAlertRequest(user_id=customer_id, notification_id=notification_id),
        )
        request = mapping.disowned_alert_ticket_request(disowned, customer_id)
        response: ticketing_service_pb2.CreateTicketResponse = await self._call(
            TICKETING, self.ticketing.CreateTicket, request
        )
        return mapping.ticket_out(response.ticket), response.created

    async def create_webhook(
        self, body: schemas_notify.WebhookIn, *, request_id: str
    ) -> tuple[schemas_notify.WebhookOut, bool]:
        request = notify_service_pb2.CreateWebhookEndpointRequest(
            request_id=request_id, endpoint=mapping_notify.webhook_in(body)
        )
        response: notify_service_pb2.CreateWebhookEndpointResponse = await self._call(
            NOTIFY, self.notify.CreateWebhookEndpoint, request
        )
        return mapping_notify.webhook_out(response.endpoint), response.created

    async def list_webhooks(self, *, page_size: int | None, page_token: str | None) -> schemas_notify.WebhookPage:
        request = notify_service_pb2.ListWebhookEndpointsRequest(page_size=page_size or 0, page_token=page_token or "")
        response: notify_service_pb2.ListWebhookEndpointsResponse = await self._call(
            NOTIFY, self.notify.ListWebhookEndpoints, request
        )
        return schemas_notify.WebhookPage(
            webhooks=[mapping_notify.webhook_out(e) for e in response.endpoints],
            next_page_token=response.next_page_token or None,
        )

    async def get_webhook(self, endpoint_id: str) -> schemas_notify.WebhookOut:
        request = notify_service_pb2.GetWebhookEndpointRequest(endpoint_id=endpoint_id)
        response: notify_service_pb2.GetWebhookEndpointResponse = await self._call(
            NOTIFY, self.notify.GetWebhookEndpoint, request
        )
        return mapping_notify.webhook_out(response.endpoint)

    async def update_webhook(self, endpoint_id: str, body: schemas_notify.WebhookUpdateIn) -> schemas_notify.WebhookOut:
        request = notify_service_pb2.UpdateWebhookEndpointRequest(
            endpoint=mapping_notify.webhook_in(body, endpoint_id), expected_version=body.expected_version or 0
        )
        response: notify_service_pb2.UpdateWebhookEndpointResponse = await self._call(
            NOTIFY, self.notify.UpdateWebhookEndpoint, request
        )
        return mapping_notify.webhook_out(response.endpoint)

    async def delete_webhook(self, endpoint_id: str) -> None:
        request = notify_service_pb2.DeleteWebhookEndpointRequest(endpoint_id=endpoint_id)
        await self._call(NOTIFY, self.notify.DeleteWebhookEndpoint, request)

    async def list_deliveries(
        self,
        *,
        page_size: int | None,
        page_token: str | None,
        status: schemas_notify.DeliveryStatus | None,
        channel: schemas_notify.DeliveryChannel | None,
        webhook_id: str | None,
    ) -> schemas_notify.DeliveryPage:
        request = notify_service_pb2.ListDeliveriesRequest(
            page_size=page_size or 0,
            page_token=page_token or "",
            status=mapping_notify.DELIVERY_STATUS.to_proto[status]
            if status
            else webhook_pb2.DELIVERY_STATUS_UNSPECIFIED,
            channel=(
                mapping_notify.DELIVERY_CHANNEL.to_proto[channel]
                if channel
                else webhook_pb2.DELIVERY_CHANNEL_UNSPECIFIED
            ),
            endpoint_id=webhook_id or "",
        )
        response: notify_service_pb2.ListDeliveriesResponse = await self._call(
            NOTIFY, self.notify.ListDeliveries, request
        )
        return schemas_notify.DeliveryPage(
            deliveries=[mapping_notify.delivery_out(d) for d in response.deliveries],
            next_page_token=response.next_page_token or None,
        )

    async def get_delivery(self, delivery_id: str) -> schemas_notify.DeliveryOut:
        request = notify_service_pb2.GetDeliveryRequest(delivery_id=delivery_id)
        response: notify_service_pb2.GetDeliveryResponse = await self._call(NOTIFY, self.notify.GetDelivery, request)
        return mapping_notify.delivery_out(response.delivery)

    async def replay_delivery(self, delivery_id: str) -> schemas_notify.DeliveryOut:
        request = notify_service_pb2.ReplayDeliveryRequest(delivery_id=delivery_id)
        response: notify_service_pb2.ReplayDeliveryResponse = await self._call(
            NOTIFY, self.notify.ReplayDelivery, request
        )
        return mapping_notify.delivery_out(response.delivery)

    async def search_help_articles(
        self,
        *,
        query: str,
        locale: str | None,
        category: schemas.Category | None,
        page_size: int | None,
        page_token: str | None,
    ) -> schemas.HelpArticlePage:
        response: help_service_pb2.SearchArticlesResponse = await self._call(
            TICKETING,
            self.help.SearchArticles,
            mapping.search_help_articles_request(query, locale, category, page_size, page_token),
        )
        return mapping.help_search_page(response)

    async def list_help_articles(
        self,
        *,
        locale: str | None,
        category: schemas.Category | None,
        include_unpublished: bool,
        page_size: int | None,
        page_token: str | None,
    ) -> schemas.HelpArticlePage:
        response: help_service_pb2.ListArticlesResponse = await self._call(
            TICKETING,
            self.help.ListArticles,
            mapping.list_help_articles_request(locale, category, include_unpublished, page_size, page_token),
        )
        return mapping.help_list_page(response)

    async def get_help_article(self, article_id: str) -> schemas.HelpArticleOut:
        response: help_service_pb2.GetArticleResponse = await self._call(
            TICKETING, self.help.GetArticle, help_service_pb2.GetArticleRequest(article_id=article_id)
        )
        return mapping.help_article_out(response.article)

    async def suggest_help_articles(self, body: schemas.HelpSuggestionsIn) -> schemas.HelpSuggestionsOut:
        response: help_service_pb2.SuggestArticlesResponse = await self._call(
            TICKETING, self.help.SuggestArticles, mapping.suggest_help_articles_request(body)
        )
        return mapping.help_suggestions_out(response)

    async def create_help_article(
        self, body: schemas.HelpArticleIn, *, request_id: str
    ) -> tuple[schemas.HelpArticleOut, bool]:
        """The article and whether this call created it (False: the request_id was seen before)."""
        response: help_service_pb2.CreateArticleResponse = await self._call(
            TICKETING, self.help.CreateArticle, mapping.create_help_article_request(body, request_id=request_id)
        )
        return mapping.help_article_out(response.article), response.created

    async def update_help_article(self, article_id: str, body: schemas.HelpArticleReplaceIn) -> schemas.HelpArticleOut:
        response: help_service_pb2.UpdateArticleResponse = await self._call(
            TICKETING, self.help.UpdateArticle, mapping.update_help_article_request(article_id, body)
        )
        return mapping.help_article_out(response.article)

    async def list_help_search_gaps(
        self, *, locale: str | None, page_size: int | None, page_token: str | None
    ) -> schemas.SearchGapPage:
        response: help_service_pb2.ListSearchGapsResponse = await self._call(
            TICKETING, self.help.ListSearchGaps, mapping.list_search_gaps_request(locale, page_size, page_token)
        )
        return mapping.search_gap_page(response)

    async def readiness(self) -> dict[str, str]:
        """Each peer's gRPC health (service ""): ``serving``, ``not_serving``, ... or ``unavailable``."""
        names = list(self._health)
        statuses = await asyncio.gather(*(self._check(self._health[name]) for name in names))
        return dict(zip(names, statuses, strict=True))

    async def _check(self, stub: Any) -> str:
        try:
            response = await stub.Check(
                health_pb2.HealthCheckRequest(service=""),
                timeout=self._readiness_timeout_s,
                wait_for_ready=False,
            )
        except (grpc.aio.AioRpcError, grpc.aio.UsageError):
            return "unavailable"
        name: str = health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
        return name.lower()

    async def create_agent(self, body: schemas.CreateAgentIn, *, request_id: str) -> tuple[schemas.AgentOut, bool]:
        response: routing_service_pb2.CreateAgentResponse = await self._call(
            ROUTING, self.routing.CreateAgent, mapping.create_agent_request(body, request_id=request_id)
        )
        return mapping.agent_out(response.agent), response.created

    async def get_agent(self, agent_id: str) -> schemas.AgentOut:
        response: routing_service_pb2.GetAgentResponse = await self._call(
            ROUTING, self.routing.GetAgent, routing_service_pb2.GetAgentRequest(agent_id=agent_id)
        )
        return mapping.agent_out(response.agent)

    async def list_agents(
        self,
        *,
        presences: list[schemas.Presence],
        skill: str | None,
        page_size: int | None,
        page_token: str | None,
    ) -> schemas.AgentPage:
        request = routing_service_pb2.ListAgentsRequest(
            presences=[mapping.PRESENCE.to_proto[p] for p in presences],
            skill=skill or "",
            page_size=page_size or 0,
            page_token=page_token or "",
        )
        response: routing_service_pb2.ListAgentsResponse = await self._call(ROUTING, self.routing.ListAgents, request)
        return mapping.agent_page(response)

    async def update_agent(self, agent_id: str, body: schemas.UpdateAgentIn) -> schemas.AgentOut:
        response: routing_service_pb2.UpdateAgentResponse = await self._call(
            ROUTING, self.routing.UpdateAgent, mapping.update_agent_request(agent_id, body)
        )
        return mapping.agent_out(response.agent)

    async def set_presence(self, agent_id: str, presence: schemas.Presence) -> schemas.AgentOut:
        request = routing_service_pb2.SetAgentPresenceRequest(
            agent_id=agent_id, presence=mapping.PRESENCE.to_proto[presence]
        )
        response: routing_service_pb2.SetAgentPresenceResponse = await self._call(
            ROUTING, self.routing.SetAgentPresence, request
        )
        return mapping.agent_out(response.agent)

    async def list_offers(
        self, agent_id: str, *, states: list[schemas.OfferState], page_size: int | None, page_token: str | None
    ) -> schemas.OfferPage:
        request = routing_service_pb2.ListOffersRequest(
            agent_id=agent_id,
            states=[mapping.OFFER_STATE.to_proto[s] for s in states],
            page_size=page_size or 0,
            page_token=page_token or "",
        )
        response: routing_service_pb2.ListOffersResponse = await self._call(ROUTING, self.routing.ListOffers, request)
        return mapping.offer_page(response)

    async def accept_offer(self, offer_id: str, agent_id: str) -> schemas.OfferOut:
        response: routing_service_pb2.AcceptOfferResponse = await self._call(
            ROUTING,
            self.routing.AcceptOffer,
            routing_service_pb2.AcceptOfferRequest(offer_id=offer_id, agent_id=agent_id),
        )
        return mapping.offer_out(response.offer)

    async def decline_offer(self, offer_id: str, agent_id: str, reason: str) -> schemas.OfferOut:
        request = routing_service_pb2.DeclineOfferRequest(offer_id=offer_id, agent_id=agent_id, reason=reason)
        response: routing_service_pb2.DeclineOfferResponse = await self._call(
            ROUTING, self.routing.DeclineOffer, request
        )
        return mapping.offer_out(response.offer)

    async def transfer_ticket(self, ticket_id: str, body: schemas.TransferIn, by: str) -> schemas.QueueEntryOut:
        request = routing_service_pb2.TransferTicketRequest(
            ticket_id=ticket_id,
            to_agent_id=body.to_agent_id or "",
            to_queue=body.to_queue or "",
            by=by,
            reason=body.reason,
        )
        response: routing_service_pb2.TransferTicketResponse = await self._call(
            ROUTING, self.routing.TransferTicket, request
        )
        return mapping.queue_entry_out(response.entry)

    # --- routing and SLA configuration -------------------------------------------------------------------------
    # Routing has no single-item reads for configuration; one is found by walking the list, which holds tens of
    # rows (rules, queues, policies, calendars), never thousands.

    async def list_routing_rules(
        self, *, page_size: int | None, page_token: str | None
    ) -> schemas_config.RoutingRulePage:
        request = routing_service_pb2.ListRoutingRulesRequest(page_size=page_size or 0, page_token=page_token or "")
        response: routing_service_pb2.ListRoutingRulesResponse = await self._call(
            ROUTING, self.routing.ListRoutingRules, request
        )
        return schemas_config.RoutingRulePage(
            rules=[mapping_config.routing_rule_out(r) for r in response.rules],
            next_page_token=response.next_page_token or None,
        )

    async def get_routing_rule(self, rule_id: str) -> schemas_config.RoutingRuleOut:
        token: str | None = None
        while True:
            page = await self.list_routing_rules(page_size=schemas.MAX_PAGE_SIZE, page_token=token)
            for rule in page.rules:
                if rule.id == rule_id:
                    return rule
            if page.next_page_token is None:
                raise ProblemError(404, "rule_not_found", "Routing rule not found.")
            token = page.next_page_token

    async def create_routing_rule(
        self, body: schemas_config.RoutingRuleIn, *, request_id: str
    ) -> tuple[schemas_config.RoutingRuleOut, bool]:
        request = routing_service_pb2.CreateRoutingRuleRequest(
            request_id=request_id, rule=mapping_config.routing_rule_in(body)
        )
        response: routing_service_pb2.CreateRoutingRuleResponse = await self._call(
            ROUTING, self.routing.CreateRoutingRule, request
        )
        return mapping_config.routing_rule_out(response.rule), response.created

    async def update_routing_rule(
        self, rule_id: str, body: schemas_config.RoutingRuleReplaceIn
    ) -> schemas_config.RoutingRuleOut:
        rule = mapping_config.routing_rule_in(body, rule_id=rule_id, version=body.expected_version or 0)
        response: routing_service_pb2.UpdateRoutingRuleResponse = await self._call(
            ROUTING, self.routing.UpdateRoutingRule, routing_service_pb2.UpdateRoutingRuleRequest(rule=rule)
        )
        return mapping_config.routing_rule_out(response.rule)

    async def delete_routing_rule(self, rule_id: str) -> None:
        await self._call(
            ROUTING, self.routing.DeleteRoutingRule, routing_service_pb2.DeleteRoutingRuleRequest(rule_id=rule_id)
        )

    async def get_queue_settings(self, queue: str) -> schemas_config.QueueSettingsOut:
        token = ""
        while True:
            request = routing_service_pb2.ListQueuesRequest(page_size=schemas.MAX_PAGE_SIZE, page_token=token)
            response: routing_service_pb2.ListQueuesResponse = await self._call(
                ROUTING, self.routing.ListQueues, request
            )
            for found in response.queues:
                if found.name == queue:
                    return mapping_config.queue_settings_out(found)
            if not response.next_page_token:
                raise ProblemError(404, "queue_not_found", "Queue not found.")
            token = response.next_page_token

    async def update_queue_settings(
        self, queue: str, body: schemas_config.QueueSettingsIn
    ) -> schemas_config.QueueSettingsOut:
        request = routing_service_pb2.UpdateQueueRequest(queue=mapping_config.queue_settings_in(queue, body))
        response: routing_service_pb2.UpdateQueueResponse = await self._call(ROUTING, self.routing.UpdateQueue, request)
        return mapping_config.queue_settings_out(response.queue)

    async def list_sla_policies(self, *, page_size: int | None, page_token: str | None) -> schemas_config.SlaPolicyPage:
        request = sla_service_pb2.ListSlaPoliciesRequest(page_size=page_size or 0, page_token=page_token or "")
        response: sla_service_pb2.ListSlaPoliciesResponse = await self._call(ROUTING, self.sla.ListSlaPolicies, request)
        return schemas_config.SlaPolicyPage(
            policies=[mapping_config.sla_policy_out(p) for p in response.policies],
            next_page_token=response.next_page_token or None,
        )

    async def get_sla_policy(self, policy_id: str) -> schemas_config.SlaPolicyOut:
        token: str | None = None
        while True:
            page = await self.list_sla_policies(page_size=schemas.MAX_PAGE_SIZE, page_token=token)
            for policy in page.policies:
                if policy.id == policy_id:
                    return policy
            if page.next_page_token is None:
                raise ProblemError(404, "policy_not_found", "SLA policy not found.")
            token = page.next_page_token

    async def create_sla_policy(
        self, body: schemas_config.SlaPolicyIn, *, request_id: str
    ) -> tuple[schemas_config.SlaPolicyOut, bool]:
        policy = mapping_config.sla_policy_in(body)
        request = sla_service_pb2.CreateSlaPolicyRequest(request_id=request_id, policy=policy)
        response: sla_service_pb2.CreateSlaPolicyResponse = await self._call(ROUTING, self.sla.CreateSlaPolicy, request)
        return mapping_config.sla_policy_out(response.policy), response.created

    async def update_sla_policy(
        self, policy_id: str, body: schemas_config.SlaPolicyReplaceIn
    ) -> schemas_config.SlaPolicyOut:
        policy = mapping_config.sla_policy_in(body, policy_id=policy_id, version=body.expected_version or 0)
        response: sla_service_pb2.UpdateSlaPolicyResponse = await self._call(
            ROUTING, self.sla.UpdateSlaPolicy, sla_service_pb2.UpdateSlaPolicyRequest(policy=policy)
        )
        return mapping_config.sla_policy_out(response.policy)

    async def delete_sla_policy(self, policy_id: str) -> None:
        await self._call(ROUTING, self.sla.DeleteSlaPolicy, sla_service_pb2.DeleteSlaPolicyRequest(policy_id=policy_id))

    async def list_calendars(self, *, page_size: int | None, page_token: str | None) -> schemas_config.CalendarPage:
        request = sla_service_pb2.ListCalendarsRequest(page_size=page_size or 0, page_token=page_token or "")
        response: sla_service_pb2.ListCalendarsResponse = await self._call(ROUTING, self.sla.ListCalendars, request)
        return schemas_config.CalendarPage(
            calendars=[mapping_config.calendar_out(c) for c in response.calendars],
            next_page_token=response.next_page_token or None,
        )

    async def get_calendar(self, calendar_id: str) -> schemas_config.CalendarOut:
        token: str | None = None
        while True:
            page = await self.list_calendars(page_size=schemas.MAX_PAGE_SIZE, page_token=token)
            for calendar in page.calendars:
                if calendar.id == calendar_id:
                    return calendar
            if page.next_page_token is None:
                raise ProblemError(404, "calendar_not_found", "Calendar not found.")
            token = page.next_page_token

    async def create_calendar(
        self, body: schemas_config.CalendarIn, *, request_id: str
    ) -> tuple[schemas_config.CalendarOut, bool]:
        calendar = mapping_config.calendar_in(body)
        request = sla_service_pb2.CreateCalendarRequest(request_id=request_id, calendar=calendar)
        response: sla_service_pb2.CreateCalendarResponse = await self._call(ROUTING, self.sla.CreateCalendar, request)
        return mapping_config.calendar_out(response.calendar), response.created

    async def update_calendar(
        self, calendar_id: str, body: schemas_config.CalendarReplaceIn
    ) -> schemas_config.CalendarOut:
        calendar = mapping_config.calendar_in(body, calendar_id=calendar_id, version=body.expected_version or 0)
        response: sla_service_pb2.UpdateCalendarResponse = await self._call(
            ROUTING, self.sla.UpdateCalendar, sla_service_pb2.UpdateCalendarRequest(calendar=calendar)
        )
        return mapping_config.calendar_out(response.calendar)

    async def get_ticket_sla(self, ticket_id: str) -> schemas_config.TicketSlaOut:
        response: sla_service_pb2.GetTicketSlaResponse = await self._call(
            ROUTING, self.sla.GetTicketSla, sla_service_pb2.GetTicketSlaRequest(ticket_id=ticket_id)
        )
        return mapping_config.ticket_sla_out(ticket_id, response)

    async def sla_stats(self, request: sla_service_pb2.GetSlaStatsRequest) -> schemas_config.SlaStatsReport:
        response: sla_service_pb2.GetSlaStatsResponse = await self._call(ROUTING, self.sla.GetSlaStats, request)
        return mapping_config.sla_stats_report(response)
