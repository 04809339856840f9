"""Protobuf ↔ public JSON models. Pure functions; the only place besides ``clients`` that sees protobuf.

Enum values map by name: ``CATEGORY_PAYMENT_FAILED`` ↔ ``payment_failed`` (prefix dropped, lowercased).
Empty strings and unset messages become null; timestamps are UTC datetimes.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp
from support.common.v1 import common_pb2
from support.notify.v1 import notification_pb2, notify_service_pb2
from support.routing.v1 import agent_pb2, offer_pb2, queue_pb2, routing_service_pb2
from support.ticketing.v1 import help_pb2, help_service_pb2, ticket_pb2, ticketing_service_pb2

from services.gateway import schemas
from services.gateway.principal import Principal, Role
from services.gateway.schemas_ops import OpsAgentsOut

if TYPE_CHECKING:
    from google.protobuf.internal.enum_type_wrapper import _EnumTypeWrapper

E = TypeVar("E", bound=StrEnum)
V = TypeVar("V", bound=int)


class MappingError(ValueError):
    """A peer sent a value the public API has no name for (e.g. an enum value newer than the gateway)."""


class EnumMap(Generic[E, V]):
    """Both directions between a protobuf enum (values ``PREFIX_NAME``) and a public string enum."""

    def __init__(self, proto_enum: _EnumTypeWrapper[V], prefix: str, public: type[E]) -> None:
        self.public = public
        self.to_public: dict[int, E] = {}
        self.to_proto: dict[E, V] = {}
        names = {member.value: member for member in public}
        for name, number in proto_enum.items():
            member = names.get(name.removeprefix(prefix).lower())
            if number != 0 and member is not None:
                self.to_public[number] = member
                self.to_proto[member] = number

    def out(self, number: int) -> E:
        try:
            return self.to_public[number]
        except KeyError:
            raise MappingError(f"no public {self.public.__name__} for enum value {number}") from None

    def out_or_none(self, number: int) -> E | None:
        return None if number == 0 else self.out(number)


CHANNEL = EnumMap(ticket_pb2.Channel, "CHANNEL_", schemas.Channel)
CATEGORY = EnumMap(ticket_pb2.Category, "CATEGORY_", schemas.Category)
PRIORITY = EnumMap(common_pb2.Priority, "PRIORITY_", schemas.Priority)
TICKET_STATUS = EnumMap(ticket_pb2.TicketStatus, "TICKET_STATUS_", schemas.TicketStatus)
QUEUE_ENTRY_STATE = EnumMap(queue_pb2.QueueEntryState, "QUEUE_ENTRY_STATE_", schemas.QueueEntryState)
NOTIFICATION_CHANNEL = EnumMap(
    notification_pb2.NotificationChannel, "NOTIFICATION_CHANNEL_", schemas.NotificationChannel
)
PRESENCE = EnumMap(agent_pb2.Presence, "PRESENCE_", schemas.Presence)
OFFER_STATE = EnumMap(offer_pb2.OfferState, "OFFER_STATE_", schemas.OfferState)
ACTOR_TYPE = EnumMap(ticket_pb2.ActorType, "ACTOR_TYPE_", schemas.ActorType)
MESSAGE_VISIBILITY = EnumMap(ticket_pb2.MessageVisibility, "MESSAGE_VISIBILITY_", schemas.MessageVisibility)

ENUM_MAPS: Mapping[str, EnumMap[Any, Any]] = {
    "channel": CHANNEL,
    "category": CATEGORY,
    "priority": PRIORITY,
    "ticket_status": TICKET_STATUS,
    "queue_entry_state": QUEUE_ENTRY_STATE,
    "notification_channel": NOTIFICATION_CHANNEL,
    "presence": PRESENCE,
    "offer_state": OFFER_STATE,
    "actor_type": ACTOR_TYPE,
    "message_visibility": MESSAGE_VISIBILITY,
}


def _none_if_empty(value: str) -> str | None:
    return value or None


def timestamp_out(message: Any, field: str) -> datetime | None:
    """The timestamp ``field`` of ``message`` as an aware UTC datetime, or None when unset."""
    if not message.HasField(field):
        return None
    stamp: Timestamp = getattr(message, field)
    return stamp.ToDatetime(tzinfo=UTC)


def timestamp_in(value: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(value.astimezone(UTC))
    return stamp


def duration_seconds(duration: Duration) -> float:
    return duration.seconds + duration.nanos / 1e9


def create_ticket_request(
    body: schemas.CreateTicketIn, *, customer_id: str, request_id: str
) -> ticketing_service_pb2.CreateTicketRequest:
    request = ticketing_service_pb2.CreateTicketRequest(
        request_id=request_id,
        customer_id=customer_id,
        channel=CHANNEL.to_proto[body.channel],
        category=CATEGORY.to_proto[body.category],
        subject=body.subject,
        description=body.description,
        priority=PRIORITY.to_proto[body.priority] if body.priority else common_pb2.PRIORITY_UNSPECIFIED,
        language=body.language,
        customer_tier=body.customer_tier or "",
    )
    if body.wallet_context is not None:
        context = body.wallet_context
        request.wallet_context.CopyFrom(
            ticket_pb2.WalletContext(
                transaction_ref=context.transaction_ref or "",
                amount=context.amount or "",
                currency=context.currency or "",
                error_code=context.error_code or "",
                app_version=context.app_version or "",
                device=context.device or "",
            )
        )
        if context.occurred_at is not None:
            request.wallet_context.occurred_time.CopyFrom(timestamp_in(context.occurred_at))
    return request


def wallet_context_out(context: ticket_pb2.WalletContext) -> schemas.WalletContextOut:
    return schemas.WalletContextOut(
        transaction_ref=_none_if_empty(context.transaction_ref),
        amount=_none_if_empty(context.amount),
        currency=_none_if_empty(context.currency),
        occurred_at=timestamp_out(context, "occurred_time"),
        error_code=_none_if_empty(context.error_code),
        app_version=_none_if_empty(context.app_version),
        device=_none_if_empty(context.device),
    )


def ticket_out(ticket: ticket_pb2.Ticket) -> schemas.TicketOut:
    return schemas.TicketOut(
        id=ticket.id,
        customer_id=ticket.customer_id,
        channel=CHANNEL.out(ticket.channel),
        category=CATEGORY.out(ticket.category),
        subject=ticket.subject,
        description=ticket.description,
        priority=PRIORITY.out_or_none(ticket.priority),
        status=TICKET_STATUS.out(ticket.status),
        language=ticket.language,
        customer_tier=_none_if_empty(ticket.customer_tier),
        wallet_context=wallet_context_out(ticket.wallet_context) if ticket.HasField("wallet_context") else None,
        version=ticket.version,
        created_at=timestamp_out(ticket, "create_time"),
        updated_at=timestamp_out(ticket, "update_time"),
        assignee_id=_none_if_empty(ticket.assignee_id),
        flags=list(ticket.flags),
        resolution_note=_none_if_empty(ticket.resolution_note),
        resolved_at=timestamp_out(ticket, "resolve_time"),
        csat=csat_out(ticket.csat) if ticket.HasField("csat") else None,
    )


def csat_out(csat: ticket_pb2.Csat) -> schemas.CsatOut:
    return schemas.CsatOut(
        score=csat.score, comment=_none_if_empty(csat.comment), created_at=timestamp_out(csat, "create_time")
    )


def ticket_page(response: ticketing_service_pb2.ListTicketsResponse) -> schemas.TicketPage:
    return schemas.TicketPage(
        tickets=[ticket_out(t) for t in response.tickets], next_page_token=_none_if_empty(response.next_page_token)
    )


def actor_in(principal: Principal) -> ticket_pb2.Actor:
    # Roles and actor types share their names: customer, agent, supervisor, admin.
    return ticket_pb2.Actor(type=ACTOR_TYPE.to_proto[schemas.ActorType(principal.role.value)], id=principal.subject)


def actor_out(actor: ticket_pb2.Actor) -> schemas.ActorOut:
    return schemas.ActorOut(type=ACTOR_TYPE.out(actor.type), id=actor.id)


def list_tickets_request(
    *,
    customer_id: str | None,
    assignee_id: str | None,
    statuses: list[schemas.TicketStatus],
    page_size: int | None,
    page_token: str | None,
) -> ticketing_service_pb2.ListTicketsRequest:
    return ticketing_service_pb2.ListTicketsRequest(
        customer_id=customer_id or "",
        assignee_id=assignee_id or "",
        statuses=[TICKET_STATUS.to_proto[s] for s in statuses],
        page_size=page_size or 0,
        page_token=page_token or "",
    )


def update_ticket_request(
    ticket_id: str, body: schemas.UpdateTicketIn, principal: Principal
) -> ticketing_service_pb2.UpdateTicketRequest:
    return ticketing_service_pb2.UpdateTicketRequest(
        ticket_id=ticket_id,
        actor=actor_in(principal),
        status=TICKET_STATUS.to_proto[body.status] if body.status else ticket_pb2.TICKET_STATUS_UNSPECIFIED,
        priority=PRIORITY.to_proto[body.priority] if body.priority else common_pb2.PRIORITY_UNSPECIFIED,
        resolution_note=body.resolution_note or "",
        expected_version=body.expected_version or 0,
    )


def add_message_request(
    ticket_id: str, body: schemas.MessageIn, principal: Principal, *, request_id: str
) -> ticketing_service_pb2.AddMessageRequest:
    return ticketing_service_pb2.AddMessageRequest(
        request_id=request_id,
        ticket_id=ticket_id,
        author=actor_in(principal),
        visibility=MESSAGE_VISIBILITY.to_proto[body.visibility],
        body=body.body,
        attachments=[
            ticket_pb2.Attachment(name=a.name, content_type=a.content_type, size_bytes=a.size_bytes, url=a.url)
            for a in body.attachments
        ],
    )


def message_out(message: ticket_pb2.Message) -> schemas.MessageOut:
    return schemas.MessageOut(
        id=message.id,
        ticket_id=message.ticket_id,
        author=actor_out(message.author),
        visibility=MESSAGE_VISIBILITY.out(message.visibility),
        body=message.body,
        attachments=[
            schemas.AttachmentOut(name=a.name, content_type=a.content_type, size_bytes=a.size_bytes, url=a.url)
            for a in message.attachments
        ],
        redactions=list(message.redactions),
        created_at=timestamp_out(message, "create_time"),
    )


def message_page(response: ticketing_service_pb2.ListMessagesResponse) -> schemas.MessagePage:
    return schemas.MessagePage(
        messages=[message_out(m) for m in response.messages], next_page_token=_none_if_empty(response.next_page_token)
    )


def timeline_page(response: ticketing_service_pb2.ListTimelineResponse) -> schemas.TimelinePage:
    return schemas.TimelinePage(
        entries=[
            schemas.TimelineEntryOut(
                id=e.id,
                version=e.version,
                actor=actor_out(e.actor),
                action=e.action,
                details=dict(e.details),
                trace_id=_none_if_empty(e.trace_id),
                created_at=timestamp_out(e, "create_time"),
            )
            for e in response.entries
        ],
        next_page_token=_none_if_empty(response.next_page_token),
    )


def priority_rule_out(rule: ticket_pb2.PriorityRule) -> schemas.PriorityRuleOut:
    return schemas.PriorityRuleOut(category=CATEGORY.out(rule.category), priority=PRIORITY.out(rule.priority))


def priority_rule_in(category: schemas.Category, priority: schemas.Priority) -> ticket_pb2.PriorityRule:
    return ticket_pb2.PriorityRule(category=CATEGORY.to_proto[category], priority=PRIORITY.to_proto[priority])


def queue_entry_out(entry: queue_pb2.QueueEntry) -> schemas.QueueEntryOut:
    return schemas.QueueEntryOut(
        ticket_id=entry.ticket_id,
        queue=entry.queue,
        state=QUEUE_ENTRY_STATE.out(entry.state),
        priority=PRIORITY.out_or_none(entry.priority),
        ticket_version=entry.ticket_version,
        agent_id=_none_if_empty(entry.agent_id),
        step=entry.step,
        enqueued_at=timestamp_out(entry, "enqueue_time"),
        ticket_created_at=timestamp_out(entry, "ticket_create_time"),
    )


def list_queue_stats_request(
    page_size: int | None, page_token: str | None
) -> routing_service_pb2.ListQueueStatsRequest:
    return routing_service_pb2.ListQueueStatsRequest(page_size=page_size or 0, page_token=page_token or "")


def queue_stats_page(response: routing_service_pb2.ListQueueStatsResponse) -> schemas.QueueStatsPage:
    return schemas.QueueStatsPage(
        queues=[
            schemas.QueueStatsOut(
                queue=stats.queue,
                waiting=stats.waiting,
                longest_wait_seconds=duration_seconds(stats.longest_wait),
                agents_available=stats.agents_available,
                agents_busy=stats.agents_busy,
                offers_outstanding=stats.offers_outstanding,
                estimated_wait_seconds=duration_seconds(stats.estimated_wait),
            )
            for stats in response.queues
        ],
        next_page_token=_none_if_empty(response.next_page_token),
    )


def agent_counts(response: routing_service_pb2.CountAgentsResponse) -> OpsAgentsOut:
    return OpsAgentsOut(available=response.available, busy=response.busy, away=response.away, offline=response.offline)


def audiences_of(principal: Principal) -> list[str]:
    """The role audiences whose notifications a caller also reads (supervisors share one)."""
    return ["role:supervisor"] if principal.role is Role.SUPERVISOR else []


def list_notifications_request(
    principal: Principal, page_size: int | None, page_token: str | None, unread_only: bool
) -> notify_service_pb2.ListNotificationsRequest:
    return notify_service_pb2.ListNotificationsRequest(
        user_id=principal.subject,
        audiences=audiences_of(principal),
        page_size=page_size or 0,
        page_token=page_token or "",
        unread_only=unread_only,
    )


def notification_out(item: notification_pb2.Notification) -> schemas.NotificationOut:
    read_at = timestamp_out(item, "read_time")
    return schemas.NotificationOut(
        id=item.id,
        channel=NOTIFICATION_CHANNEL.out_or_none(item.channel),
        kind=item.kind,
        title=item.title,
        body=item.body,
        ticket_id=_none_if_empty(item.ticket_id),
        created_at=timestamp_out(item, "create_time"),
        read=read_at is not None,
        read_at=read_at,
        security=item.security,
        data=dict(item.data),
    )


def disowned_alert_ticket_request(
    disowned: notify_service_pb2.DisownAlertResponse, customer_id: str
) -> ticketing_service_pb2.CreateTicketRequest:
    """An urgent suspicious-activity ticket; its request id is the alert's, so asking twice opens one ticket."""
    alert = disowned.notification
    return ticketing_service_pb2.CreateTicketRequest(
        request_id=f"wallet-alert:{disowned.alert_id}",
        customer_id=customer_id,
        channel=ticket_pb2.CHANNEL_APP,
        category=ticket_pb2.CATEGORY_SUSPICIOUS_ACTIVITY,
        priority=common_pb2.PRIORITY_URGENT,
        subject=alert.title,
        description=alert.body,
        language="zh" if disowned.locale.startswith("zh") else "en",
    )


def notification_page(response: notify_service_pb2.ListNotificationsResponse) -> schemas.NotificationPage:
    return schemas.NotificationPage(
        notifications=[notification_out(item) for item in response.notifications],
        next_page_token=_none_if_empty(response.next_page_token),
        unread_count=response.unread_count,
    )


# Help centre ------------------------------------------------------------------------------------------------


def _public(enum: type[E], value: str, what: str) -> E:
    try:
        return enum(value)
    except ValueError:
        raise MappingError(f"no public {what} for {value!r}") from None


def help_article_out(article: help_pb2.HelpArticle) -> schemas.HelpArticleOut:
    return schemas.HelpArticleOut(
        id=article.id,
        locale=_public(schemas.HelpLocale, article.locale, "locale"),
        slug=article.slug,
        title=article.title,
        body=article.body,
        category=_public(schemas.Category, article.category, "category"),
        tags=list(article.tags),
        published=article.published,
        version=article.version,
        created_at=timestamp_out(article, "create_time"),
        updated_at=timestamp_out(article, "update_time"),
    )


def help_result_out(result: help_pb2.HelpSearchResult) -> schemas.HelpArticleResultOut:
    return schemas.HelpArticleResultOut(
        article=help_article_out(result.article), score=result.score, snippet=result.snippet
    )


def search_help_articles_request(
    query: str, locale: str | None, category: schemas.Category | None, page_size: int | None, page_token: str | None
) -> help_service_pb2.SearchArticlesRequest:
    return help_service_pb2.SearchArticlesRequest(
        query=query,
        locale=locale or "",
        category=category.value if category else "",
        page_size=page_size or 0,
        page_token=page_token or "",
    )


def help_search_page(response: help_service_pb2.SearchArticlesResponse) -> schemas.HelpArticlePage:
    return schemas.HelpArticlePage(
        results=[help_result_out(result) for result in response.results],
        next_page_token=_none_if_empty(response.next_page_token),
        fallback_locale=_public(schemas.HelpLocale, response.fallback_locale, "locale")
        if response.fallback_locale
        else None,
    )


def list_help_articles_request(
    locale: str | None,
    category: schemas.Category | None,
    include_unpublished: bool,
    page_size: int | None,
    page_token: str | None,
) -> help_service_pb2.ListArticlesRequest:
    return help_service_pb2.ListArticlesRequest(
        locale=locale or "",
        category=category.value if category else "",
        include_unpublished=include_unpublished,
        page_size=page_size or 0,
        page_token=page_token or "",
    )


def help_list_page(response: help_service_pb2.ListArticlesResponse) -> schemas.HelpArticlePage:
    return schemas.HelpArticlePage(
        results=[
            schemas.HelpArticleResultOut(article=help_article_out(article), score=None, snippet=None)
            for article in response.articles
        ],
        next_page_token=_none_if_empty(response.next_page_token),
    )


def suggest_help_articles_request(body: schemas.HelpSuggestionsIn) -> help_service_pb2.SuggestArticlesRequest:
    return help_service_pb2.SuggestArticlesRequest(
        subject=body.subject,
        description=body.description,
        locale=body.locale or "",
        category=body.category.value if body.category else "",
        max_results=body.max_results or 0,
    )


def help_suggestions_out(response: help_service_pb2.SuggestArticlesResponse) -> schemas.HelpSuggestionsOut:
    return schemas.HelpSuggestionsOut(results=[help_result_out(result) for result in response.results])


def create_help_article_request(
    body: schemas.HelpArticleIn, *, request_id: str
) -> help_service_pb2.CreateArticleRequest:
    return help_service_pb2.CreateArticleRequest(
        request_id=request_id,
        locale=body.locale.value,
        slug=body.slug,
        title=body.title,
        body=body.body,
        category=body.category.value,
        tags=body.tags,
        published=body.published,
    )


def update_help_article_request(
    article_id: str, body: schemas.HelpArticleReplaceIn
) -> help_service_pb2.UpdateArticleRequest:
    return help_service_pb2.UpdateArticleRequest(
        article_id=article_id,
        title=body.title,
        body=body.body,
        category=body.category.value,
        tags=body.tags,
        published=body.published,
        expected_version=body.expected_version or 0,
    )


def list_search_gaps_request(
    locale: str | None, page_size: int | None, page_token: str | None
) -> help_service_pb2.ListSearchGapsRequest:
    return help_service_pb2.ListSearchGapsRequest(
        locale=locale or "", page_size=page_size or 0, page_token=page_token or ""
    )


def search_gap_page(response: help_service_pb2.ListSearchGapsResponse) -> schemas.SearchGapPage:
    return schemas.SearchGapPage(
        gaps=[
            schemas.SearchGapOut(
                query=gap.query,
                locale=_public(schemas.HelpLocale, gap.locale, "locale"),
                search_count=gap.search_count,
                first_searched_at=timestamp_out(gap, "first_search_time"),
                last_searched_at=timestamp_out(gap, "last_search_time"),
            )
            for gap in response.gaps
        ],
        next_page_token=_none_if_empty(response.next_page_token),
    )


# Agents and offers --------------------------------------------------------------------------------------------


def _skills_in(skills: list[schemas.SkillIn]) -> list[agent_pb2.Skill]:
    return [agent_pb2.Skill(name=s.name, proficiency=s.proficiency) for s in skills]


def create_agent_request(body: schemas.CreateAgentIn, *, request_id: str) -> routing_service_pb2.CreateAgentRequest:
    return routing_service_pb2.CreateAgentRequest(
        request_id=request_id,
        agent_id=body.agent_id,
        display_name=body.display_name,
        skills=_skills_in(body.skills),
        languages=body.languages,
        capacity=body.capacity,
    )


def update_agent_request(agent_id: str, body: schemas.UpdateAgentIn) -> routing_service_pb2.UpdateAgentRequest:
    return routing_service_pb2.UpdateAgentRequest(
        agent_id=agent_id,
        display_name=body.display_name,
        skills=_skills_in(body.skills),
        languages=body.languages,
        capacity=body.capacity,
        expected_version=body.expected_version or 0,
    )


def agent_out(agent: agent_pb2.Agent) -> schemas.AgentOut:
    return schemas.AgentOut(
        id=agent.id,
        display_name=agent.display_name,
        skills=[schemas.SkillOut(name=s.name, proficiency=s.proficiency) for s in agent.skills],
        languages=list(agent.languages),
        capacity=agent.capacity,
        presence=PRESENCE.out(agent.presence),
        active_tickets=agent.active_tickets,
        last_assignment_at=timestamp_out(agent, "last_assignment_time"),
        presence_changed_at=timestamp_out(agent, "presence_change_time"),
        version=agent.version,
    )


def agent_page(response: routing_service_pb2.ListAgentsResponse) -> schemas.AgentPage:
    return schemas.AgentPage(
        agents=[agent_out(a) for a in response.agents], next_page_token=_none_if_empty(response.next_page_token)
    )


def offer_out(offer: offer_pb2.Offer) -> schemas.OfferOut:
    return schemas.OfferOut(
        id=offer.id,
        ticket_id=offer.ticket_id,
        agent_id=offer.agent_id,
        queue=offer.queue,
        state=OFFER_STATE.out(offer.state),
        created_at=timestamp_out(offer, "create_time"),
        expires_at=timestamp_out(offer, "expire_time"),
        responded_at=timestamp_out(offer, "respond_time"),
    )


def offer_page(response: routing_service_pb2.ListOffersResponse) -> schemas.OfferPage:
    return schemas.OfferPage(
        offers=[offer_out(o) for o in response.offers], next_page_token=_none_if_empty(response.next_page_token)
    )
