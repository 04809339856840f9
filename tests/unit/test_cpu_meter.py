"""The benchmarks' CPU meter charges each part of a path what its own processes spent, and nothing else."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil  # type: ignore[import-untyped]
import pytest

from benchmarks.common import CpuMeter
from tests.waiting import eventually

pytestmark = pytest.mark.unit

BUSY = "while True: pass"
IDLE = "import sys; sys.stdin.read()"


@pytest.fixture
def children(tmp_path: Path) -> Iterator[dict[str, subprocess.Popen[bytes]]]:
    """A process that burns CPU, one that waits, and a parent whose command line names ``tmp_path``, with a
    busy child of its own."""
    marker = str(tmp_path / "server")
    parent_code = f"import subprocess, sys; subprocess.run([sys.executable, '-c', {BUSY!r}]) # {marker}"
    started = {
        "busy": subprocess.Popen([sys.executable, "-c", BUSY]),
        "idle": subprocess.Popen([sys.executable, "-c", IDLE], stdin=subprocess.PIPE),
        "server": subprocess.Popen([sys.executable, "-c", parent_code]),
    }
    try:
        yield started
    finally:
        for child in started.values():
            for grandchild in psutil.Process(child.pid).children(recursive=True):
                grandchild.kill()
            child.kill()
            child.wait()


async def test_each_part_is_charged_its_own_cpu_and_the_total_is_their_sum(
    children: dict[str, subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    server = psutil.Process(children["server"].pid)

    async def server_child_started() -> bool:
        return bool(server.children())

    await eventually(server_child_started, what="the server's busy child")
    meter = CpuMeter(
        pids={"busy": children["busy"].pid, "idle": children["idle"].pid},
        folders={"server": tmp_path / "server"},
    )
    meter.start()

    async def both_busy_parts_spent() -> bool:
        figures = meter.per(1)
        return figures["busy"] >= 50 and figures["server"] >= 50

    await eventually(both_busy_parts_spent, what="50 ms of CPU in each busy part")
    figures = meter.per(10)
    assert figures["idle"] < 5  # a waiting process spends next to nothing
    assert figures["total"] == pytest.approx(figures["busy"] + figures["idle"] + figures["server"], abs=0.02)


def test_a_process_that_has_gone_is_left_out_rather_than_failing() -> None:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    meter = CpuMeter(pids={"gone": gone.pid})
    meter.start()
    gone.wait()
    assert meter.per(1) == {"gone": 0.0, "total": 0.0}
