"""A pull consumer's messages arrive through requests kept open ahead of need, and keep arriving after a request
expires (a NATS restart under load is the fault suite's)."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator

import pytest
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from services.kit.bus.pull import PullAhead
from services.kit.bus.streams import TICKETING, ConsumerSpec, declare_consumer
from tests.integration.bus_fixtures import BUS
from tests.waiting import eventually

pytestmark = pytest.mark.integration

SPEC = ConsumerSpec(TICKETING, "test-pull", ("support.ticketing.v1.ticket.created",))
SUBJECT = "support.ticketing.v1.ticket.created"
NEXT = f"$JS.API.CONSUMER.MSG.NEXT.{TICKETING.name}.{SPEC.durable}"


class PullRequests:
    """Every pull request made for the test consumer, as the server receives them."""

    def __init__(self) -> None:
        self.batches: list[int] = []

    async def seen(self, msg: Msg) -> None:
        self.batches.append(json.loads(msg.data)["batch"])


@pytest.fixture
async def requests(nc: NatsClient, js: JetStreamContext) -> AsyncIterator[PullRequests]:
    await declare_consumer(js, SPEC, BUS)
    seen = PullRequests()
    sub = await nc.subscribe(NEXT, cb=seen.seen)
    await nc.flush()
    yield seen
    await sub.unsubscribe()


async def publish(js: JetStreamContext, n: int = 1) -> list[str]:
    ids = [str(uuid.uuid4()) for _ in range(n)]
    for message_id in ids:
        await js.publish(SUBJECT, message_id.encode(), headers={"Nats-Msg-Id": message_id})
    return ids


async def test_a_trickle_costs_a_pull_request_per_half_batch_not_two_per_event(
    js: JetStreamContext, requests: PullRequests
) -> None:
    received: list[str] = []
    async with PullAhead(js, TICKETING.name, SPEC.durable, batch=8) as pull:
        for _ in range(12):  # one at a time, each taken before the next is published
            published = await publish(js)
            batch = await pull.next_batch()
            received += [m.data.decode() for m in batch]
            assert [m.data.decode() for m in batch] == published
            for msg in batch:
                await msg.ack()
    assert len(received) == 12

    async def last_top_up_seen() -> bool:
        return len(requests.batches) >= 4

    await eventually(last_top_up_seen, what="the pull requests received by the server")
    # 8 asked for at first, then 4 more each time half of a batch was used (nats-py's fetch: a no-wait probe
    # and a waiting request per event, 24 for these 12).
    assert requests.batches == [8, 4, 4, 4]


async def test_taking_part_of_what_arrived_leaves_the_rest_for_the_next_call(
    js: JetStreamContext, requests: PullRequests
) -> None:
    published = await publish(js, 5)
    async with PullAhead(js, TICKETING.name, SPEC.durable, batch=8) as pull:
        taken: list[Msg] = []

        async def all_arrived() -> bool:
            taken.extend(await pull.next_batch(2))
            return len(taken) >= 5

        await eventually(all_arrived, what="five messages taken two at a time at most")
        assert [m.data.decode() for m in taken] == published
        for msg in taken:
            await msg.ack()


async def test_an_expired_request_is_asked_again_at_once(js: JetStreamContext, requests: PullRequests) -> None:
    async with PullAhead(js, TICKETING.name, SPEC.durable, batch=4, expires_s=1.0, heartbeat_s=0.4) as pull:
        first = await publish(js)
        batch = await pull.next_batch()
        assert [m.data.decode() for m in batch] == first
        await batch[0].ack()  # else it comes back once the (test's one-second) ack wait is over
        # Nothing more comes: the open request expires (the server answers 408 with what it will not deliver)
        # and is renewed; an event published after that is delivered through the renewed request.
        waiting = asyncio.create_task(pull.next_batch())

        async def renewed() -> bool:
            return len(requests.batches) >= 2

        await eventually(renewed, what="the expired pull request renewed")
        later = await publish(js)
        batch = await asyncio.wait_for(waiting, timeout=10)
        assert [m.data.decode() for m in batch] == later
        await batch[0].ack()
    assert requests.batches == [4, 4]
