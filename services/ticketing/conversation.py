"""Messages on a ticket: who may say what, and how a reply moves the ticket. Pure rules, no I/O."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from services.kit.errors import FailedPrecondition, InvalidArgument, PermissionDenied
from services.ticketing.domain import Action, Actor, ActorType, History, Status, change_status

MAX_BODY = 10_000
MAX_ATTACHMENTS = 10
MAX_ATTACHMENT_BYTES = 100 * 1024 * 1024
MAX_URL = 2_048


class Visibility(StrEnum):
    PUBLIC = "public"
    INTERNAL = "internal"


@dataclass(frozen=True, slots=True)
class Attachment:
    name: str
    content_type: str
    size_bytes: int
    url: str


@dataclass(frozen=True, slots=True)
class Message:
    id: uuid.UUID
    ticket_id: uuid.UUID
    author: Actor
    visibility: Visibility
    body: str
    attachments: tuple[Attachment, ...]
    # Kinds of secrets removed from the body before it was stored.
    redactions: tuple[str, ...]
    created_at: datetime


@dataclass(frozen=True, slots=True)
class NewMessage:
    request_id: str
    author: Actor
    visibility: Visibility
    body: str
    attachments: tuple[Attachment, ...] = ()

    def __post_init__(self) -> None:
        if not self.request_id or len(self.request_id) > 300:
            raise InvalidArgument(
                "invalid_argument", "request_id: required, at most 300 characters", field="request_id"
            )
        if not self.body.strip() and not self.attachments:
            raise InvalidArgument("invalid_argument", "body: required unless attachments are given", field="body")
        if len(self.body) > MAX_BODY:
            raise InvalidArgument("invalid_argument", f"body: at most {MAX_BODY} characters", field="body")
        if len(self.attachments) > MAX_ATTACHMENTS:
            raise InvalidArgument("invalid_argument", f"attachments: at most {MAX_ATTACHMENTS}", field="attachments")
        for attachment in self.attachments:
            _check_attachment(attachment)


def _check_attachment(attachment: Attachment) -> None:
    problems = []
    if not 1 <= len(attachment.name) <= 255:
        problems.append("name: 1 to 255 characters")
    if not attachment.content_type or len(attachment.content_type) > 127:
        problems.append("content_type: 1 to 127 characters")
    if not 0 <= attachment.size_bytes <= MAX_ATTACHMENT_BYTES:
        problems.append(f"size_bytes: 0 to {MAX_ATTACHMENT_BYTES}")
    if not attachment.url.startswith(("https://", "http://")) or len(attachment.url) > MAX_URL:
        problems.append(f"url: an http(s) URL of at most {MAX_URL} characters")
    if problems:
        raise InvalidArgument("invalid_argument", "attachments: " + "; ".join(problems), field="attachments")


def check_may_post(history: History, new: NewMessage) -> None:
    """Refuse a message its author may not add to this ticket."""
    ticket = history.ticket
    author = new.author
    if author.type is ActorType.CUSTOMER:
        if author.id != ticket.customer_id:
            raise PermissionDenied("not_ticket_owner", "this ticket belongs to another customer")
        if new.visibility is Visibility.INTERNAL:
            raise PermissionDenied("internal_note_forbidden", "customers cannot write internal notes")
    if ticket.status is Status.CLOSED:
        raise FailedPrecondition("ticket_closed", "the ticket is closed; open a new one")


def add_message(history: History, message: Message, *, reopen_window: timedelta, now: datetime) -> None:
    """Record the message, then move the ticket as a reply implies.

    A customer's reply puts a waiting (pending, on hold) or resolved ticket back in front of an agent; an
    agent's first public reply opens a new ticket. Internal notes and system messages move nothing.
    """
    if message.visibility is Visibility.INTERNAL:
        history.record(Action.NOTE_ADDED, message.author, {"message_id": str(message.id)})
        return
    history.record(
        Action.MESSAGE_ADDED,
        message.author,
        {"message_id": str(message.id), "author_type": message.author.type.value},
    )
    status = history.ticket.status
    if message.author.type is ActorType.CUSTOMER and status in (Status.PENDING, Status.ON_HOLD, Status.RESOLVED):
        change_status(
            history, Status.OPEN, _reply_actor(message), resolution_note="", reopen_window=reopen_window, now=now
        )
    elif message.author.type.is_staff and status is Status.NEW:
        change_status(history, Status.OPEN, message.author, resolution_note="", reopen_window=reopen_window, now=now)


def _reply_actor(message: Message) -> Actor:
    # The status follows from the reply; recorded as the system acting, since customers cannot set statuses.
    return Actor(ActorType.SYSTEM, f"reply:{message.author.id}")
