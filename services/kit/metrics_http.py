"""The Prometheus endpoint of a gRPC service: ``/metrics`` on its own HTTP port, served from a thread so a busy
event loop never delays a scrape."""

from __future__ import annotations

from prometheus_client import start_http_server


class MetricsEndpoint:
    def __init__(self, host: str, port: int) -> None:
        self._server, self._thread = start_http_server(port, addr=host)
        self.port: int = self._server.server_port
        self.address = f"{host}:{self.port}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
