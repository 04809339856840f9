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
# A stand-in for the test process: it starts a server the way the harness does (its own session), hands it to
# a lifeline and reports its pid, then waits to be killed. "replica": a real gateway replica of the harness;
# otherwise a shell with a child of its own in its group, watched by pid file ("pid-file", as Postgres is) or
# by pid and then let go ("released").
PARENT = """
import os, subprocess, sys
from pathlib import Path
from tests.faults.harness.lifeline import Lifeline
from tests.faults.harness.system import Replica
from services.runtime.processes import free_port

how, root = sys.argv[1], Path(sys.argv[2])
if how == "replica":
    env = {k: v for k, v in os.environ.items() if not k.startswith("SUPPORTDESK_")}
    env |= {
        "SUPPORTDESK_DATA_DIR": str(root),
        "SUPPORTDESK_HTTP_HOST": "127.0.0.1",
        "SUPPORTDESK_HTTP_PORT": str(free_port("127.0.0.1")),
        "SUPPORTDESK_AUTH_MODE": "local",
        "SUPPORTDESK_LOCAL_JWT_SECRET_FILE": str(root / "jwt.key"),
        "OTEL_TRACES_EXPORTER": "none",
    }
    replica = Replica("gateway", "gateway", env, root / "gateway.log")
    replica.start()
    pid = replica.process.pid
else:
    server = subprocess.Popen(["/bin/sh", "-c", "sleep 600 & wait"], start_new_session=True)
    pid = server.pid
    line = Lifeline()
    if how == "pid-file":
        (root / "postmaster.pid").write_text(f"{pid}\\n")
        line.watch(root / "postmaster.pid")
    else:
        line.watch(pid)
        line.close()
print(pid, flush=True)
sys.stdin.read()  # until killed, or until the test's end of the pipe closes
"""


async def _start_parent(*args: str) -> tuple[subprocess.Popen[str], list[psutil.Process]]:
    parent = subprocess.Popen(  # noqa: ASYNC220 - started once, read one line, no event loop work meanwhile
        [sys.executable, "-c", PARENT, *args],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert parent.stdout is not None
    server = psutil.Process(int(parent.stdout.readline()))
    children: list[psutil.Process] = []

    async def started() -> bool:
        children[:] = server.children()
        return bool(children)

    if args[0] != "replica":
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
    for pipe in (parent.stdin, parent.stdout):
        assert pipe is not None
        pipe.close()


@pytest.mark.parametrize("how", ["replica", "pid-file"])
async def test_a_sigkilled_test_process_takes_its_servers_with_it(how: str, tmp_path: Path) -> None:
    parent, group = await _start_parent(how, str(tmp_path))
    assert all(p.status() != psutil.STATUS_ZOMBIE for p in group)
    _kill_parent(parent)
    await eventually(lambda: _gone(group), what="the server and its child to be killed with the test process")


async def test_a_server_let_go_is_left_alone(tmp_path: Path) -> None:
    parent, group = await _start_parent("released", str(tmp_path))
    try:
        _kill_parent(parent)
        # The watchdog has exited without killing: the group outlives its parent, as nothing watches it now.
        assert not await _gone(group)
    finally:
        os.killpg(group[0].pid, signal.SIGKILL)
    await eventually(lambda: _gone(group), what="the server to be cleaned up")
