"""notify against real NATS, Postgres, a local HTTP receiver and a local SMTP server."""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from nats.js import JetStreamContext
from opentelemetry import context as otel_context
from support.ticketing.v1 import ticket_pb2

from services.kit.bus.consumer import Delivered
from services.kit.bus.envelope import MSG_ID_HEADER
from services.kit.bus.outbox import OutboxRelay
from services.kit.errors import FailedPrecondition
from services.notify.__main__ import CONSUMERS
from services.notify.deliveries.admin import DeliveryAdmin
from services.notify.deliveries.model import DeliveryChannel, DeliveryStatus, Endpoint
from services.notify.deliveries.store import claim_due
from services.notify.delivery_rules import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify
from services.notify.domain import SUPERVISORS, Channel, Preferences
from services.notify.inbox import Inbox
from services.notify.service import EventHandler
from tests.integration import notify_events as ev
from tests.integration.bus_fixtures import migrated_pool, stream_messages
from tests.integration.notify_fixtures import (
    Mailbox,
    Notify,
    Receiver,
    http_receiver,
    notify_settings,
    running_notify,
    smtp_server,
)
from tests.waiting import eventually

pytestmark = pytest.mark.integration


@pytest.fixture
def smtp() -> Iterator[tuple[Mailbox, int]]:
    with smtp_server() as server:
        yield server


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with http_receiver() as running:
        yield running


@pytest.fixture
async def notify(fresh_database_url: str, js: JetStreamContext, smtp: tuple[Mailbox, int]) -> AsyncIterator[Notify]:
    async with running_notify(fresh_database_url, js, notify_settings(fresh_database_url, smtp[1])) as running:
        yield running


async def consumers_idle(js: JetStreamContext) -> bool:
    """Every notify consumer has handled and acknowledged everything delivered to it."""
    for spec in CONSUMERS:
        info = await js.consumer_info(spec.stream.name, spec.durable)
        if info.num_pending or info.num_ack_pending:
            return False
    return True


async def kinds_by_recipient(notify: Notify) -> Counter[tuple[str, str]]:
    rows = await notify.pool.fetch("SELECT user_id, kind FROM notifications")
    return Counter((r["user_id"], r["kind"]) for r in rows)


async def test_each_event_reaches_each_intended_recipient_exactly_once(notify: Notify, js: JetStreamContext) -> None:
    tid = str(uuid.uuid4())
    agent, customer = ticket_pb2.ACTOR_TYPE_AGENT, ticket_pb2.ACTOR_TYPE_CUSTOMER
    events = [
        ev.ticket_created(tid, "c-1", category=ticket_pb2.CATEGORY_COMPLAINT),
        ev.offer_created(tid, "a-1"),
        ev.ticket_assigned(tid, "a-1", version=2),
        ev.message_added(tid, author=agent, customer="c-1", agent="a-1", version=3, body="Refund sent"),
        ev.message_added(tid, author=customer, customer="c-1", agent="a-1", version=4, body="Thanks!"),
        ev.flagged(tid, "c-1", version=5),
        ev.resolved(tid, "c-1", version=6),
        ev.sla_breached(tid),
        ev.escalated(tid),
        ev.account_alert("c-1"),
    ]
    for event in events:
        await notify.publish(event)

    async def assignment_known() -> bool:
        return await notify.pool.fetchval("SELECT assignee_id FROM tickets WHERE ticket_id = $1", tid) == "a-1"

    # SLA events come on routing's stream; a warning tells whoever holds the ticket by then.
    await eventually(assignment_known, what="notify to learn who holds the ticket")
    events.append(ev.sla_warning(tid))
    await notify.publish(events[-1])
    # Every event again under a new message id: past JetStream's duplicate window, only the inbox stops them.
    for event in events:
        headers = {**event.headers(), MSG_ID_HEADER: str(uuid.uuid4())}
        await js.publish(event.type, event.data, headers=headers)

    expected = Counter(
        {
            ("c-1", "ticket.received"): 1,
            (SUPERVISORS, "complaint.opened"): 1,
            ("a-1", "offer.received"): 1,
            ("c-1", "agent.assigned"): 1,
            ("a-1", "ticket.assigned"): 1,
            ("c-1", "agent.replied"): 1,
            ("a-1", "customer.replied"): 1,
            (SUPERVISORS, "secret.exposed"): 1,
            ("c-1", "ticket.resolved"): 1,
            ("c-1", "csat.requested"): 1,
            ("a-1", "sla.warning"): 1,
            (SUPERVISORS, "sla.breached"): 1,
            (SUPERVISORS, "ticket.escalated"): 1,
            ("c-1", "security.suspicious_login"): 1,
        }
    )

    async def all_told() -> bool:
        consumed = await notify.pool.fetchval("SELECT count(*) FROM inbox")
        return consumed == len(events) and await kinds_by_recipient(notify) == expected

    await eventually(all_told, what="every recipient told once")
    assert await kinds_by_recipient(notify) == expected

    async def announced() -> bool:
        return len(await stream_messages(js, "NOTIFY")) == sum(expected.values())

    await eventually(announced, what="one notification.created per notification")
    subjects = Counter(m.headers["ce-subject"] for m in await stream_messages(js, "NOTIFY") if m.headers)
    assert subjects == Counter({"c-1": 6, "a-1": 4, SUPERVISORS: 4})


async def test_templates_follow_the_recipients_locale(notify: Notify) -> None:
    inbox = Inbox(notify.pool, replay_overlap_s=0)
    await inbox.save_preferences(Preferences(user_id="c-en", locale="en"))
    await notify.publish(ev.ticket_created(str(uuid.uuid4()), "c-zh", language="zh"))
    await notify.publish(ev.ticket_created(str(uuid.uuid4()), "c-en", language="zh"))

    async def both() -> bool:
        return await notify.pool.fetchval("SELECT count(*) FROM notifications") == 2

    await eventually(both, what="two notifications")
    titles = dict(await notify.pool.fetch("SELECT user_id, title FROM notifications"))
    assert titles == {"c-zh": "我们已收到您的工单", "c-en": "We have your ticket"}


async def endpoint(notify: Notify, url: str, *types: str) -> Endpoint:
    created, _ = await DeliveryAdmin(notify.pool).create_endpoint(
        str(uuid.uuid4()), Endpoint(uuid.uuid4(), "partner", url, "", tuple(types))
    )
    return created


async def deliveries_of(notify: Notify, target: Endpoint) -> list[Any]:
    rows = await notify.pool.fetch("SELECT id, status, attempts FROM deliveries WHERE target = $1", str(target.id))
    return [dict(r) for r in rows]


async def test_webhooks_are_signed_retried_on_schedule_dead_lettered_and_replayed(
    notify: Notify, receiver: Receiver
) -> None:
    ok = await endpoint(notify, f"{receiver.base_url}/ok", "support.ticketing.v1.ticket.*")
    failing = await endpoint(notify, f"{receiver.base_url}/fail", ">")
    hanging = await endpoint(notify, f"{receiver.base_url}/hang", "support.ticketing.>")
    ignored = await endpoint(notify, f"{receiver.base_url}/ok-routing", "support.routing.>")
    event = ev.ticket_created(str(uuid.uuid4()), "c-1")
    await notify.publish(event)

    async def delivered() -> bool:
        return [d["status"] for d in await deliveries_of(notify, ok)] == ["delivered"]

    # The hanging endpoint holds its attempt for its whole timeout; the healthy one is not kept waiting.
    await eventually(delivered, what="the healthy endpoint's delivery")
    [got] = receiver.at("/ok")
    assert verify(
        ok.secret,
        got.headers[TIMESTAMP_HEADER.lower()],
        got.body,
        got.headers[SIGNATURE_HEADER.lower()],
        now=time.time(),
    )
    assert not verify(
        failing.secret,
        got.headers[TIMESTAMP_HEADER.lower()],
        got.body,
        got.headers[SIGNATURE_HEADER.lower()],
        now=time.time(),
    )
    assert not verify(
        ok.secret,
        got.headers[TIMESTAMP_HEADER.lower()],
        got.body + b" ",
        got.headers[SIGNATURE_HEADER.lower()],
        now=time.time(),
    )
    assert b'"type":"support.ticketing.v1.ticket.created"' in got.body
    assert await deliveries_of(notify, ignored) == []

    admin = DeliveryAdmin(notify.pool)

    async def dead() -> bool:
        return [d["status"] for d in await deliveries_of(notify, failing)] == ["dead_lettered"]

    await eventually(dead, what="the failing endpoint's delivery to be dead-lettered")
    [letter] = await deliveries_of(notify, failing)
    record = await admin.delivery(str(letter["id"]))
    schedule = notify.settings.retry_schedule
    assert [a.number for a in record.attempt_log] == [1, 2, 3]
    assert [a.status_code for a in record.attempt_log] == [500, 500, 500]
    assert len(receiver.at("/fail")) == 3
    for n, (earlier, later) in enumerate(zip(record.attempt_log, record.attempt_log[1:], strict=False), start=1):
        low, _ = schedule.bounds_after(n)
        gap = (later.started_at - earlier.started_at).total_seconds()
        assert gap >= low, (n, gap, low)
    dead_letters, _ = await admin.deliveries(0, "", status=DeliveryStatus.DEAD_LETTERED, channel=None, endpoint_id="")
    assert [d.id for d in dead_letters] == [letter["id"]]

    await admin.replay(str(letter["id"]))

    async def replayed() -> bool:
        again = await admin.delivery(str(letter["id"]))
        return again.status is DeliveryStatus.DEAD_LETTERED and len(again.attempt_log) == 6

    await eventually(replayed, what="a replay with a fresh budget of three attempts")
    assert len(receiver.at("/fail")) == 6
    assert len(receiver.at("/hang")) >= 1
    assert [d["status"] for d in await deliveries_of(notify, hanging)] in (["delivering"], ["pending"])


async def test_email_waits_out_quiet_hours_except_for_security_alerts(
    notify: Notify, smtp: tuple[Mailbox, int]
) -> None:
    mailbox, _ = smtp
    now = datetime.now(UTC)
    inbox = Inbox(notify.pool, replay_overlap_s=0)
    await inbox.save_preferences(
        Preferences(
            user_id="c-1",
            locale="zh-CN",
            email="c1@example.com",
            channels=(Channel.IN_APP, Channel.EMAIL),
            quiet_start=(now - timedelta(hours=1)).time().replace(second=0, microsecond=0),
            quiet_end=(now + timedelta(hours=1)).time().replace(second=0, microsecond=0),
            time_zone="UTC",
        )
    )
    await inbox.save_preferences(Preferences(user_id="c-2", locale="en", email="c2@example.com"))
    tid = str(uuid.uuid4())
    await notify.publish(ev.ticket_created(tid, "c-1"))
    await notify.publish(ev.ticket_created(str(uuid.uuid4()), "c-2"))
    await notify.publish(ev.account_alert("c-1"))

    async def mailed() -> bool:
        return len(mailbox.to("c1@example.com")) == 1 and len(mailbox.to("c2@example.com")) == 1

    await eventually(mailed, what="the alert and the email outside quiet hours")
    [alert] = mailbox.to("c1@example.com")
    assert alert["Subject"] == "异常登录提醒"
    assert "iPhone 15" in alert.get_content()
    assert mailbox.to("c2@example.com")[0]["Subject"] == "We have your ticket"
    waiting = await notify.pool.fetchrow(
        "SELECT status, next_attempt_at FROM deliveries WHERE target = 'c1@example.com' AND status <> 'delivered'"
    )
    assert waiting["status"] == "pending"
    assert waiting["next_attempt_at"] > now + timedelta(minutes=50)
    in_app = await notify.pool.fetchval("SELECT count(*) FROM notifications WHERE user_id = 'c-1'")
    assert in_app == 2  # the inbox is not quiet; only email waits


async def test_supervisors_shared_mailbox_gets_what_supervisors_are_told(
    fresh_database_url: str, js: JetStreamContext, smtp: tuple[Mailbox, int]
) -> None:
    mailbox, port = smtp
    settings = notify_settings(fresh_database_url, port, supervisors_email="desk@example.com")
    async with running_notify(fresh_database_url, js, settings) as notify:
        tid = str(uuid.uuid4())
        for event in (ev.ticket_created(tid, "c-5"), ev.offer_created(tid, "a-5"), ev.sla_breached(tid)):
            await notify.publish(event)
        await notify.publish(ev.escalated(tid))

        async def mailed() -> bool:
            return len(mailbox.to("desk@example.com")) == 2

        await eventually(mailed, what="the breach and the escalation mailed to the supervisors' desk")
        supervised = await notify.pool.fetchval(
            "SELECT count(*) FROM notifications WHERE user_id = $1 AND ticket_id = $2", SUPERVISORS, tid
        )
    subjects = sorted(m["Subject"] for m in mailbox.to("desk@example.com"))
    assert len(set(subjects)) == 2, subjects
    assert supervised == 2  # the same two, in the supervisors' inbox
    assert {m["To"] for m in mailbox.messages} == {"desk@example.com"}  # nobody else has an address here


async def test_inbox_read_marks_and_replay_after_a_last_seen_id(notify: Notify) -> None:
    for _ in range(3):
        await notify.publish(ev.ticket_created(str(uuid.uuid4()), "c-9"))
    await notify.publish(ev.sla_breached(str(uuid.uuid4())))
    inbox = Inbox(notify.pool, replay_overlap_s=0)

    async def four() -> bool:
        return await notify.pool.fetchval("SELECT count(*) FROM notifications") == 4

    await eventually(four, what="four notifications")
    mine = await inbox.page("c-9", [], 0, "", unread_only=False)
    assert (len(mine.items), mine.unread) == (3, 3)
    boss = await inbox.page("s-1", [SUPERVISORS], 0, "", unread_only=True)
    assert [n.kind for n in boss.items] == ["sla.breached"]
    oldest, middle, newest = mine.items[::-1]
    # Notifications written in one transaction share their time, so the page's order among them is the ids';
    # replay holds the rest of them in commit order.
    committed = await notify.pool.fetch("SELECT id FROM notifications WHERE user_id = 'c-9' ORDER BY seq")
    replayed = [n.id for n in await inbox.replay("c-9", [], str(oldest.id), 0)]
    assert replayed == [row["id"] for row in committed if row["id"] != oldest.id]
    assert set(replayed) == {middle.id, newest.id}
    assert await inbox.replay("c-10", [], str(oldest.id), 0) == []  # someone else's id replays nothing
    assert await inbox.mark_read("c-9", [], [str(middle.id)], False) == 1
    assert await inbox.mark_read("c-9", [], [str(middle.id)], False) == 0
    unread = await inbox.page("c-9", [], 0, "", unread_only=True)
    assert [n.id for n in unread.items] == [newest.id, oldest.id]
    assert await inbox.mark_read("s-1", [SUPERVISORS], [], True) == 1
    assert (await inbox.page("s-2", [SUPERVISORS], 0, "", unread_only=True)).unread == 1  # per reader


async def test_each_in_app_push_is_recorded_once_as_a_delivery(notify: Notify, js: JetStreamContext) -> None:
    tid = str(uuid.uuid4())
    events = [ev.ticket_created(tid, "c-3"), ev.resolved(tid, "c-3", version=2), ev.sla_breached(tid)]
    for event in events:
        await notify.publish(event)
    for event in events:  # again, past the duplicate window: the inbox and the records' keys stop them
        await js.publish(event.type, event.data, headers={**event.headers(), MSG_ID_HEADER: str(uuid.uuid4())})
    admin = DeliveryAdmin(notify.pool)

    async def in_app() -> list[Any]:
        items, _ = await admin.deliveries(0, "", status=None, channel=DeliveryChannel.IN_APP, endpoint_id="")
        return items

    async def all_pushed() -> bool:
        if not await consumers_idle(js):  # every copy handled, the duplicates included
            return False
        items = await in_app()
        return len(items) >= 4 and all(d.status is DeliveryStatus.DELIVERED for d in items)

    # ticket.received, ticket.resolved and csat.requested for the customer; sla.breached for supervisors.
    await eventually(all_pushed, what="every push delivered")
    pushes = await in_app()
    assert len(pushes) == 4
    notifications = {
        r["id"]: r for r in await notify.pool.fetch("SELECT id, user_id, kind, source_event_id FROM notifications")
    }
    assert sorted(str(d.notification_id) for d in pushes) == sorted(str(n) for n in notifications)
    announced = {m.headers["ce-id"] for m in await stream_messages(js, "NOTIFY") if m.headers}
    times = {e.id: e.time for e in events}
    for d in pushes:
        n = notifications[d.notification_id]
        assert (d.target, d.event_id) == (n["user_id"], f"{n['source_event_id']}/{n['kind']}")
        assert str(d.id) in announced  # the record is the push event's own id
        assert abs(d.created_at - times[n["source_event_id"]]) < timedelta(milliseconds=1)
        detail = await admin.delivery(str(d.id))
        assert (detail.attempts, len(detail.attempt_log)) == (1, 1)
        assert detail.delivered_at is not None
        assert detail.delivered_at >= detail.attempt_log[0].started_at
        with pytest.raises(FailedPrecondition) as refused:
            await admin.replay(str(d.id))
        assert refused.value.code == "delivery_not_replayable"
    webhooks, _ = await admin.deliveries(0, "", status=None, channel=DeliveryChannel.WEBHOOK, endpoint_id="")
    assert webhooks == []


async def test_an_event_that_tells_nobody_writes_nothing_until_a_webhook_wants_it(
    notify: Notify, js: JetStreamContext, receiver: Receiver
) -> None:
    tid = str(uuid.uuid4())
    unwanted = ev.offer_created(tid, "a-1", "accepted")
    await notify.publish(unwanted)

    await eventually(lambda: consumers_idle(js), what="the accepted offer acknowledged")
    assert await notify.pool.fetchval("SELECT count(*) FROM inbox") == 0, "nothing written, not even the inbox"
    assert await notify.pool.fetchval("SELECT count(*) FROM deliveries") == 0

    partner = await endpoint(notify, f"{receiver.base_url}/ok", "support.routing.v1.offer.*")
    wanted = ev.offer_created(tid, "a-1", "accepted")
    await notify.publish(wanted)

    async def delivered() -> bool:
        return [d["status"] for d in await deliveries_of(notify, partner)] == ["delivered"]

    await eventually(delivered, what="the next accepted offer forwarded to the endpoint that wants it")
    [got] = receiver.at("/ok")
    assert wanted.id.encode() in got.body
    assert [r["event_id"] for r in await notify.pool.fetch("SELECT event_id FROM inbox")] == [wanted.id]


async def test_an_in_app_push_is_delivered_when_the_relay_publishes_it(
    fresh_database_url: str, js: JetStreamContext
) -> None:
    pool = await migrated_pool(fresh_database_url, "notify", "services.notify")
    try:
        event = ev.ticket_created(str(uuid.uuid4()), "c-5")
        async with pool.acquire() as conn, conn.transaction():
            await EventHandler(email_enabled=False)(conn, event)
        query = "SELECT status, attempts, delivered_at, created_at FROM deliveries WHERE channel = 'in_app'"
        [waiting] = await pool.fetch(query)
        assert (waiting["status"], waiting["attempts"], waiting["delivered_at"]) == ("delivering", 0, None)
        async with pool.acquire() as conn, conn.transaction():  # the delivery workers never take it
            assert await claim_due(conn, busy_targets=[], per_target=10, scan=100, lease_s=30) == []

        assert (await OutboxRelay(pool, js, "notify").relay_once()).published == 1
        [sent] = await pool.fetch(query)
        assert (sent["status"], sent["attempts"]) == ("delivered", 1)
        assert sent["delivered_at"] > sent["created_at"]
        # A relay that republishes (it died between the PubAck and its mark) records nothing more.
        await pool.execute("UPDATE outbox SET published_at = now()")
        assert await pool.fetchval("SELECT count(*) FROM delivery_attempts") == 1
        assert [tuple(r) for r in await pool.fetch(query)] == [tuple(sent)]
    finally:
        await pool.close()


async def test_events_applied_together_leave_those_about_unknown_tickets_untouched(notify: Notify) -> None:
    """In a batch, an event about a ticket notify has not heard of yet is left (returned, nothing written for it)
    for the one-event path to retry; the others are applied in the same transaction."""
    handler = EventHandler(email_enabled=False)
    known, late = str(uuid.uuid4()), str(uuid.uuid4())
    async with notify.pool.acquire() as conn:
        async with conn.transaction():
            for event in (ev.ticket_created(known, "c-1"), ev.ticket_assigned(known, "a-1")):
                await handler(conn, event)
        batch = [Delivered(ev.sla_warning(t), otel_context.get_current()) for t in (known, late)]
        async with conn.transaction():
            left = await handler.apply_together(conn, batch)
    assert left == {batch[1].envelope.id}
    assert (await kinds_by_recipient(notify))[("a-1", "sla.warning")] == 1
    assert await notify.pool.fetchval("SELECT count(*) FROM notifications WHERE ticket_id = $1", late) == 0


async def test_a_batch_tells_everyone_with_a_few_statements_and_leaves_a_second_event_about_one_ticket(
    notify: Notify,
) -> None:
    """Many tickets opened in one batch are all told at once; an event about a ticket another event of the batch
    is about is left (it must see the view the first one leaves) and applied alone afterwards."""
    handler = EventHandler(email_enabled=False)
    tickets = [str(uuid.uuid4()) for _ in range(20)]
    opened = [Delivered(ev.ticket_created(t, f"c-{n}"), otel_context.get_current()) for n, t in enumerate(tickets)]
    assigned = Delivered(ev.ticket_assigned(tickets[0], "a-1"), otel_context.get_current())
    async with notify.pool.acquire() as conn:
        async with conn.transaction():
            left = await handler.apply_together(conn, [*opened, assigned])
        assert left == {assigned.envelope.id}
        async with conn.transaction():
            await handler(conn, assigned.envelope)
    told = await kinds_by_recipient(notify)
    assert all(told[(f"c-{n}", "ticket.received")] == 1 for n in range(20))
    assert await notify.pool.fetchval("SELECT assignee_id FROM tickets WHERE ticket_id = $1", tickets[0]) == "a-1"
    counts = await notify.pool.fetchrow(
        """
        SELECT count(n.id) AS notifications, count(d.id) AS pushes, count(o.event_id) AS announced
        FROM notifications n
        LEFT JOIN deliveries d ON d.notification_id = n.id AND d.channel = 'in_app'
        LEFT JOIN outbox o ON o.event_id = d.id
        WHERE n.ticket_id = ANY($1::text[])
        """,
        tickets,
    )
    assert counts["notifications"] > 20, "the 20 customers, and whom the assignment tells"
    received = await notify.pool.fetch(
        "SELECT created_at FROM notifications WHERE ticket_id = ANY($1::text[]) AND kind = 'ticket.received' "
        "ORDER BY seq",
        tickets,
    )
    times = [r["created_at"] for r in received]
    assert times == sorted(set(times)), "each event's own time, in order: inboxes list and replay by it"
    assert counts["pushes"] == counts["announced"] == counts["notifications"], "each with its push and its event"
