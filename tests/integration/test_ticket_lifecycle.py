"""The ticket lifecycle over real gRPC, Postgres and JetStream: one event per change, secrets never stored."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg
import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from nats.js import JetStreamContext
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import REGISTRY
from support.common.v1 import common_pb2
from support.routing.v1 import events_pb2 as routing_events
from support.routing.v1 import sla_pb2
from support.ticketing.v1 import events_pb2, ticket_pb2, ticketing_service_pb2_grpc
from support.ticketing.v1 import ticketing_service_pb2 as pb

from services.kit.bus.consumer import EventConsumer
from services.kit.bus.envelope import Envelope
from services.kit.bus.outbox import OutboxRelay
from services.kit.bus.streams import declare_consumer
from services.kit.grpc_server import GrpcServer
from services.kit.logging import configure_logging
from services.kit.service import Runtime
from services.ticketing.__main__ import TicketingSettings, definition
from tests.integration.bus_fixtures import BUS, migrated_pool, stream_messages
from tests.waiting import eventually

pytestmark = pytest.mark.integration

# A valid BIP-39 phrase (fixed entropy) and a Luhn-valid test card number.
PHRASE = "avoid mass luggage choice fabric argue gather cash brand thought elegant divide"
CARD = "4111 1111 1111 1111"

CUSTOMER = ticket_pb2.Actor(type=ticket_pb2.ACTOR_TYPE_CUSTOMER, id="c-1")
AGENT = ticket_pb2.Actor(type=ticket_pb2.ACTOR_TYPE_AGENT, id="a-1")
SUPERVISOR = ticket_pb2.Actor(type=ticket_pb2.ACTOR_TYPE_SUPERVISOR, id="s-1")


@dataclass
class Ticketing:
    stub: ticketing_service_pb2_grpc.TicketingServiceStub
    pool: asyncpg.Pool
    js: JetStreamContext
    log: io.StringIO


@pytest.fixture
async def ticketing(fresh_database_url: str, js: JetStreamContext, spans: object) -> AsyncIterator[Ticketing]:
    log = io.StringIO()
    configure_logging("ticketing", "DEBUG")
    capture = logging.StreamHandler(log)
    capture.setFormatter(logging.getLogger().handlers[0].formatter)
    logging.getLogger().addHandler(capture)
    pool = await migrated_pool(fresh_database_url, "ticketing", "services.ticketing")
    settings = TicketingSettings(database_url=fresh_database_url, reopen_window_s=3600)
    service = definition(settings)
    runtime = Runtime(settings=settings, pool=pool, js=js)
    server = GrpcServer("127.0.0.1", 0, lambda s: service.register(s, runtime), service.grpc_services)
    await server.start()
    workers = [asyncio.create_task(OutboxRelay(pool, js, "ticketing").run())]
    for spec, handler in service.consumers(runtime):
        await declare_consumer(js, spec, BUS)
        workers.append(asyncio.create_task(EventConsumer(js, pool, spec, handler, max_deliver=3).run()))
    channel = grpc.aio.insecure_channel(server.address)
    yield Ticketing(ticketing_service_pb2_grpc.TicketingServiceStub(channel), pool, js, log)
    await channel.close()
    for worker in workers:
        worker.cancel()
    await asyncio.gather(*workers, return_exceptions=True)
    await server.stop(0)
    await pool.close()
    logging.getLogger().removeHandler(capture)


async def create(t: Ticketing, **overrides: object) -> ticket_pb2.Ticket:
    fields: dict[str, object] = {
        "request_id": str(uuid.uuid4()),
        "customer_id": "c-1",
        "channel": ticket_pb2.CHANNEL_APP,
        "category": ticket_pb2.CATEGORY_COMPLAINT,
        "subject": "Refund never arrived",
        "description": "I was charged twice for order 8812",
        "language": "en",
    }
    fields.update(overrides)
    return (await t.stub.CreateTicket(pb.CreateTicketRequest(**fields))).ticket  # type: ignore[arg-type]


async def say(t: Ticketing, ticket_id: str, author: ticket_pb2.Actor, body: str, **kw: object) -> pb.AddMessageResponse:
    return await t.stub.AddMessage(
        pb.AddMessageRequest(
            request_id=str(kw.pop("request_id", uuid.uuid4())),
            ticket_id=ticket_id,
            author=author,
            visibility=kw.pop("visibility", ticket_pb2.MESSAGE_VISIBILITY_PUBLIC),  # type: ignore[arg-type]
            body=body,
            **kw,  # type: ignore[arg-type]
        )
    )


async def status(
    t: Ticketing, ticket_id: str, to: int, actor: ticket_pb2.Actor = AGENT, note: str = ""
) -> ticket_pb2.Ticket:
    request = pb.UpdateTicketRequest(ticket_id=ticket_id, status=to, actor=actor, resolution_note=note)  # type: ignore[arg-type]
    return (await t.stub.UpdateTicket(request)).ticket


def reason(error: grpc.aio.AioRpcError) -> str:
    status_ = rpc_status.from_call(error)
    assert status_ is not None
    info = error_details_pb2.ErrorInfo()
    status_.details[0].Unpack(info)
    return info.reason


async def events_of(t: Ticketing, ticket_id: str, count: int) -> list[tuple[str, int]]:
    """(event type, ticket version) of the ticket's events on the stream, once ``count`` have arrived."""

    async def arrived() -> list[Envelope]:
        found = []
        for m in await stream_messages(t.js, "TICKETING"):
            if m.headers and m.headers.get("ce-subject") == ticket_id:
                found.append(Envelope.from_message(m.headers, m.data))
        return found

    async def enough() -> bool:
        return len(await arrived()) >= count

    await eventually(enough, what=f"{count} events for the ticket")
    return [(e.type.rsplit(".", 1)[-1], version_of(e)) for e in await arrived()]


async def event_traces(t: Ticketing, ticket_id: str) -> dict[int, str]:
    """Ticket version → the trace id in the traceparent of the event that announced it."""
    found = {}
    for m in await stream_messages(t.js, "TICKETING"):
        if m.headers and m.headers.get("ce-subject") == ticket_id:
            event = Envelope.from_message(m.headers, m.data)
            found[version_of(event)] = event.trace["traceparent"].split("-")[1]
    return found


def version_of(event: Envelope) -> int:
    kind = event.type.rsplit(".", 1)[-1]
    if kind == "created":
        return events_pb2.TicketCreated.FromString(event.data).ticket.version
    message = {
        "message_added": events_pb2.MessageAdded,
        "note_added": events_pb2.NoteAdded,
        "status_changed": events_pb2.TicketStatusChanged,
        "priority_changed": events_pb2.TicketPriorityChanged,
        "assigned": events_pb2.TicketAssigned,
        "csat_recorded": events_pb2.CsatRecorded,
        "flagged": events_pb2.TicketFlagged,
    }[kind]
    return message.FromString(event.data).ticket_version  # type: ignore[attr-defined,no-any-return]


async def test_a_complaint_through_its_whole_life_emits_one_event_per_version(ticketing: Ticketing) -> None:
    t = ticketing
    ticket = await create(t)
    assert (ticket.status, ticket.priority, ticket.version) == (
        ticket_pb2.TICKET_STATUS_NEW,
        common_pb2.PRIORITY_NORMAL,
        1,
    )
    # routing assigns it: ticketing applies routing's event (assigned, then new → open)
    assigned = routing_events.TicketAssigned(ticket_id=ticket.id, agent_id="a-1", queue="complaints")
    await t.js.publish(
        "support.routing.v1.ticket.assigned",
        assigned.SerializeToString(),
        headers=Envelope.new(
            type="support.routing.v1.ticket.assigned", source="test", subject=ticket.id, data=b""
        ).headers(),
    )

    async def assigned_applied() -> bool:
        got = (await t.stub.GetTicket(pb.GetTicketRequest(ticket_id=ticket.id))).ticket
        return got.assignee_id == "a-1" and got.status == ticket_pb2.TICKET_STATUS_OPEN

    await eventually(assigned_applied, what="the assignment applied")
    await say(t, ticket.id, AGENT, "Checking with the bank", visibility=ticket_pb2.MESSAGE_VISIBILITY_INTERNAL)
    await say(t, ticket.id, AGENT, "Could you send the order number again?")
    await status(t, ticket.id, ticket_pb2.TICKET_STATUS_PENDING)
    reopened = (await say(t, ticket.id, CUSTOMER, "Order 8812, paid 129.90 CNY")).ticket
    assert reopened.status == ticket_pb2.TICKET_STATUS_OPEN  # the customer's reply brings it back
    await t.stub.UpdateTicket(
        pb.UpdateTicketRequest(ticket_id=ticket.id, priority=common_pb2.PRIORITY_HIGH, actor=SUPERVISOR)
    )
    await status(t, ticket.id, ticket_pb2.TICKET_STATUS_RESOLVED, note="Duplicate charge refunded, bank confirmed")
    rated = (
        await t.stub.RecordCsat(pb.RecordCsatRequest(ticket_id=ticket.id, actor=CUSTOMER, score=4, comment="ok"))
    ).ticket
    closed = await status(t, ticket.id, ticket_pb2.TICKET_STATUS_CLOSED, CUSTOMER)
    assert (rated.csat.score, closed.status, closed.version) == (4, ticket_pb2.TICKET_STATUS_CLOSED, 12)

    events = await events_of(t, ticket.id, 12)
    assert events == [
        ("created", 1),
        ("assigned", 2),
        ("status_changed", 3),  # new → open on assignment
        ("note_added", 4),
        ("message_added", 5),
        ("status_changed", 6),  # open → pending
        ("message_added", 7),
        ("status_changed", 8),  # pending → open on the customer's reply
        ("priority_changed", 9),
        ("status_changed", 10),  # open → resolved
        ("csat_recorded", 11),
        ("status_changed", 12),  # resolved → closed
    ]
    timeline = (await t.stub.ListTimeline(pb.ListTimelineRequest(ticket_id=ticket.id))).entries
    assert [e.version for e in timeline] == list(range(1, 13))
    # Each change's timeline line names the trace its event continues: one trace per request, across hops.
    traces = await event_traces(t, ticket.id)
    assert all(e.trace_id for e in timeline)
    assert [e.trace_id for e in timeline] == [traces[e.version] for e in timeline]
    assert timeline[1].trace_id == timeline[2].trace_id  # assignment and the status change it caused
    assert [e.action for e in timeline][:3] == ["created", "assigned", "status_changed"]
    assert timeline[-1].actor.type == ticket_pb2.ACTOR_TYPE_CUSTOMER


async def test_internal_notes_never_reach_the_customer(ticketing: Ticketing) -> None:
    t = ticketing
    ticket = await create(t)
    secret_note = "customer sounds angry; escalate if no refund by Friday"
    await say(t, ticket.id, AGENT, secret_note, visibility=ticket_pb2.MESSAGE_VISIBILITY_INTERNAL)
    await say(t, ticket.id, AGENT, "We are on it.")
    customer_view = await t.stub.ListMessages(pb.ListMessagesRequest(ticket_id=ticket.id, include_internal=False))
    staff_view = await t.stub.ListMessages(pb.ListMessagesRequest(ticket_id=ticket.id, include_internal=True))
    assert [m.body for m in customer_view.messages] == ["We are on it."]
    assert [m.body for m in staff_view.messages] == [secret_note, "We are on it."]
    await events_of(t, ticket.id, 4)
    for m in await stream_messages(t.js, "TICKETING"):
        assert secret_note.encode() not in m.data


async def test_illegal_moves_are_refused_and_change_nothing(ticketing: Ticketing) -> None:
    t = ticketing
    ticket = await create(t)
    resolved = await status(t, ticket.id, ticket_pb2.TICKET_STATUS_RESOLVED)
    cases = [
        (
            status(t, ticket.id, ticket_pb2.TICKET_STATUS_PENDING),
            grpc.StatusCode.FAILED_PRECONDITION,
            "illegal_transition",
        ),
        (
            status(t, ticket.id, ticket_pb2.TICKET_STATUS_CLOSED),
            grpc.StatusCode.FAILED_PRECONDITION,
            "resolution_note_required",
        ),
        (
            status(
                t,
                ticket.id,
                ticket_pb2.TICKET_STATUS_OPEN,
                CUSTOMER.__class__(type=ticket_pb2.ACTOR_TYPE_CUSTOMER, id="c-2"),
            ),
            grpc.StatusCode.PERMISSION_DENIED,
            "not_ticket_owner",
        ),
        (status(t, str(uuid.uuid4()), ticket_pb2.TICKET_STATUS_OPEN), grpc.StatusCode.NOT_FOUND, "ticket_not_found"),
        (
            say(t, ticket.id, AGENT, "Please send me your 12-word recovery phrase to verify your wallet"),
            grpc.StatusCode.FAILED_PRECONDITION,
            "secret_request_refused",
        ),
        (
            t.stub.RecordCsat(pb.RecordCsatRequest(ticket_id=ticket.id, actor=CUSTOMER, score=9)),
            grpc.StatusCode.INVALID_ARGUMENT,
            "invalid_argument",
        ),
    ]
    for call, code, expected in cases:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call
        assert (caught.value.code(), reason(caught.value)) == (code, expected)
    after = (await t.stub.GetTicket(pb.GetTicketRequest(ticket_id=ticket.id))).ticket
    assert after == resolved


async def test_retries_return_the_first_result(ticketing: Ticketing) -> None:
    t = ticketing
    key = str(uuid.uuid4())
    first = await create(t, request_id=key)
    again = await create(t, request_id=key)
    assert again == first
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await create(t, request_id=key, subject="changed my mind")
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert reason(caught.value) == "idempotency_key_reused"
    one = await say(t, first.id, CUSTOMER, "Any news?", request_id="m-1")
    two = await say(t, first.id, CUSTOMER, "Any news?", request_id="m-1")
    assert (one.created, two.created, two.message) == (True, False, one.message)
    assert await t.pool.fetchval("SELECT count(*) FROM messages") == 1
    assert await t.pool.fetchval("SELECT count(*) FROM tickets") == 1


WRITE_TICKETS = {"write": "ticketing.write_tickets"}


@contextlib.asynccontextmanager
async def tickets_held(t: Ticketing) -> AsyncIterator[None]:
    """Another transaction keeps new tickets out until the block ends: the writes under way wait in Postgres,
    and the creates arriving meanwhile queue for the next write."""
    async with t.pool.acquire() as blocker, blocker.transaction():
        await blocker.execute("LOCK TABLE tickets IN EXCLUSIVE MODE")
        yield


WAITING_ON_LOCKS = (
    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()"
)


async def writes_under_way(t: Ticketing, *subjects: str) -> list[asyncio.Task[ticket_pb2.Ticket]]:
    """One create per subject, each sent once the one before waits in Postgres: one write each."""
    calls = []
    for subject in subjects:
        calls.append(asyncio.create_task(create(t, subject=subject)))
        count = len(calls)

        async def waiting(count: int = count) -> bool:
            return await t.pool.fetchval(WAITING_ON_LOCKS) == count

        await eventually(waiting, what=f"{count} writes waiting in Postgres")
    return calls


async def queued(count: int) -> None:
    async def reached() -> bool:
        return REGISTRY.get_sample_value("supportdesk_coalesced_queued_calls", WRITE_TICKETS) == count

    await eventually(reached, what=f"{count} creates queued behind the writes under way")


async def test_creates_arriving_together_are_written_together_and_each_whole(
    ticketing: Ticketing, spans: InMemorySpanExporter
) -> None:
    t = ticketing
    async with tickets_held(t):
        calls = await writes_under_way(t, "Card declined 0", "Card declined 1")
        calls += [asyncio.create_task(create(t, subject=f"Card declined {n}")) for n in range(2, 10)]
        await queued(8)
    tickets = await asyncio.gather(*calls)
    assert len({ticket.id for ticket in tickets}) == 10
    sizes = sorted(
        s.attributes["batch.size"]
        for s in spans.get_finished_spans()
        if s.name == WRITE_TICKETS["write"] and s.attributes
    )
    assert sizes == [1, 1, 8]
    for ticket in tickets:
        ticket_id = uuid.UUID(ticket.id)
        assert await t.pool.fetchval("SELECT count(*) FROM timeline WHERE ticket_id = $1", ticket_id) == 1
        assert await t.pool.fetchval("SELECT count(*) FROM outbox WHERE subject = $1", ticket.id) == 1

    async def all_published() -> bool:
        return await t.pool.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NOT NULL") == 10

    await eventually(all_published, what="the relay published every created ticket's event")


async def test_a_create_the_database_refuses_fails_alone_and_the_others_it_was_written_with_succeed(
    ticketing: Ticketing,
) -> None:
    t = ticketing
    async with tickets_held(t):
        first = await writes_under_way(t, "Warm-up 0", "Warm-up 1")
        together = [
            asyncio.create_task(create(t, subject=subject)) for subject in ("Fine", "Null \x00 byte", "Also fine")
        ]
        await queued(3)
    outcomes = await asyncio.gather(*first, *together, return_exceptions=True)
    refused = outcomes[3]
    assert isinstance(refused, grpc.aio.AioRpcError)
    assert refused.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [o.subject for o in outcomes if isinstance(o, ticket_pb2.Ticket)] == [
        "Warm-up 0",
        "Warm-up 1",
        "Fine",
        "Also fine",
    ]
    assert await t.pool.fetchval("SELECT count(*) FROM tickets") == 4
    assert await t.pool.fetchval("SELECT count(*) FROM timeline") == 4
    assert await t.pool.fetchval("SELECT count(*) FROM outbox") == 4


async def test_stale_version_is_a_conflict(ticketing: Ticketing) -> None:
    t = ticketing
    ticket = await create(t)
    await status(t, ticket.id, ticket_pb2.TICKET_STATUS_OPEN)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await t.stub.UpdateTicket(
            pb.UpdateTicketRequest(
                ticket_id=ticket.id, status=ticket_pb2.TICKET_STATUS_PENDING, actor=AGENT, expected_version=1
            )
        )
    assert reason(caught.value) == "version_conflict"


async def test_list_tickets_filters_and_pages(ticketing: Ticketing) -> None:
    t = ticketing
    mine = [await create(t, customer_id="c-9") for _ in range(5)]
    await create(t, customer_id="c-10")
    seen: list[str] = []
    token = ""
    while True:
        page = await t.stub.ListTickets(pb.ListTicketsRequest(customer_id="c-9", page_size=2, page_token=token))
        seen += [x.id for x in page.tickets]
        token = page.next_page_token
        if not token:
            break
    assert seen == [x.id for x in reversed(mine)]
    opened = await t.stub.ListTickets(pb.ListTicketsRequest(statuses=[ticket_pb2.TICKET_STATUS_OPEN]))
    assert list(opened.tickets) == []


async def test_priority_rules_are_editable_within_limits(ticketing: Ticketing) -> None:
    t = ticketing
    admin = ticket_pb2.Actor(type=ticket_pb2.ACTOR_TYPE_ADMIN, id="admin-1")
    rule = ticket_pb2.PriorityRule(category=ticket_pb2.CATEGORY_OTHER, priority=common_pb2.PRIORITY_HIGH)
    await t.stub.UpdatePriorityRule(pb.UpdatePriorityRuleRequest(rule=rule, actor=admin))
    assert (await create(t, category=ticket_pb2.CATEGORY_OTHER)).priority == common_pb2.PRIORITY_HIGH
    low = ticket_pb2.PriorityRule(category=ticket_pb2.CATEGORY_PAYMENT_FAILED, priority=common_pb2.PRIORITY_LOW)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await t.stub.UpdatePriorityRule(pb.UpdatePriorityRuleRequest(rule=low, actor=admin))
    assert reason(caught.value) == "priority_rule_refused"
    rules = (await t.stub.GetPriorityRules(pb.GetPriorityRulesRequest())).rules
    assert len(rules) == 10


async def test_a_seeded_recovery_phrase_is_nowhere_but_the_customer_is_warned(
    ticketing: Ticketing, fresh_database_url: str
) -> None:
    t = ticketing
    occurred = Timestamp()
    occurred.GetCurrentTime()
    ticket = await create(
        t,
        category=ticket_pb2.CATEGORY_SUSPICIOUS_ACTIVITY,
        subject="Someone took my coins",
        description=f"Support asked me to verify, I sent: {PHRASE}",
        language="zh",
        wallet_context=ticket_pb2.WalletContext(error_code=PHRASE, occurred_time=occurred),
    )
    replied = await say(t, ticket.id, CUSTOMER, f"my words: {PHRASE.upper()} and card {CARD}")
    assert "secret_exposed" in replied.ticket.flags
    assert set(replied.message.redactions) >= {"recovery_phrase", "card_number"}
    messages = (await t.stub.ListMessages(pb.ListMessagesRequest(ticket_id=ticket.id))).messages
    warnings = [m for m in messages if m.author.type == ticket_pb2.ACTOR_TYPE_SYSTEM]
    assert len(warnings) == 2  # one per exposure, in the customer's language
    assert all("助记词" in w.body for w in warnings)
    assert [kind for kind, _ in await events_of(t, ticket.id, 5)] == [
        "created",
        "flagged",
        "message_added",
        "message_added",
        "message_added",
    ]

    words = PHRASE.split()
    fragments = [" ".join(words[i : i + 4]) for i in range(0, 12, 4)] + ["4111111111111111", CARD]

    def leaks(text: str) -> list[str]:
        lowered = text.lower()
        return [f for f in fragments if f.lower() in lowered]

    conn = await asyncpg.connect(fresh_database_url)
    try:
        tables = await conn.fetch(
            "SELECT table_schema, table_name FROM information_schema.tables WHERE table_schema = 'ticketing'"
        )
        for table in tables:
            rows = await conn.fetch(f'SELECT * FROM "{table["table_schema"]}"."{table["table_name"]}"')  # noqa: S608 - catalogue names
            dump = "\n".join(json.dumps(dict(r), default=repr, ensure_ascii=False) for r in rows)
            assert leaks(dump) == [], f"secret found in {table['table_name']}"
    finally:
        await conn.close()
    for m in await stream_messages(t.js, "TICKETING"):
        assert leaks(m.data.decode("utf-8", "replace")) == []
        assert leaks(json.dumps(dict(m.headers or {}))) == []
    assert leaks(t.log.getvalue()) == []


async def test_an_update_applies_whole_or_not_at_all(ticketing: Ticketing) -> None:
    t = ticketing
    ticket = await create(t, category=ticket_pb2.CATEGORY_OTHER)
    # The priority change is valid, the status change is not: neither may be applied.
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await t.stub.UpdateTicket(
            pb.UpdateTicketRequest(
                ticket_id=ticket.id,
                actor=AGENT,
                priority=common_pb2.PRIORITY_HIGH,
                status=ticket_pb2.TICKET_STATUS_CLOSED,
            )
        )
    assert reason(caught.value) == "illegal_transition"
    assert (await t.stub.GetTicket(pb.GetTicketRequest(ticket_id=ticket.id))).ticket == ticket
    both = await t.stub.UpdateTicket(
        pb.UpdateTicketRequest(
            ticket_id=ticket.id, actor=AGENT, priority=common_pb2.PRIORITY_HIGH, status=ticket_pb2.TICKET_STATUS_OPEN
        )
    )
    assert (both.ticket.priority, both.ticket.status, both.ticket.version) == (
        common_pb2.PRIORITY_HIGH,
        ticket_pb2.TICKET_STATUS_OPEN,
        3,
    )


async def test_an_sla_breach_that_asks_for_it_raises_the_priority(ticketing: Ticketing) -> None:
    t = ticketing
    ticket = await create(t, category=ticket_pb2.CATEGORY_OTHER)
    for raise_priority in (False, True):
        breach = routing_events.SlaBreached(
            clock=sla_pb2.SlaClock(ticket_id=ticket.id, metric=sla_pb2.SLA_METRIC_FIRST_RESPONSE),
            escalation=sla_pb2.SlaEscalation(raise_priority=raise_priority, notify_supervisor=True),
        )
        envelope = Envelope.new(
            type="support.routing.v1.sla.breached", source="test", subject=ticket.id, data=breach.SerializeToString()
        )
        await t.js.publish(envelope.type, envelope.data, headers=envelope.headers())

    async def raised() -> bool:
        got = (await t.stub.GetTicket(pb.GetTicketRequest(ticket_id=ticket.id))).ticket
        return got.priority == common_pb2.PRIORITY_HIGH

    await eventually(raised, what="the priority raised from normal to high")
    timeline = (await t.stub.ListTimeline(pb.ListTimelineRequest(ticket_id=ticket.id))).entries
    assert [(e.action, e.actor.id) for e in timeline] == [("created", "c-1"), ("priority_changed", "sla_breach")]
