"""Keeps the service processes running: starts them, restarts a crashed one with back-off, stops them in order."""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from services.runtime.processes import stop_process_group

log = logging.getLogger("supportdesk.runtime")

_PR_SET_PDEATHSIG = 1
# A child that ran this long before crashing starts again without delay.
_HEALTHY_AFTER_S = 30.0
_MAX_BACKOFF_S = 30.0


@dataclass(frozen=True, slots=True)
class ChildSpec:
    name: str
    argv: Sequence[str]
    env: Mapping[str, str]


@dataclass(slots=True)
class _Child:
    spec: ChildSpec
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    restarts: int = 0
    crashes_in_a_row: int = 0
    restart_at: float | None = None
    pids: list[int] = field(default_factory=list)


def _die_with_parent() -> None:
    """Runs in the child before exec: if the supervisor is killed outright, its children get SIGTERM."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class Supervisor:
    """Not thread-safe; drive it from one loop calling ``poll()``."""

    def __init__(self, specs: Sequence[ChildSpec], *, stop_timeout_s: float = 15.0) -> None:
        self._children = [_Child(spec) for spec in specs]
        self._stop_timeout_s = stop_timeout_s

    @property
    def pids(self) -> dict[str, int | None]:
        return {c.spec.name: c.process.pid if c.process else None for c in self._children}

    def start_all(self) -> None:
        for child in self._children:
            self._start(child)

    def poll(self) -> None:
        """Notice exits and restart what is due; call it often."""
        now = time.monotonic()
        for child in self._children:
            if child.process is not None and child.process.poll() is not None:
                self._on_exit(child, child.process.returncode, now)
            if child.process is None and child.restart_at is not None and now >= child.restart_at:
                child.restarts += 1
                self._start(child)

    def stop_all(self) -> None:
        """SIGTERM in reverse start order (the gateway stops taking requests first), SIGKILL after a timeout."""
        for child in reversed(self._children):
            child.restart_at = None
            if child.process is not None:
                stop_process_group(child.process, signal.SIGTERM, self._stop_timeout_s)
                log.info("%s stopped", child.spec.name)
                child.process = None

    def _start(self, child: _Child) -> None:
        child.restart_at = None
        child.process = subprocess.Popen(
            list(child.spec.argv),
            env={**os.environ, **child.spec.env},
            start_new_session=True,  # Ctrl-C reaches the supervisor only, which stops children in order
            preexec_fn=_die_with_parent,
        )
        child.started_at = time.monotonic()
        log.info("%s started (pid %d)", child.spec.name, child.process.pid)

    def _on_exit(self, child: _Child, code: int, now: float) -> None:
        assert child.process is not None
        child.process.wait()
        child.process = None
        ran_for = now - child.started_at
        child.crashes_in_a_row = 1 if ran_for >= _HEALTHY_AFTER_S else child.crashes_in_a_row + 1
        delay = 0.0 if child.crashes_in_a_row == 1 else min(2.0 ** (child.crashes_in_a_row - 2), _MAX_BACKOFF_S)
        child.restart_at = now + delay
        log.error(
            "%s exited with code %s after %.1f s; restarting in %.1f s (restart #%d)",
            child.spec.name,
            code,
            ran_for,
            delay,
            child.restarts + 1,
        )
