"""Consumers apply each event once, however often it arrives, and dead-letter what can never succeed."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Sequence

import asyncpg
import pytest
from nats.js import JetStreamContext

from services.kit.bus import store
from services.kit.bus.consumer import Delivered, EventConsumer, Handler, PoisonEvent, Skips, Together
from services.kit.bus.envelope import Envelope
from services.kit.bus.streams import TICKETING, ConsumerSpec, declare_consumer
from services.kit.db import Connection
from tests.integration.bus_fixtures import BUS, migrated_pool
from tests.waiting import eventually

pytestmark = pytest.mark.integration

SPEC = ConsumerSpec(TICKETING, "test-consumer", ("support.ticketing.v1.ticket.created",))
SUBJECT = "support.ticketing.v1.ticket.created"


class Recorder:
    """A handler that counts applications per event in the consumer's transaction."""

    def __init__(self, fail_first: int = 0, poison: set[str] | None = None) -> None:
        self.fail_first = fail_first
        self.poison = poison or set()
        self.attempts = 0

    async def __call__(self, conn: Connection, event: Envelope) -> None:
        self.attempts += 1
        if event.id in self.poison:
            raise PoisonEvent("cannot apply this one")
        if self.attempts <= self.fail_first:
            raise ConnectionError("transient")
        await conn.execute(
            """
            INSERT INTO applied (event_id, times) VALUES ($1, 1)
            ON CONFLICT (event_id) DO UPDATE SET times = applied.times + 1
            """,
            event.id,
        )


@pytest.fixture
async def pool(fresh_database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await migrated_pool(fresh_database_url, "ticketing", "services.ticketing")
    await pool.execute("CREATE TABLE applied (event_id text PRIMARY KEY, times int NOT NULL)")
    yield pool
    await pool.close()


async def run(
    js: JetStreamContext, pool: asyncpg.Pool, handler: Handler, skips: Skips | None = None
) -> asyncio.Task[None]:
    await declare_consumer(js, SPEC, BUS)
    consumer = EventConsumer(
        js, pool, SPEC, handler, max_deliver=BUS.consumer_max_deliver, heartbeat_s=0.5, skips=skips
    )
    return asyncio.create_task(consumer.run())


async def stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


def event() -> Envelope:
    return Envelope.new(type=SUBJECT, source="test", subject=str(uuid.uuid4()), data=b"x")


async def times_applied(pool: asyncpg.Pool) -> dict[str, int]:
    return {r["event_id"]: r["times"] for r in await pool.fetch("SELECT event_id, times FROM applied")}


async def settled(js: JetStreamContext) -> bool:
    info = await js.consumer_info(TICKETING.name, SPEC.durable)
    return info.num_pending == 0 and info.num_ack_pending == 0


async def test_a_duplicated_event_is_applied_once(js: JetStreamContext, pool: asyncpg.Pool) -> None:
    first, second = event(), event()
    # The same event twice under different message ids gets past JetStream's de-duplication.
    for e in (first, first, second):
        await js.publish(SUBJECT, e.data, headers={**e.headers(), "Nats-Msg-Id": str(uuid.uuid4())})
    task = await run(js, pool, Recorder())
    try:
        await eventually(lambda: settled(js), what="all messages acknowledged")
        assert await times_applied(pool) == {first.id: 1, second.id: 1}
    finally:
        await stop(task)


async def test_an_event_the_handler_would_write_nothing_for_is_acked_without_a_transaction(
    js: JetStreamContext, pool: asyncpg.Pool
) -> None:
    needless, needed = event(), event()
    asked: list[tuple[str, bool]] = []

    async def skips(conn: Connection, e: Envelope) -> bool:
        asked.append((e.id, conn.is_in_transaction()))
        return e.id == needless.id

    for e in (needless, needed):
        await js.publish(SUBJECT, e.data, headers=e.headers())
    handler = Recorder()
    task = await run(js, pool, handler, skips)
    try:
        await eventually(lambda: settled(js), what="both events acknowledged")
        assert await times_applied(pool) == {needed.id: 1}
        assert handler.attempts == 1, "the handler runs only for the event it writes something for"
        async with pool.acquire() as conn:
            inbox = {r["event_id"] for r in await conn.fetch("SELECT event_id FROM inbox")}
        assert inbox == {needed.id}, "a skipped event leaves no inbox row"
        assert sorted(asked) == sorted([(needless.id, False), (needed.id, False)]), "asked outside a transaction"
    finally:
        await stop(task)


async def test_a_failing_skip_check_is_retried_like_a_failing_transaction(
    js: JetStreamContext, pool: asyncpg.Pool
) -> None:
    e = event()
    checks = 0

    async def skips(conn: Connection, _: Envelope) -> bool:
        nonlocal checks
        checks += 1
        if checks == 1:
            raise ConnectionError("Postgres unreachable for the check")
        return False

    await js.publish(SUBJECT, e.data, headers=e.headers())
    handler = Recorder()
    task = await run(js, pool, handler, skips)
    try:
        await eventually(lambda: settled(js), what="the event applied after the failed check")
        assert await times_applied(pool) == {e.id: 1}
        assert checks == 2, "the failed check is nak'ed and the redelivery checked again"
        async with pool.acquire() as conn:
            assert await store.list_dead_letters(conn) == []
    finally:
        await stop(task)


async def test_a_redelivery_after_commit_without_ack_is_not_applied_again(
    js: JetStreamContext, pool: asyncpg.Pool
) -> None:
    e = event()
    await js.publish(SUBJECT, e.data, headers=e.headers())
    await declare_consumer(js, SPEC, BUS)
    # A consumer that committed its transaction and died before acking.
    sub = await js.pull_subscribe_bind(durable=SPEC.durable, stream=TICKETING.name)
    [msg] = await sub.fetch(1, timeout=5)
    async with pool.acquire() as conn, conn.transaction():
        assert await store.claim_event(conn, SPEC.durable, e.id)
        await Recorder()(conn, e)
    await sub.unsubscribe()

    handler = Recorder()
    task = await run(js, pool, handler)  # the message comes back after ack_wait
    try:
        await eventually(lambda: settled(js), what="the redelivery to be acknowledged")
        assert await times_applied(pool) == {e.id: 1}
        assert handler.attempts == 0, "the inbox must stop the handler from running again"
        assert msg.metadata.num_delivered == 1
    finally:
        await stop(task)


async def test_a_transient_failure_is_retried_until_it_succeeds(js: JetStreamContext, pool: asyncpg.Pool) -> None:
    e = event()
    await js.publish(SUBJECT, e.data, headers=e.headers())
    handler = Recorder(fail_first=2)
    task = await run(js, pool, handler)
    try:
        await eventually(lambda: settled(js), what="the retried event to be acknowledged")
        assert await times_applied(pool) == {e.id: 1}
        assert handler.attempts == 3
        async with pool.acquire() as conn:
            assert await store.list_dead_letters(conn) == []
    finally:
        await stop(task)


async def test_poison_is_dead_lettered_and_everything_else_keeps_flowing(
    js: JetStreamContext, pool: asyncpg.Pool
) -> None:
    good, bad = event(), event()
    await js.publish(SUBJECT, b"\xff not an event")  # no CloudEvents headers at all
    await js.publish(SUBJECT, bad.data, headers=bad.headers())
    await js.publish(SUBJECT, good.data, headers=good.headers())
    task = await run(js, pool, Recorder(poison={bad.id}))
    try:
        await eventually(lambda: settled(js), what="every message settled")
        assert await times_applied(pool) == {good.id: 1}
        async with pool.acquire() as conn:
            letters = await store.list_dead_letters(conn, SPEC.durable)
        assert [(letter.event_id, letter.nats_subject) for letter in letters] == [(None, SUBJECT), (bad.id, SUBJECT)]
        assert letters[0].payload == b"\xff not an event"
        assert "not a valid event" in letters[0].error
        assert "PoisonEvent" in letters[1].error
    finally:
        await stop(task)


async def test_an_event_that_keeps_failing_is_dead_lettered_after_max_deliver(
    js: JetStreamContext, pool: asyncpg.Pool
) -> None:
    e = event()
    await js.publish(SUBJECT, e.data, headers=e.headers())
    handler = Recorder(fail_first=1_000)
    task = await run(js, pool, handler)
    try:

        async def dead_lettered() -> bool:
            async with pool.acquire() as conn:
                return len(await store.list_dead_letters(conn)) == 1

        await eventually(dead_lettered, what="the dead letter")
        await eventually(lambda: settled(js), what="the message terminated")
        assert handler.attempts == BUS.consumer_max_deliver
        assert await times_applied(pool) == {}
    finally:
        await stop(task)


class OrderRecorder:
    """Records the order events are applied per subject; the first event of ``held`` waits for ``release``."""

    def __init__(self, held: str) -> None:
        self.held = held
        self.release = asyncio.Event()
        self.holding = asyncio.Event()
        self.applied: dict[str, list[str]] = {}

    async def __call__(self, conn: Connection, event: Envelope) -> None:
        if event.subject == self.held and not self.applied.get(event.subject):
            self.holding.set()
            await self.release.wait()
        self.applied.setdefault(event.subject, []).append(event.id)


async def publish_about(js: JetStreamContext, published: dict[str, list[str]], subject: str) -> None:
    """Publish an event about ``subject``, recording its id in ``published``."""
    e = Envelope.new(type=SUBJECT, source="test", subject=subject, data=b"x")
    published.setdefault(subject, []).append(e.id)
    await js.publish(SUBJECT, e.data, headers={**e.headers(), "Nats-Msg-Id": e.id})


async def expect_only_the_slow_subject_held_back(
    js: JetStreamContext, handler: OrderRecorder, published: dict[str, list[str]], fast: str
) -> None:
    """The other subject's events go past the held one; once released, every event is applied, each subject's
    in stream order."""

    async def fast_subject_done() -> bool:
        return handler.applied.get(fast) == published[fast]

    await eventually(fast_subject_done, what="the other subject handled")
    assert handler.held not in handler.applied
    handler.release.set()
    await eventually(lambda: settled(js), what="all messages acknowledged")
    assert handler.applied == published


async def test_subjects_are_handled_concurrently_and_each_in_stream_order(
    js: JetStreamContext, pool: asyncpg.Pool
) -> None:
    slow, fast = str(uuid.uuid4()), str(uuid.uuid4())
    published: dict[str, list[str]] = {}
    for i in range(6):
        await publish_about(js, published, slow if i % 2 == 0 else fast)
    handler = OrderRecorder(held=slow)
    task = await run(js, pool, handler)
    try:
        await expect_only_the_slow_subject_held_back(js, handler, published, fast)
    finally:
        await stop(task)


async def test_a_slow_event_holds_back_only_its_own_subject_while_more_keep_arriving(
    js: JetStreamContext, pool: asyncpg.Pool
) -> None:
    slow, fast = str(uuid.uuid4()), str(uuid.uuid4())
    published: dict[str, list[str]] = {}
    handler = OrderRecorder(held=slow)
    await publish_about(js, published, slow)
    task = await run(js, pool, handler)

    async def holding() -> bool:
        return handler.holding.is_set()

    try:
        await eventually(holding, what="the slow event being handled")
        # Published while the slow event is still in hand: taken and handled past it, not after it.
        for subject in (fast, slow, fast, fast):
            await publish_about(js, published, subject)
        await expect_only_the_slow_subject_held_back(js, handler, published, fast)
    finally:
        await stop(task)


class BatchRecorder:
    """Applies events together in the consumer's transaction, recording each batch's size; fails the first
    ``fail_first`` batches."""

    def __init__(self, fail_first: int = 0, leave: frozenset[str] = frozenset()) -> None:
        self.fail_first = fail_first
        self.leave = leave  # subjects whose events it leaves to be applied alone
        self.batches: list[list[str]] = []

    async def __call__(self, conn: Connection, batch: Sequence[Delivered]) -> set[str]:
        self.batches.append([d.envelope.id for d in batch])
        applied = [d for d in batch if d.envelope.subject not in self.leave]
        for d in applied:
            await Recorder()(conn, d.envelope)
        if len(self.batches) <= self.fail_first:
            raise ConnectionError("the batch fails after writing: its writes must roll back")
        return {d.envelope.id for d in batch} - {d.envelope.id for d in applied}


async def consume_together(js: JetStreamContext, pool: asyncpg.Pool, alone: Handler, together: BatchRecorder) -> None:
    """Run a consumer that applies SUBJECT's events together until every published message is acknowledged."""
    await declare_consumer(js, SPEC, BUS)
    consumer = EventConsumer(
        js,
        pool,
        SPEC,
        alone,
        max_deliver=BUS.consumer_max_deliver,
        heartbeat_s=0.5,
        together=Together(frozenset({SUBJECT}), together),
    )
    task = asyncio.create_task(consumer.run())
    try:
        await eventually(lambda: settled(js), what="all messages acknowledged")
    finally:
        await stop(task)


async def test_events_of_a_together_type_are_applied_in_batches_once_each(
    js: JetStreamContext, pool: asyncpg.Pool
) -> None:
    events = [event() for _ in range(40)]
    duplicate = events[0]
    for e in events:
        await js.publish(SUBJECT, e.data, headers=e.headers())
    # The same event again under another message id: the inbox must keep it from a second application.
    await js.publish(SUBJECT, duplicate.data, headers={**duplicate.headers(), "Nats-Msg-Id": str(uuid.uuid4())})
    alone, together = Recorder(), BatchRecorder()
    await consume_together(js, pool, alone, together)
    assert await times_applied(pool) == {e.id: 1 for e in events}
    assert max(len(b) for b in together.batches) > 1, "events fetched together are applied together"
    assert sum(len(b) for b in together.batches) + alone.attempts == len(events)


async def test_a_failing_batch_rolls_back_and_each_of_its_events_is_applied_alone(
    js: JetStreamContext, pool: asyncpg.Pool
) -> None:
    events = [event() for _ in range(10)]
    for e in events:
        await js.publish(SUBJECT, e.data, headers=e.headers())
    alone, together = Recorder(), BatchRecorder(fail_first=1)
    await consume_together(js, pool, alone, together)
    assert await times_applied(pool) == {e.id: 1 for e in events}, "the failed batch's writes rolled back"
    [failed, *_] = together.batches
    assert len(failed) > 1
    assert alone.attempts >= len(failed), "the failed batch's events were applied one by one"


async def test_several_events_of_one_subject_are_applied_alone_in_stream_order(
    js: JetStreamContext, pool: asyncpg.Pool
) -> None:
    subject = str(uuid.uuid4())
    same = [Envelope.new(type=SUBJECT, source="test", subject=subject, data=b"x") for _ in range(3)]
    others = [event() for _ in range(5)]
    for e in [*same, *others]:
        await js.publish(SUBJECT, e.data, headers=e.headers())
    alone, together = OrderRecorder(held="nobody"), BatchRecorder()
    await consume_together(js, pool, alone, together)
    assert alone.applied[subject] == [e.id for e in same]
    assert not {e.id for e in same} & {i for b in together.batches for i in b}


async def test_events_a_batch_leaves_are_applied_alone_after_it(js: JetStreamContext, pool: asyncpg.Pool) -> None:
    events = [event() for _ in range(12)]
    for e in events:
        await js.publish(SUBJECT, e.data, headers=e.headers())
    left = frozenset(e.subject for e in events[::3])
    alone, together = Recorder(), BatchRecorder(leave=left)
    await consume_together(js, pool, alone, together)
    assert await times_applied(pool) == {e.id: 1 for e in events}
    assert alone.attempts == len(left), "each event the batch left was applied alone, once"
