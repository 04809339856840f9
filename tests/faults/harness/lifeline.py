"""Servers that die with the test process, however it ends (a SIGKILLed pytest included).

The harness starts every server in a session of its own, so that a fault can signal its whole process group;
the price is that nothing ends them when the test process is killed. ``PR_SET_PDEATHSIG`` does not fit: it
follows the thread that forked the child (NATS and Postgres are started from worker threads, and a worker that
exits would take its server with it) and is cleared when Postgres drops root. Instead each server has a tiny
shell watchdog, in a session of its own too, reading a pipe whose write end only the test process holds: the
kernel closes it when that process ends, for whatever reason. Each line names what to kill then: a process
group id (0 for none: the server was stopped on purpose) or the path of a file whose first line holds one
(Postgres' ``postmaster.pid``, which a restart rewrites).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

_WATCHDOG = """
last=0
while read -r line; do last=$line; done
case $last in /*) { read -r last < "$last"; } 2>/dev/null || last=0 ;; esac
[ "$last" -gt 0 ] 2>/dev/null && kill -KILL "-$last"
exit 0
"""


class Lifeline:
    """One watchdog for one server slot; ``watch`` names its current process group (or pid file)."""

    def __init__(self) -> None:
        read, self._write = os.pipe()
        try:
            self._watchdog = subprocess.Popen(
                ["/bin/sh", "-c", _WATCHDOG],
                stdin=read,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
        finally:
            os.close(read)

    def watch(self, target: int | Path) -> None:
        """Kill this process group (a session leader's pid) or the one named in this file, if we die; 0: none."""
        os.write(self._write, f"{target}\n".encode())

    def close(self) -> None:
        """Let go: nothing is killed, and the watchdog exits."""
        if self._write < 0:
            return
        self.watch(0)
        os.close(self._write)
        self._write = -1
        self._watchdog.wait(timeout=10)
