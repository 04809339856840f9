"""``python -m services.gateway``: serve the public HTTP API."""

from __future__ import annotations

import uvicorn

from services.gateway.app import create_app
from services.gateway.settings import GatewaySettings
from services.kit.heap import freeze_startup_heap
from services.kit.logging import configure_logging
from services.kit.telemetry import setup_tracing


def main() -> None:
    settings = GatewaySettings()
    configure_logging("gateway", settings.log_level)
    setup_tracing("gateway", settings.instance)
    app = create_app(settings)
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host=settings.http_host,
            port=settings.http_port,
            loop="uvloop",
            log_config=None,
            lifespan="on",
            server_header=False,
            timeout_graceful_shutdown=settings.shutdown_grace_s,
        )
    )
    # The schema is built on first use; building it now puts it among the start-up objects frozen here.
    app.openapi()
    freeze_startup_heap()
    # uvicorn installs SIGTERM/SIGINT handlers: it stops accepting, drains requests, then runs shutdown.
    server.run()


if __name__ == "__main__":
    main()
