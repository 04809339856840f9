"""``supportdesk up``: the whole backend on one machine, with embedded NATS and Postgres unless URLs are given."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from pydantic import Field

from services.gateway.tokens import load_or_create_local_secret
from services.kit.settings import CommonSettings
from services.runtime.embedded_nats import EmbeddedNats
from services.runtime.embedded_postgres import EmbeddedPostgres
from services.runtime.migrate import migrate_all
from services.runtime.processes import free_port
from services.runtime.supervisor import ChildSpec, Supervisor

log = logging.getLogger("supportdesk.runtime")

_READY_TIMEOUT_S = 60.0
_POLL_S = 0.2


class UpSettings(CommonSettings):
    # Unset: start embedded servers with their data under data_dir.
    nats_url: str | None = Field(default=None, validation_alias="NATS_URL")
    database_url: str | None = Field(default=None, validation_alias="DATABASE_URL")
    http_host: str = "127.0.0.1"
    # 0 picks a free port.
    http_port: int = Field(default=8080, ge=0, le=65535)
    # When running as root, the unprivileged user that runs the embedded Postgres.
    pg_user: str | None = None


class PortInUse(RuntimeError):
    pass


def up(settings: UpSettings) -> int:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    data_dir = settings.data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    # Traversable (not listable) by the unprivileged Postgres user when we run as root.
    data_dir.chmod(0o711)
    http_port = _gateway_port(settings)
    with contextlib.ExitStack() as stack:
        nats_url = settings.nats_url or _embedded_nats(stack, data_dir)
        database_url = settings.database_url or _embedded_postgres(stack, data_dir, settings.pg_user)
        applied = asyncio.run(migrate_all(database_url))
        log.info("migrations applied: %s", {k: v for k, v in applied.items() if v} or "none pending")
        secret_file = data_dir / "secrets" / "local-jwt.key"
        load_or_create_local_secret(secret_file)
        supervisor = Supervisor(_children(settings, data_dir, nats_url, database_url, http_port, secret_file))
        stack.callback(supervisor.stop_all)
        supervisor.start_all()
        url = f"http://{settings.http_host}:{http_port}"
        if _wait_until_ready(url, supervisor, stop):
            print(f"supportdesk is up: {url}", flush=True)
            print(f"  docs: {url}/docs   token: supportdesk token --role customer --sub c-1", flush=True)
        while not stop.is_set():
            supervisor.poll()
            stop.wait(_POLL_S)
        log.info("stopping")
    print("supportdesk stopped", flush=True)
    return 0


def _gateway_port(settings: UpSettings) -> int:
    if settings.http_port == 0:
        return free_port(settings.http_host)
    with socket.socket() as probe:
        try:
            probe.bind((settings.http_host, settings.http_port))
        except OSError:
            raise PortInUse(
                f"{settings.http_host}:{settings.http_port} is in use; choose another with SUPPORTDESK_HTTP_PORT"
            ) from None
    return settings.http_port


def _embedded_nats(stack: contextlib.ExitStack, data_dir: Path) -> str:
    return stack.enter_context(EmbeddedNats(data_dir / "nats")).url


def _embedded_postgres(stack: contextlib.ExitStack, data_dir: Path, run_as: str | None) -> str:
    return stack.enter_context(EmbeddedPostgres(data_dir / "postgres", run_as=run_as)).url


def _children(
    settings: UpSettings, data_dir: Path, nats_url: str, database_url: str, http_port: int, secret_file: Path
) -> list[ChildSpec]:
    common = {
        "NATS_URL": nats_url,
        "DATABASE_URL": database_url,
        "SUPPORTDESK_DATA_DIR": str(data_dir),
        "SUPPORTDESK_LOG_LEVEL": settings.log_level,
    }
    names = ("ticketing", "routing", "notify")
    grpc_ports = {name: free_port("127.0.0.1") for name in names}
    # Free ports rather than the documented defaults, so a second backend (or anything else) never clashes.
    metrics_ports = {name: free_port("127.0.0.1") for name in names}
    services = [
        ChildSpec(
            name,
            [sys.executable, "-m", f"services.{name}"],
            {
                **common,
                "SUPPORTDESK_GRPC_HOST": "127.0.0.1",
                "SUPPORTDESK_GRPC_PORT": str(grpc_ports[name]),
                "SUPPORTDESK_METRICS_PORT": str(metrics_ports[name]),
            },
        )
        for name in names
    ]
    gateway = ChildSpec(
        "gateway",
        [sys.executable, "-m", "services.gateway"],
        {
            **common,
            "SUPPORTDESK_HTTP_HOST": settings.http_host,
            "SUPPORTDESK_HTTP_PORT": str(http_port),
            "SUPPORTDESK_AUTH_MODE": "local",
            "SUPPORTDESK_LOCAL_JWT_SECRET_FILE": str(secret_file),
            **{f"SUPPORTDESK_{name.upper()}_ADDR": f"127.0.0.1:{port}" for name, port in grpc_ports.items()},
        },
    )
    return [*services, gateway]


def _wait_until_ready(url: str, supervisor: Supervisor, stop: threading.Event) -> bool:
    """Wait for the gateway's /readyz (every service reachable), keeping children supervised meanwhile."""
    deadline = time.monotonic() + _READY_TIMEOUT_S
    while time.monotonic() < deadline and not stop.is_set():
        supervisor.poll()
        try:
            with urllib.request.urlopen(f"{url}/readyz", timeout=2) as response:  # noqa: S310 - our own URL
                if response.status == 200:
                    return True
        except (urllib.error.URLError, OSError):
            pass
        stop.wait(_POLL_S)
    if not stop.is_set():
        log.error("the gateway was not ready within %.0f s; still supervising, see the logs above", _READY_TIMEOUT_S)
    return False
