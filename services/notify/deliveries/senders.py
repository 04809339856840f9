"""The two ways a delivery leaves: an HTTP POST to a webhook endpoint, or a message to an SMTP server."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from email.message import EmailMessage

import aiosmtplib
import httpx

from services.notify.deliveries.admin import host_allowed
from services.notify.deliveries.model import Delivery, Endpoint, Outcome
from services.notify.delivery_rules import signed_headers
from services.notify.settings import NotifySettings


class WebhookSender:
    def __init__(self, client: httpx.AsyncClient, timeout_s: float, allowed_hosts: Sequence[str] = ()) -> None:
        self._client = client
        self._timeout = httpx.Timeout(timeout_s)
        self._allowed_hosts = tuple(allowed_hosts)

    async def send(self, d: Delivery, endpoint: Endpoint) -> Outcome:
        """POST the signed body; any 2xx is success, anything else (or no answer in time) a failure."""
        started, clock = datetime.now(UTC), time.perf_counter()
        if not host_allowed(endpoint.url, self._allowed_hosts):
            return Outcome(False, started, 0.0, 0, "the endpoint's host is no longer allowed")
        headers = signed_headers(
            endpoint.secret, int(time.time()), d.payload, event_id=d.event_id, delivery_id=str(d.id)
        )
        try:
            response = await self._client.post(endpoint.url, content=d.payload, headers=headers, timeout=self._timeout)
        except httpx.HTTPError as exc:
            return Outcome(False, started, _ms(clock), 0, f"{type(exc).__name__}: {exc}")
        ok = 200 <= response.status_code < 300
        return Outcome(ok, started, _ms(clock), response.status_code, "" if ok else f"HTTP {response.status_code}")


class EmailSender:
    def __init__(self, settings: NotifySettings) -> None:
        self._settings = settings

    async def send(self, d: Delivery) -> Outcome:
        s = self._settings
        content = json.loads(d.payload)
        message = EmailMessage()
        message["From"] = s.smtp_from
        message["To"] = content["to"]
        message["Subject"] = content["subject"]
        message["Message-ID"] = f"<{d.id}@supportdesk>"
        message.set_content(content["body"])
        started, clock = datetime.now(UTC), time.perf_counter()
        try:
            await aiosmtplib.send(
                message,
                hostname=s.smtp_host,
                port=s.smtp_port,
                username=s.smtp_username or None,
                password=s.smtp_password.get_secret_value() or None,
                start_tls=s.smtp_starttls,
                timeout=s.smtp_timeout_s,
            )
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            return Outcome(False, started, _ms(clock), 0, f"{type(exc).__name__}: {exc}")
        return Outcome(True, started, _ms(clock))


def _ms(since: float) -> float:
    return (time.perf_counter() - since) * 1000
