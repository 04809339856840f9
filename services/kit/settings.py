"""Settings read from the environment, built explicitly by each process's entry point."""

from __future__ import annotations

import socket
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATA_DIR = Path(".supportdesk")


class CommonSettings(BaseSettings):
    """What every process needs. Ours are prefixed SUPPORTDESK_; server URLs keep their usual names."""

    model_config = SettingsConfigDict(env_prefix="SUPPORTDESK_", extra="ignore", frozen=True)

    log_level: str = "INFO"
    # Distinguishes replicas in logs, consumer names and lock holders.
    instance: str = Field(default_factory=socket.gethostname)
    data_dir: Path = DEFAULT_DATA_DIR


class BusSettings(CommonSettings):
    nats_url: str = Field(default="nats://127.0.0.1:4222", validation_alias="NATS_URL")
    # Longer than the relay's retry horizon, so a republished outbox row is dropped as a duplicate.
    stream_duplicate_window_s: float = 20 * 60
    # discard=new beyond this: the outbox keeps what the stream refuses.
    stream_max_bytes: int = 1 << 30
    stream_replicas: int = 1
    consumer_max_deliver: int = 10
    consumer_ack_wait_s: float = 30.0
    # Subjects (tickets) a consumer handles at once; each subject's events still apply in stream order.
    consumer_concurrency: int = 16


class ServiceSettings(BusSettings):
    """A gRPC service with its own Postgres schema."""

    database_url: str = Field(validation_alias="DATABASE_URL")
    db_pool_min: int = 2
    db_pool_max: int = 16
    grpc_host: str = "127.0.0.1"
    grpc_port: int = 0
    grpc_grace_s: float = 5.0
    outbox_batch_size: int = 500
    # Fallback when a NOTIFY is missed (listener connection lost); LISTEN wakes the relay at once otherwise.
    outbox_poll_interval_s: float = 1.0
    # Prometheus /metrics on its own HTTP port (0: any free port); the host defaults to grpc_host.
    metrics_host: str | None = None
    metrics_port: int = Field(default=0, ge=0, le=65535)
    # How often gauges read from Postgres and JetStream (queue depth, consumer lag, outbox backlog) are sampled.
    metrics_sample_interval_s: float = Field(default=10.0, gt=0)

    @property
    def metrics_bind_host(self) -> str:
        return self.metrics_host or self.grpc_host
