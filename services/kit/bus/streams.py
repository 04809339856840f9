"""The stream catalogue and explicit declaration of streams and durable pull consumers."""

from __future__ import annotations

from dataclasses import dataclass

from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    DiscardPolicy,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)
from nats.js.errors import NotFoundError

from services.kit.settings import BusSettings


@dataclass(frozen=True, slots=True)
class StreamSpec:
    name: str
    subjects: tuple[str, ...]


# One stream per producer, plus what the wallet's own backend publishes.
TICKETING = StreamSpec("TICKETING", ("support.ticketing.>",))
ROUTING = StreamSpec("ROUTING", ("support.routing.>",))
NOTIFY = StreamSpec("NOTIFY", ("support.notify.>",))
WALLET = StreamSpec("WALLET", ("wallet.>",))
ALL_STREAMS = (TICKETING, ROUTING, NOTIFY, WALLET)


@dataclass(frozen=True, slots=True)
class ConsumerSpec:
    """A durable pull consumer: ``durable`` is shared by all replicas of the consuming service."""

    stream: StreamSpec
    durable: str
    filter_subjects: tuple[str, ...]


def stream_config(spec: StreamSpec, settings: BusSettings) -> StreamConfig:
    return StreamConfig(
        name=spec.name,
        subjects=list(spec.subjects),
        storage=StorageType.FILE,
        retention=RetentionPolicy.LIMITS,
        discard=DiscardPolicy.NEW,
        max_bytes=settings.stream_max_bytes,
        duplicate_window=settings.stream_duplicate_window_s,
        num_replicas=settings.stream_replicas,
    )


async def declare_streams(js: JetStreamContext, settings: BusSettings, specs: tuple[StreamSpec, ...]) -> None:
    """Create each stream, or bring an existing one to the declared configuration."""
    for spec in specs:
        config = stream_config(spec, settings)
        try:
            await js.stream_info(spec.name)
        except NotFoundError:
            await js.add_stream(config)
        else:
            await js.update_stream(config)


def consumer_config(spec: ConsumerSpec, settings: BusSettings) -> ConsumerConfig:
    return ConsumerConfig(
        durable_name=spec.durable,
        filter_subjects=list(spec.filter_subjects),
        deliver_policy=DeliverPolicy.ALL,
        ack_policy=AckPolicy.EXPLICIT,
        ack_wait=settings.consumer_ack_wait_s,
        max_deliver=settings.consumer_max_deliver,
        max_ack_pending=1000,
    )


async def declare_consumer(js: JetStreamContext, spec: ConsumerSpec, settings: BusSettings) -> None:
    """Create or update the durable consumer; subscribing later only binds to it."""
    await js.add_consumer(spec.stream.name, consumer_config(spec, settings))
