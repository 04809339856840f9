"""notify's settings (``SUPPORTDESK_*``), read by its entry point."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import NoDecode

from services.kit.settings import ServiceSettings
from services.notify.delivery_rules import RetrySchedule


class NotifySettings(ServiceSettings):
    grpc_port: int = 50053
    metrics_port: int = 9103

    # Webhooks: each attempt's deadline, and the retry schedule before a delivery is dead-lettered.
    webhook_timeout_s: float = Field(default=5.0, gt=0)
    # Hosts webhook URLs may name (comma-separated); empty: any. Keeps deliveries inside a known perimeter.
    webhook_allowed_hosts: Annotated[list[str], NoDecode] = Field(default_factory=list)
    delivery_max_attempts: int = Field(default=8, ge=1)
    delivery_backoff_base_s: float = Field(default=5.0, ge=0)
    delivery_backoff_cap_s: float = Field(default=3600.0, ge=0)
    delivery_backoff_jitter: float = Field(default=0.2, ge=0, le=1)
    # Attempts under way at once in one replica, and per endpoint or address.
    delivery_concurrency: int = Field(default=64, ge=1)
    delivery_per_target: int = Field(default=4, ge=1)
    # Fallback for work other processes wrote; deliveries this process writes wake its workers at once.
    delivery_poll_interval_s: float = Field(default=1.0, gt=0)

    # Email over SMTP; no host: no email channel.
    smtp_host: str = ""
    smtp_port: int = Field(default=587, ge=1, le=65535)
    smtp_from: str = "Supportdesk <support@localhost>"
    smtp_username: str = ""
    smtp_password: SecretStr = SecretStr("")
    smtp_starttls: bool = False
    smtp_timeout_s: float = Field(default=10.0, gt=0)
    # The supervisors' shared mailbox (a desk or on-call list): what they are told in the app is also mailed
    # here. Events name no individual supervisor, so there is no one else to mail. Empty: in the app only.
    supervisors_email: str = ""

    # A reconnecting stream gets notifications created up to this long before its last-seen one again.
    replay_overlap_s: float = Field(default=2.0, ge=0)

    @field_validator("webhook_allowed_hosts", mode="before")
    @classmethod
    def _split_hosts(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [h.strip().lower() for h in value.split(",") if h.strip()]
        return value

    @property
    def retry_schedule(self) -> RetrySchedule:
        return RetrySchedule(
            max_attempts=self.delivery_max_attempts,
            base_s=self.delivery_backoff_base_s,
            cap_s=self.delivery_backoff_cap_s,
            jitter=self.delivery_backoff_jitter,
        )

    @property
    def email_enabled(self) -> bool:
        return bool(self.smtp_host)
