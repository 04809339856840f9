"""Small process and port helpers shared by the embedded servers and the supervisor."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
from pathlib import Path
from types import TracebackType
from typing import Self

logger = logging.getLogger("supportdesk.runtime")


class ServerProcess:
    """What the embedded servers share: a host and a port chosen once, the child process, ``with`` support."""

    def __init__(self, host: str, port: int | None) -> None:
        self.host = host
        self._port = port
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the port is chosen on start(); start the server first")
        return self._port

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def _choose_port(self) -> None:
        if self._port is None:
            # Chosen once: a restart keeps the URL that clients reconnect to.
            self._port = free_port(self.host)

    def start(self) -> None:
        raise NotImplementedError

    def stop(self, timeout: float = 10) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def free_port(host: str) -> int:
    """A TCP port that is free right now on ``host``, as chosen by the kernel."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def log_tail(path: Path, lines: int = 40) -> str:
    """The last lines of a log file, for error messages; never raises."""
    try:
        with path.open("rb") as log:
            log.seek(0, os.SEEK_END)
            log.seek(max(0, log.tell() - 16384))
            text = log.read().decode("utf-8", errors="replace")
    except OSError as error:
        return f"(log not readable: {error})"
    return "\n".join(text.splitlines()[-lines:]) or "(log is empty)"


def has_exited(process: subprocess.Popen[bytes]) -> bool:
    """Whether the child has exited, without reaping it.

    An unreaped child keeps its pid, and so its process group id, from being reused: signalling
    the group stays safe until we call wait().
    """
    if process.returncode is not None:
        return True
    try:
        return os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True


def stop_process_group(process: subprocess.Popen[bytes], stop_signal: int, timeout: float) -> None:
    """Ask a session leader to stop with ``stop_signal``; SIGKILL its process group after ``timeout``.

    Safe on a process that already exited.
    """
    if process.returncode is not None:
        return
    if has_exited(process):
        _kill_group(process)
    else:
        process.send_signal(stop_signal)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            logger.warning("pid %d did not stop within %g s; killing its process group", process.pid, timeout)
            _kill_group(process)
    process.wait()


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    # Only called while the leader is unreaped, so its pid still names our group.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
