"""Ticketing use cases: each change, its timeline lines and the events announcing it commit together.

Text from customers and agents is redacted before anything else sees it: nothing below ``_redacted`` ever
holds a recovery phrase, a private key or a full card number.
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta

import asyncpg

from services.kit.bus.envelope import Envelope
from services.kit.bus.store import add_to_outbox
from services.kit.coalesce import Coalescer
from services.kit.db import DB_UNAVAILABLE_ERRORS, Connection
from services.kit.errors import FailedPrecondition, NotFound
from services.kit.idempotency import check_replay, key_in_flight, key_reused
from services.kit.pagination import decode_token, encode_token, page_size
from services.kit.telemetry import current_trace_id
from services.ticketing import conversation, convert, domain, store
from services.ticketing.conversation import Message, NewMessage, Visibility
from services.ticketing.domain import SYSTEM, Actor, Category, Flag, History, NewTicket, Priority, Status, Ticket
from services.ticketing.metrics import redact
from services.ticketing.redaction import asks_for_secret, secret_warning
from services.ticketing.store import TicketFilter, TimelineEntry

Clock = Callable[[], datetime]


def _utcnow() -> datetime:
    return datetime.now(UTC)


class _PriorityRulesCache:
    """The priority rules, read at most once per ``max_age_s``: every create needs them, an admin changes them
    rarely. This replica sees its own changes at once, other replicas' within ``max_age_s``."""

    def __init__(self, max_age_s: float) -> None:
        self._max_age_s = max_age_s
        self._rules: dict[Category, Priority] | None = None
        self._read_at = 0.0

    async def get(self, pool: asyncpg.Pool) -> dict[Category, Priority]:
        if self._rules is None or time.monotonic() - self._read_at > self._max_age_s:
            async with pool.acquire() as conn:
                self._rules, self._read_at = await store.priority_rules(conn), time.monotonic()
        return self._rules

    def forget(self) -> None:
        self._rules = None


class TicketingService:
    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        reopen_window: timedelta,
        priority_rules_max_age_s: float = 5.0,
        clock: Clock = _utcnow,
    ) -> None:
        self._pool = pool
        self._reopen_window = reopen_window
        self._rules = _PriorityRulesCache(priority_rules_max_age_s)
        self._clock = clock
        # Plain creates arriving together share one statement and one commit (ADR 0063).
        self._openings = Coalescer(
            self._write_openings,
            name="ticketing.write_tickets",
            key=lambda opened: opened.request_id,
            isolate=lambda error: not isinstance(error, DB_UNAVAILABLE_ERRORS),
            # Two: one write collects what arrives while the other waits on its commit.
            concurrency=2,
        )

    async def create_ticket(self, new: NewTicket) -> tuple[Ticket, bool]:
        """Open a ticket; a retry with the same request_id returns the original and ``created=False``.

        The same request_id with other content is ``idempotency_key_reused``; while another call with it is
        still being served, ``idempotency_key_in_flight`` (both failed preconditions: retry, or use a new id).
        """
        fingerprint = domain.request_fingerprint(new)
        new, findings = _redacted_ticket(new)
        now = self._clock()
        candidate, created = domain.open_ticket(new, uuid.uuid4(), now, await self._rules.get(self._pool))
        if not findings:
            return await self._create_plain(candidate, created, new.request_id, fingerprint)
        async with self._pool.acquire() as conn:
            return await self._create_flagged(conn, candidate, created, new.request_id, fingerprint, findings, now)

    async def _create_plain(
        self, candidate: Ticket, created: domain.Change, request_id: str, fingerprint: str
    ) -> tuple[Ticket, bool]:
        """The common case, nothing to flag: claim, ticket, timeline line and event in one statement, shared
        with the plain creates arriving meanwhile."""
        event_type, data = convert.event_for(candidate, created, {})
        event = Envelope.new(type=event_type, source=convert.EVENT_SOURCE, subject=str(candidate.id), data=data)
        opened = store.AnnouncedTicket(candidate, request_id, fingerprint, created, current_trace_id(), event)
        claimed, is_new = await self._openings.submit(opened)
        if not claimed:
            raise key_in_flight()
        if is_new:
            return candidate, True
        async with self._pool.acquire() as conn:
            return await self._existing(conn, request_id, fingerprint), False

    async def _write_openings(self, opened: Sequence[store.AnnouncedTicket]) -> list[store.Written]:
        async with self._pool.acquire() as conn:
            return await store.insert_announced_tickets(conn, opened)

    async def _create_flagged(
        self,
        conn: Connection,
        candidate: Ticket,
        created: domain.Change,
        request_id: str,
        fingerprint: str,
        findings: tuple[object, ...],
        now: datetime,
    ) -> tuple[Ticket, bool]:
        """A secret was redacted: the ticket is also flagged and the customer warned, in one transaction."""
        async with conn.transaction():
            if not await store.claim_request(conn, request_id):
                raise key_in_flight()
            ticket = await store.insert_ticket(conn, candidate, request_id, fingerprint)
            if ticket is None:
                return await self._existing(conn, request_id, fingerprint), False
            history = History(ticket, now)
            history.changes.append(created)
            messages = self._warn_if_exposed(history, findings, "create", now)
            await self._persist(conn, history, messages, ticket_changed=len(history.changes) > 1)
        return history.ticket, True

    async def _existing(self, conn: Connection, request_id: str, fingerprint: str) -> Ticket:
        """The ticket ``request_id`` opened, if this request asks for the same (an empty fingerprint predates
        fingerprints and matches anything)."""
        existing = await store.ticket_by_request_id(conn, request_id)
        if existing is None:  # the conflicting insert rolled back after all; rare, safe to retry
            raise asyncpg.SerializationError("concurrent create with the same request_id")
        original, original_fingerprint = existing
        check_replay(original_fingerprint, fingerprint, "a ticket")
        return original

    async def get_ticket(self, ticket_id: str) -> Ticket:
        async with self._pool.acquire() as conn:
            ticket = await store.get_ticket(conn, _ticket_key(ticket_id))
        if ticket is None:
            raise _not_found(ticket_id)
        return ticket

    async def list_tickets(self, where: TicketFilter, requested_size: int, token: str) -> tuple[list[Ticket], str]:
        size = page_size(requested_size)
        cursor = decode_token(token)
        before = (datetime.fromisoformat(cursor["t"]), uuid.UUID(cursor["id"])) if cursor else None
        async with self._pool.acquire() as conn:
            tickets = await store.list_tickets(conn, where, before=before, limit=size)
        last = tickets[-1] if len(tickets) == size else None
        return tickets, encode_token({"t": last.created_at.isoformat(), "id": str(last.id)}) if last else ""

    async def update_ticket(
        self,
        ticket_id: str,
        actor: Actor,
        *,
        status: Status | None,
        priority: Priority | None,
        resolution_note: str,
        expected_version: int,
    ) -> Ticket:
        """Change priority and/or status in one transaction: both apply or neither does."""
        domain.check_actor(actor)
        note = redact(resolution_note).text
        now = self._clock()

        def mutate(history: History) -> list[Message]:
            if priority is not None:
                domain.change_priority(history, priority, actor)
            if status is not None:
                domain.change_status(
                    history, status, actor, resolution_note=note, reopen_window=self._reopen_window, now=now
                )
            return []

        ticket, _ = await self._change(ticket_id, expected_version, mutate)
        return ticket

    async def add_message(self, ticket_id: str, new: NewMessage) -> tuple[Message, Ticket, bool]:
        """Add a message; a retry with the same request_id returns the first one and ``created=False``.

        The same request_id with other content is ``idempotency_key_reused``.
        """
        domain.check_actor(new.author)
        if new.author.type.is_staff and new.visibility is Visibility.PUBLIC and asks_for_secret(new.body):
            # Fake-support scams ask for exactly this; the real support never does.
            raise FailedPrecondition(
                "secret_request_refused",
                "support never asks customers for recovery phrases, private keys or passwords; message not sent",
            )
        scan = redact(new.body)
        new = dataclasses.replace(
            new,
            body=scan.text,
            attachments=tuple(dataclasses.replace(a, name=redact(a.name).text) for a in new.attachments),
        )
        now = self._clock()
        key = _ticket_key(ticket_id)
        async with self._pool.acquire() as conn, conn.transaction():
            ticket = await store.lock_ticket(conn, key)
            if ticket is None:
                raise _not_found(ticket_id)
            # The ticket's row lock makes a concurrent retry wait here for the first call, then replay it.
            existing = await store.message_by_request_id(conn, key, new.request_id)
            if existing is not None:
                if (existing.author, existing.visibility, existing.body, existing.attachments) != (
                    new.author,
                    new.visibility,
                    new.body,
                    new.attachments,
                ):
                    raise key_reused("a message")
                return existing, ticket, False
            history = History(ticket, now)
            conversation.check_may_post(history, new)
            message = Message(
                id=uuid.uuid4(),
                ticket_id=key,
                author=new.author,
                visibility=new.visibility,
                body=new.body,
                attachments=new.attachments,
                redactions=tuple(kind.value for kind in scan.findings),
                created_at=now,
            )
            conversation.add_message(history, message, reopen_window=self._reopen_window, now=now)
            messages = [message, *self._warn_if_exposed(history, scan.findings, str(message.id), now)]
            await self._persist(conn, history, messages, message_request_id=new.request_id)
        return message, history.ticket, True

    async def list_messages(
        self, ticket_id: str, *, include_internal: bool, requested_size: int, token: str
    ) -> tuple[list[Message], str]:
        size = page_size(requested_size)
        cursor = decode_token(token)
        key = _ticket_key(ticket_id)
        async with self._pool.acquire() as conn:
            if await store.get_ticket(conn, key) is None:
                raise _not_found(ticket_id)
            rows = await store.list_messages(
                conn, key, include_internal=include_internal, after_seq=cursor["seq"] if cursor else 0, limit=size
            )
        next_token = encode_token({"seq": rows[-1][0]}) if len(rows) == size else ""
        return [m for _, m in rows], next_token

    async def timeline(self, ticket_id: str, requested_size: int, token: str) -> tuple[list[TimelineEntry], str]:
        size = page_size(requested_size)
        cursor = decode_token(token)
        key = _ticket_key(ticket_id)
        async with self._pool.acquire() as conn:
            if await store.get_ticket(conn, key) is None:
                raise _not_found(ticket_id)
            entries = await store.list_timeline(conn, key, after_id=cursor["id"] if cursor else 0, limit=size)
        return entries, encode_token({"id": entries[-1].id}) if len(entries) == size else ""

    async def record_csat(self, ticket_id: str, actor: Actor, score: int, comment: str) -> Ticket:
        domain.check_actor(actor)
        comment = redact(comment).text
        now = self._clock()

        def mutate(history: History) -> list[Message]:
            domain.record_csat(history, actor, score, comment, now)
            return []

        ticket, _ = await self._change(ticket_id, 0, mutate)
        return ticket

    async def priority_rules(self) -> dict[Category, Priority]:
        async with self._pool.acquire() as conn:
            return await store.priority_rules(conn)

    async def set_priority_rule(self, category: Category, priority: Priority, actor: Actor) -> None:
        domain.check_actor(actor)
        domain.check_priority_rule(category, priority)
        async with self._pool.acquire() as conn:
            await store.set_priority_rule(conn, category, priority, f"{actor.type}:{actor.id}")
        self._rules.forget()

    async def apply_assignment(self, conn: Connection, ticket_id: str, agent_id: str) -> None:
        """Routing assigned the ticket; runs inside the consumer's inbox transaction."""
        ticket = await store.lock_ticket(conn, _ticket_key(ticket_id))
        if ticket is None:
            raise NotFound("ticket_not_found", f"assignment for unknown ticket {ticket_id!r}")
        history = History(ticket, self._clock())
        domain.assign(history, agent_id)
        await self._persist(conn, history, [])

    async def apply_escalation(self, conn: Connection, ticket_id: str, reason: str) -> None:
        """An SLA breach asked for a higher priority; runs inside the consumer's inbox transaction."""
        ticket = await store.lock_ticket(conn, _ticket_key(ticket_id))
        if ticket is None:
            raise NotFound("ticket_not_found", f"escalation for unknown ticket {ticket_id!r}")
        history = History(ticket, self._clock())
        domain.escalate(history, reason)
        await self._persist(conn, history, [])

    async def _change(
        self, ticket_id: str, expected_version: int, mutate: Callable[[History], list[Message]]
    ) -> tuple[Ticket, list[Message]]:
        key = _ticket_key(ticket_id)
        async with self._pool.acquire() as conn, conn.transaction():
            ticket = await store.lock_ticket(conn, key)
            if ticket is None:
                raise _not_found(ticket_id)
            if expected_version and ticket.version != expected_version:
                raise FailedPrecondition(
                    "version_conflict",
                    f"the ticket is at version {ticket.version}, not {expected_version}; reload and retry",
                    current_version=str(ticket.version),
                )
            history = History(ticket, self._clock())
            messages = mutate(history)
            await self._persist(conn, history, messages)
        return history.ticket, messages

    def _warn_if_exposed(
        self, history: History, findings: tuple[object, ...], source: str, now: datetime
    ) -> list[Message]:
        """Flag the ticket and tell the customer, in their language, that support never asks for secrets."""
        if not findings:
            return []
        domain.flag(history, Flag.SECRET_EXPOSED, tuple(str(getattr(f, "value", f)) for f in findings))
        warning = Message(
            id=uuid.uuid4(),
            ticket_id=history.ticket.id,
            author=SYSTEM,
            visibility=Visibility.PUBLIC,
            body=secret_warning(history.ticket.language),
            attachments=(),
            redactions=(),
            created_at=now,
        )
        conversation.add_message(history, warning, reopen_window=self._reopen_window, now=now)
        return [warning]

    async def _persist(
        self,
        conn: Connection,
        history: History,
        messages: list[Message],
        *,
        message_request_id: str = "",
        ticket_changed: bool = True,
    ) -> None:
        if not history.changes:
            return
        ticket = history.ticket
        if ticket_changed:
            await store.update_ticket(conn, ticket)
        for message in messages:
            request_id = message_request_id if message.author != SYSTEM else f"system:{message.id}"
            await store.insert_message(conn, message, request_id)
        await store.append_timeline(conn, ticket.id, history.changes, trace_id=current_trace_id(), at=ticket.updated_at)
        by_id: Mapping[str, Message] = {str(m.id): m for m in messages}
        await add_to_outbox(
            conn,
            [
                Envelope.new(type=event_type, source=convert.EVENT_SOURCE, subject=str(ticket.id), data=data)
                for event_type, data in (convert.event_for(ticket, change, by_id) for change in history.changes)
            ],
        )


def _redacted_ticket(new: NewTicket) -> tuple[NewTicket, tuple[object, ...]]:
    """The request with secrets removed from every free-text field, and the kinds found."""
    findings: list[object] = []

    def clean(text: str) -> str:
        result = redact(text)
        findings.extend(f for f in result.findings if f not in findings)
        return result.text

    wallet = new.wallet_context
    return (
        dataclasses.replace(
            new,
            subject=clean(new.subject),
            description=clean(new.description),
            wallet_context=dataclasses.replace(
                wallet,
                transaction_ref=clean(wallet.transaction_ref),
                error_code=clean(wallet.error_code),
                device=clean(wallet.device),
                app_version=clean(wallet.app_version),
            ),
        ),
        tuple(findings),
    )


def _ticket_key(ticket_id: str) -> uuid.UUID:
    try:
        return uuid.UUID(ticket_id)
    except ValueError:
        raise _not_found(ticket_id) from None


def _not_found(ticket_id: str) -> NotFound:
    return NotFound("ticket_not_found", f"no ticket {ticket_id!r}")
