"""A batch published to JetStream: each message counts as stored only once its own PubAck says so."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import nats
import pytest
from nats.aio.client import Client as NatsClient
from nats.errors import Error as NatsError
from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, StreamConfig

from services.kit.bus.publisher import BatchPublisher, NotStored, Outgoing

pytestmark = pytest.mark.integration

STREAM = "PUBLISHER_TEST"


@pytest.fixture
async def publisher(js: JetStreamContext) -> AsyncIterator[BatchPublisher]:
    await js.add_stream(StreamConfig(name=STREAM, subjects=["publisher-test.>"], max_msgs=5, discard=DiscardPolicy.NEW))
    publisher = BatchPublisher(js)
    yield publisher
    await publisher.close()
    await js.delete_stream(STREAM)


def message(subject: str = "publisher-test.a", msg_id: str = "") -> Outgoing:
    return Outgoing(subject, b"payload", {"Nats-Msg-Id": msg_id or str(uuid.uuid4())})


async def test_a_batch_is_stored_and_each_message_acknowledged(publisher: BatchPublisher, js: JetStreamContext) -> None:
    outcomes = await publisher.publish([message() for _ in range(4)], timeout_s=5)
    assert outcomes == [None] * 4
    assert (await js.stream_info(STREAM)).state.messages == 4


async def test_a_duplicate_counts_as_stored_once(publisher: BatchPublisher, js: JetStreamContext) -> None:
    msg_id = str(uuid.uuid4())
    assert await publisher.publish([message(msg_id=msg_id), message(msg_id=msg_id)], timeout_s=5) == [None, None]
    assert (await js.stream_info(STREAM)).state.messages == 1


async def test_what_jetstream_refuses_fails_alone(publisher: BatchPublisher, js: JetStreamContext) -> None:
    """A subject no stream takes is answered at once (no responders), not left to time out; a full stream that
    discards new messages refuses the ones past its limit and keeps the others."""
    outcomes = await publisher.publish([message("nobody-listens.a"), *[message() for _ in range(6)]], timeout_s=5)
    assert isinstance(outcomes[0], NotStored)
    assert "503" in str(outcomes[0])
    assert outcomes[1:6] == [None] * 5
    assert isinstance(outcomes[6], NotStored)
    assert "maximum messages" in str(outcomes[6])
    assert (await js.stream_info(STREAM)).state.messages == 5


async def test_late_or_missing_acknowledgements_are_timeouts(publisher: BatchPublisher, nc: NatsClient) -> None:
    """A reply that never comes (here: published to a plain subscriber that never answers) is a timeout for its
    message only, after the batch's deadline."""
    silent = await nc.subscribe("publisher-silent.a")
    try:
        outcomes = await publisher.publish([message("publisher-silent.a"), message()], timeout_s=0.5)
    finally:
        await silent.unsubscribe()
    assert isinstance(outcomes[0], TimeoutError)
    assert outcomes[1] is None


async def test_a_closed_connection_fails_every_message_instead_of_raising(nats_url: str) -> None:
    """The relay counts what was not stored and keeps the rows; an exception would stop its loop instead."""
    closed = await nats.connect(nats_url)
    publisher = BatchPublisher(closed.jetstream())
    await closed.close()
    outcomes = await publisher.publish([message(), message()], timeout_s=5)
    assert all(isinstance(outcome, NatsError) for outcome in outcomes)
