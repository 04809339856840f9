"""The harness's servers die with the test process, even when it is SIGKILLed (harness/lifeline.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from tests.waiting import eventually

pytestmark = pytest.mark.faults

ROOT = Path(__file__).parents[2]
# A stand-in for the test process: it starts a server the way the harness does (its own session, with a child
# of its own in the same group), hands it to a lifeline and reports the pids, then waits to be killed.
PARENT = """
import subprocess, sys, time
from pathlib import Path
from tests.faults.harness.lifeline import Lifeline

server = subprocess.Popen(["/bin/sh", "-c", "sleep 600 & wait"], start_new_session=True)
line = Lifeline()
how = sys.argv[1]
if how == "pid-file":
    Path(sys.argv[2]).write_text(f"{server.pid}\\n")
    line.watch(Path(sys.argv[2]))
else:
    line.watch(server.pid)
if how == "released":
    line.close()
print(server.pid, flush=True)
time.sleep(600)
"""


async def _start_parent(*args: str) -> tuple[subprocess.Popen[str], list[psutil.Process]]:
    parent = subprocess.Popen(  # noqa: ASYNC220 - started once, read one line, no event loop work meanwhile
        [sys.executable, "-c", PARENT, *args], cwd=ROOT, stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    assert parent.stdout is not None
    server = psutil.Process(int(parent.stdout.readline()))
    children: list[psutil.Process] = []

    async def started() -> bool:
        children[:] = server.children()
        return bool(children)

    await eventually(started, what="the server's own child")
    return parent, [server, *children]


async def _gone(processes: list[psutil.Process]) -> bool:
    for process in processes:
        try:
            if process.status() != psutil.STATUS_ZOMBIE:
                return False
        except psutil.NoSuchProcess:
            continue
    return True


def _kill_parent(parent: subprocess.Popen[str]) -> None:
    parent.kill()
    parent.wait()
    assert parent.stdout is not None
    parent.stdout.close()


@pytest.mark.parametrize("how", ["pid", "pid-file"])
async def test_a_sigkilled_test_process_takes_its_servers_with_it(how: str, tmp_path: Path) -> None:
    parent, group = await _start_parent(how, str(tmp_path / "postmaster.pid"))
    assert all(p.status() != psutil.STATUS_ZOMBIE for p in group)
    _kill_parent(parent)
    await eventually(lambda: _gone(group), what="the server and its child to be killed with the test process")


async def test_a_server_let_go_is_left_alone(tmp_path: Path) -> None:
    parent, group = await _start_parent("released")
    try:
        _kill_parent(parent)
        # The watchdog has exited without killing: the group outlives its parent, as nothing watches it now.
        assert not await _gone(group)
    finally:
        os.killpg(group[0].pid, signal.SIGKILL)
    await eventually(lambda: _gone(group), what="the server to be cleaned up")
