import dataclasses
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from services.kit.errors import DomainError, FailedPrecondition, InvalidArgument, PermissionDenied
from services.routing.domain import queue_for
from services.ticketing import domain
from services.ticketing.conversation import Attachment, Message, NewMessage, Visibility, add_message, check_may_post
from services.ticketing.domain import (
    DEFAULT_PRIORITY_RULES,
    SYSTEM,
    Action,
    Actor,
    ActorType,
    Category,
    Channel,
    History,
    NewTicket,
    Priority,
    Status,
    Ticket,
    WalletContext,
    allowed_transitions,
    effective_priority,
    open_ticket,
)

pytestmark = pytest.mark.unit

NOW = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)
WINDOW = timedelta(days=7)
CUSTOMER = Actor(ActorType.CUSTOMER, "c-1")
AGENT = Actor(ActorType.AGENT, "a-1")


def new(**overrides: object) -> NewTicket:
    fields: dict[str, object] = {
        "request_id": "c-1:key-1",
        "customer_id": "c-1",
        "channel": Channel.APP,
        "category": Category.PAYMENT_FAILED,
        "subject": "Payment failed at checkout",
        "description": "Card declined with error 51",
        "priority": None,
        "language": "zh",
        "customer_tier": "standard",
    }
    fields.update(overrides)
    return NewTicket(**fields)  # type: ignore[arg-type]


def ticket(status: Status = Status.NEW, category: Category = Category.PAYMENT_FAILED, **fields: object) -> Ticket:
    opened, _ = open_ticket(new(category=category), uuid.uuid4(), NOW, DEFAULT_PRIORITY_RULES)
    return dataclasses.replace(opened, status=status, **fields)  # type: ignore[arg-type]


def move(t: Ticket, to: Status, actor: Actor = AGENT, note: str = "", now: datetime = NOW) -> History:
    history = History(t, now)
    domain.change_status(history, to, actor, resolution_note=note, reopen_window=WINDOW, now=now)
    return history


# --- priority ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("category", "expected"),
    [
        (Category.PAYMENT_FAILED, Priority.URGENT),
        (Category.ACCOUNT_FROZEN, Priority.URGENT),
        (Category.SUSPICIOUS_ACTIVITY, Priority.URGENT),
        (Category.ACCOUNT_LOCKED, Priority.HIGH),
        (Category.PASSWORD_RESET, Priority.NORMAL),
        (Category.BETA_ACCESS, Priority.LOW),
    ],
)
def test_priority_is_derived_from_the_category(category: Category, expected: Priority) -> None:
    assert effective_priority(category, None, DEFAULT_PRIORITY_RULES) is expected


def test_edited_rules_apply_but_money_and_security_are_never_low() -> None:
    rules = {**DEFAULT_PRIORITY_RULES, Category.OTHER: Priority.HIGH, Category.BANK_CARD: Priority.LOW}
    assert effective_priority(Category.OTHER, None, rules) is Priority.HIGH
    assert effective_priority(Category.BANK_CARD, None, rules) is Priority.NORMAL
    for category in (Category.PAYMENT_FAILED, Category.BANK_CARD, Category.SUSPICIOUS_ACTIVITY):
        assert effective_priority(category, Priority.LOW, rules) is Priority.NORMAL
    assert effective_priority(Category.BETA_ACCESS, Priority.LOW, rules) is Priority.LOW
    with pytest.raises(InvalidArgument) as caught:
        domain.check_priority_rule(Category.PAYMENT_FAILED, Priority.LOW)
    assert caught.value.code == "priority_rule_refused"
    domain.check_priority_rule(Category.BETA_ACCESS, Priority.LOW)


def test_a_new_ticket_starts_at_version_one_in_status_new() -> None:
    opened, change = open_ticket(new(subject="  Payment failed  "), uuid.uuid4(), NOW, DEFAULT_PRIORITY_RULES)
    assert opened.status is Status.NEW
    assert opened.version == change.version == 1
    assert change.action is Action.CREATED
    assert opened.priority is Priority.URGENT
    assert opened.subject == "Payment failed"
    assert opened.created_at == opened.updated_at == NOW


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"request_id": ""}, "request_id"),
        ({"customer_id": ""}, "customer_id"),
        ({"subject": "   "}, "subject"),
        ({"subject": "x" * 201}, "subject"),
        ({"description": "x" * 10_001}, "description"),
        ({"language": ""}, "language"),
    ],
)
def test_invalid_tickets_are_refused_naming_the_field(overrides: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        new(**overrides)
    assert caught.value.metadata["field"] == field


def test_every_category_has_a_queue() -> None:
    assert {queue_for(c.value) for c in Category} == {"payments", "account_security", "cards", "complaints", "general"}


# --- status machine ----------------------------------------------------------------------------------------

LEGAL = [
    (Status.NEW, Status.OPEN),
    (Status.OPEN, Status.PENDING),
    (Status.PENDING, Status.OPEN),
    (Status.OPEN, Status.ON_HOLD),
    (Status.ON_HOLD, Status.RESOLVED),
    (Status.OPEN, Status.RESOLVED),
    (Status.RESOLVED, Status.CLOSED),
    (Status.RESOLVED, Status.OPEN),
]


@pytest.mark.parametrize(("start", "to"), LEGAL)
def test_legal_transitions_bump_the_version_once(start: Status, to: Status) -> None:
    history = move(ticket(start, resolved_at=NOW if start is Status.RESOLVED else None), to)
    assert history.ticket.status is to
    assert history.ticket.version == 2
    assert [(c.action, c.details["from"], c.details["to"]) for c in history.changes] == [
        (Action.STATUS_CHANGED, start.value, to.value)
    ]


@pytest.mark.parametrize(
    ("start", "to"),
    [(s, t) for s in Status for t in Status if s is not t and t not in allowed_transitions(s)],
)
def test_every_other_transition_is_refused(start: Status, to: Status) -> None:
    with pytest.raises(FailedPrecondition) as caught:
        move(ticket(start), to)
    assert caught.value.code == "illegal_transition"


def test_closed_is_final() -> None:
    assert allowed_transitions(Status.CLOSED) == frozenset()


def test_reopen_only_within_the_window() -> None:
    resolved = ticket(Status.RESOLVED, resolved_at=NOW - WINDOW + timedelta(minutes=1))
    assert move(resolved, Status.OPEN).ticket.resolved_at is None
    stale = ticket(Status.RESOLVED, resolved_at=NOW - WINDOW - timedelta(minutes=1))
    with pytest.raises(FailedPrecondition) as caught:
        move(stale, Status.OPEN)
    assert caught.value.code == "reopen_window_passed"


def test_resolving_records_when() -> None:
    assert move(ticket(Status.OPEN), Status.RESOLVED).ticket.resolved_at == NOW


def test_a_complaint_is_closed_only_with_a_resolution_note() -> None:
    complaint = ticket(Status.RESOLVED, Category.COMPLAINT, resolved_at=NOW)
    with pytest.raises(FailedPrecondition) as caught:
        move(complaint, Status.CLOSED)
    assert caught.value.code == "resolution_note_required"
    closed = move(complaint, Status.CLOSED, note="Refund verified with the bank; customer confirmed by phone.")
    assert closed.ticket.status is Status.CLOSED
    noted = move(ticket(Status.OPEN, Category.COMPLAINT), Status.RESOLVED, note="Verified and refunded").ticket
    assert move(noted, Status.CLOSED).ticket.status is Status.CLOSED


def test_customers_may_only_reopen_or_close_their_own_resolved_ticket() -> None:
    resolved = ticket(Status.RESOLVED, resolved_at=NOW)
    assert move(resolved, Status.CLOSED, CUSTOMER).ticket.status is Status.CLOSED
    for start, to in [(Status.OPEN, Status.RESOLVED), (Status.NEW, Status.OPEN)]:
        with pytest.raises(PermissionDenied):
            move(ticket(start), to, CUSTOMER)
    with pytest.raises(PermissionDenied) as caught:
        move(resolved, Status.CLOSED, Actor(ActorType.CUSTOMER, "someone-else"))
    assert caught.value.code == "not_ticket_owner"


def test_setting_the_same_status_changes_nothing() -> None:
    history = move(ticket(Status.OPEN), Status.OPEN)
    assert history.changes == []
    assert history.ticket.version == 1


# --- priority changes, assignment, flags, CSAT ---------------------------------------------------------------


def test_staff_change_priority_but_never_to_low_for_money_problems() -> None:
    history = History(ticket(Status.OPEN, Category.OTHER), NOW)
    domain.change_priority(history, Priority.HIGH, AGENT)
    assert (history.ticket.priority, history.ticket.version) == (Priority.HIGH, 2)
    with pytest.raises(FailedPrecondition):
        domain.change_priority(History(ticket(Status.OPEN), NOW), Priority.LOW, AGENT)
    with pytest.raises(PermissionDenied):
        domain.change_priority(History(ticket(Status.OPEN), NOW), Priority.HIGH, CUSTOMER)


def test_assignment_opens_a_new_ticket_and_is_idempotent() -> None:
    history = History(ticket(Status.NEW), NOW)
    domain.assign(history, "a-7")
    assert [c.action for c in history.changes] == [Action.ASSIGNED, Action.STATUS_CHANGED]
    assert [c.version for c in history.changes] == [2, 3]
    assert (history.ticket.assignee_id, history.ticket.status) == ("a-7", Status.OPEN)
    domain.assign(history, "a-7")
    assert len(history.changes) == 2


def test_a_flag_is_recorded_once() -> None:
    history = History(ticket(), NOW)
    domain.flag(history, domain.Flag.SECRET_EXPOSED, ("recovery_phrase",))
    domain.flag(history, domain.Flag.SECRET_EXPOSED, ("card_number",))
    assert history.ticket.flags == ("secret_exposed",)
    assert len(history.changes) == 1


def test_csat_once_after_resolution_by_the_customer() -> None:
    resolved = ticket(Status.RESOLVED, resolved_at=NOW)
    history = History(resolved, NOW)
    domain.record_csat(history, CUSTOMER, 5, " Quick and kind ", NOW)
    assert history.ticket.csat is not None
    assert (history.ticket.csat.score, history.ticket.csat.comment) == (5, "Quick and kind")
    failures: list[tuple[Ticket, Actor, int, str]] = [
        (history.ticket, CUSTOMER, 4, "csat_already_recorded"),
        (ticket(Status.OPEN), CUSTOMER, 4, "csat_too_early"),
        (resolved, AGENT, 4, "csat_forbidden"),
        (resolved, Actor(ActorType.CUSTOMER, "c-2"), 4, "not_ticket_owner"),
        (resolved, CUSTOMER, 6, "invalid_argument"),
        (resolved, CUSTOMER, 0, "invalid_argument"),
    ]
    for t, actor, score, code in failures:
        with pytest.raises(DomainError) as caught:
            domain.record_csat(History(t, NOW), actor, score, "", NOW)
        assert caught.value.code == code


# --- conversation ------------------------------------------------------------------------------------------


def message(author: Actor, visibility: Visibility = Visibility.PUBLIC, t: Ticket | None = None) -> Message:
    return Message(
        id=uuid.uuid4(),
        ticket_id=(t or ticket()).id,
        author=author,
        visibility=visibility,
        body="hello",
        attachments=(),
        redactions=(),
        created_at=NOW,
    )


def reply(t: Ticket, author: Actor, visibility: Visibility = Visibility.PUBLIC) -> History:
    history = History(t, NOW)
    add_message(history, message(author, visibility, t), reopen_window=WINDOW, now=NOW)
    return history


@pytest.mark.parametrize("start", [Status.PENDING, Status.ON_HOLD, Status.RESOLVED])
def test_a_customer_reply_brings_a_waiting_or_resolved_ticket_back(start: Status) -> None:
    history = reply(ticket(start, resolved_at=NOW), CUSTOMER)
    assert [c.action for c in history.changes] == [Action.MESSAGE_ADDED, Action.STATUS_CHANGED]
    assert history.ticket.status is Status.OPEN
    assert history.changes[1].actor.type is ActorType.SYSTEM


def test_an_agents_first_public_reply_opens_a_new_ticket() -> None:
    assert reply(ticket(Status.NEW), AGENT).ticket.status is Status.OPEN
    assert reply(ticket(Status.PENDING), AGENT).ticket.status is Status.PENDING


def test_internal_notes_and_system_messages_move_nothing() -> None:
    history = reply(ticket(Status.PENDING), AGENT, Visibility.INTERNAL)
    assert [c.action for c in history.changes] == [Action.NOTE_ADDED]
    assert reply(ticket(Status.NEW), SYSTEM).ticket.status is Status.NEW


def test_who_may_post() -> None:
    open_ticket_ = ticket(Status.OPEN)
    check_may_post(History(open_ticket_, NOW), NewMessage("r", CUSTOMER, Visibility.PUBLIC, "hi"))
    refusals = [
        (open_ticket_, NewMessage("r", Actor(ActorType.CUSTOMER, "c-2"), Visibility.PUBLIC, "hi"), "not_ticket_owner"),
        (open_ticket_, NewMessage("r", CUSTOMER, Visibility.INTERNAL, "hi"), "internal_note_forbidden"),
        (ticket(Status.CLOSED), NewMessage("r", AGENT, Visibility.PUBLIC, "hi"), "ticket_closed"),
    ]
    for t, msg, code in refusals:
        with pytest.raises(DomainError) as caught:
            check_may_post(History(t, NOW), msg)
        assert caught.value.code == code


def test_messages_are_validated() -> None:
    good = Attachment("receipt.png", "image/png", 2048, "https://files.example/receipt.png")
    NewMessage("r", CUSTOMER, Visibility.PUBLIC, "", (good,))
    bad = [
        {"body": ""},
        {"body": "x" * 10_001},
        {"attachments": (good,) * 11},
        {"attachments": (Attachment("", "image/png", 1, "https://x/y"),)},
        {"attachments": (Attachment("a", "image/png", -1, "https://x/y"),)},
        {"attachments": (Attachment("a", "image/png", 1, "file:///etc/passwd"),)},
    ]
    for fields in bad:
        args: dict[str, object] = {"request_id": "r", "author": CUSTOMER, "visibility": Visibility.PUBLIC, "body": "hi"}
        args.update(fields)
        with pytest.raises(InvalidArgument):
            NewMessage(**args)  # type: ignore[arg-type]


def test_an_sla_breach_raises_priority_one_step_at_most_to_urgent() -> None:
    steps = []
    current = ticket(Status.OPEN, Category.OTHER, priority=Priority.LOW)
    for _ in range(4):
        history = History(current, NOW)
        domain.escalate(history, "sla_breach")
        current = history.ticket
        steps.append(current.priority)
    assert steps == [Priority.NORMAL, Priority.HIGH, Priority.URGENT, Priority.URGENT]
    resolved = History(ticket(Status.RESOLVED, Category.OTHER, priority=Priority.LOW), NOW)
    domain.escalate(resolved, "sla_breach")
    assert resolved.changes == []


def test_a_request_fingerprint_ignores_the_request_id_and_nothing_else() -> None:
    fingerprint = domain.request_fingerprint(new(request_id="r-1"))
    assert domain.request_fingerprint(new(request_id="r-2")) == fingerprint
    for change in (
        {"subject": "Other"},
        {"priority": Priority.HIGH},
        {"customer_id": "c-2"},
        {"wallet_context": WalletContext(transaction_ref="tx-2")},
        {"wallet_context": WalletContext(occurred_at=datetime(2026, 5, 1, tzinfo=UTC))},
    ):
        assert domain.request_fingerprint(new(request_id="r-1", **change)) != fingerprint, change
