"""What the benchmarks share: child processes, waiting for a port, percentiles, the machine, result files."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped]

HOST = "127.0.0.1"
HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile; NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def latency_ms(seconds: Sequence[float]) -> dict[str, float]:
    """p50/p95/p99 in milliseconds of durations given in seconds."""
    return {f"p{p}": round(1000 * percentile(seconds, p), 2) for p in (50, 95, 99)}


def machine() -> dict[str, Any]:
    return {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()}


class CpuMeter:
    """CPU seconds spent by named groups of processes between ``start`` and ``per``: which part of a path
    costs what. A group named by a folder holds every process whose command line names it and their children
    (a Postgres server and its backends, as they are when the meter starts)."""

    def __init__(self, pids: dict[str, int] | None = None, folders: dict[str, Path] | None = None) -> None:
        self._pids = dict(pids or {})
        self._folders = dict(folders or {})
        self._members: dict[str, list[psutil.Process]] = {}
        self._before: dict[int, float] = {}

    def start(self) -> None:
        self._members = {name: [psutil.Process(pid)] for name, pid in self._pids.items()}
        for proc in psutil.process_iter():
            with contextlib.suppress(psutil.Error):
                cmdline = " ".join(proc.cmdline())
                for name, folder in self._folders.items():
                    if str(folder) in cmdline:
                        self._members.setdefault(name, []).extend((proc, *proc.children()))
        self._before = {
            proc.pid: seconds
            for procs in self._members.values()
            for proc in procs
            if (seconds := _cpu_s(proc)) is not None
        }

    def per(self, items: int) -> dict[str, float]:
        """Milliseconds of CPU per item since ``start``, by group, and their ``total``."""
        spent = {name: sum(self._spent_s(proc) for proc in procs) for name, procs in self._members.items()}
        figures = {name: round(1000 * seconds / max(items, 1), 2) for name, seconds in sorted(spent.items())}
        return {**figures, "total": round(sum(figures.values()), 2)}

    def _spent_s(self, proc: psutil.Process) -> float:
        now = _cpu_s(proc)
        return 0.0 if now is None else now - self._before.get(proc.pid, now)


def _cpu_s(proc: psutil.Process) -> float | None:
    """User and system CPU seconds so far; None for a process that has gone (its share is not counted)."""
    with contextlib.suppress(psutil.Error):
        times = proc.cpu_times()
        return float(times.user + times.system)
    return None


@contextlib.contextmanager
def temp_dir(prefix: str) -> Iterator[Path]:
    """A temporary folder the unprivileged user of the embedded Postgres can traverse; kept if the run fails."""
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    folder.chmod(0o711)
    try:
        yield folder
    except BaseException:
        print(f"failed; logs kept in {folder}", file=sys.stderr)
        raise
    shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def process(args: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A child process for the ``with`` block, its output in ``log``; stopped with SIGTERM (then SIGKILL)."""
    with log.open("wb") as out:
        child = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield child
    finally:
        child.terminate()
        try:
            child.wait(timeout=15)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


async def wait_for_port(port: int, child: subprocess.Popen[bytes], timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if child.poll() is not None:
            raise SystemExit(f"{child.args!r} exited with {child.returncode}")
        try:
            _, writer = await asyncio.open_connection(HOST, port)
        except OSError:
            await asyncio.sleep(0.1)
            continue
        writer.close()
        return
    raise SystemExit(f"port {port} did not open")


@contextlib.contextmanager
def supportdesk_up(data_dir: Path, extra_env: dict[str, str] | None = None) -> Iterator[tuple[str, int]]:
    """``supportdesk up`` on a free port: its base URL and pid. Embedded servers unless ``extra_env`` names URLs."""
    env = {
        **os.environ,
        "SUPPORTDESK_DATA_DIR": str(data_dir),
        "SUPPORTDESK_HTTP_PORT": "0",
        "SUPPORTDESK_LOG_LEVEL": "WARNING",
        # A few subjects drive the whole load: limits stay on (their cost is part of the path) but never bite.
        "SUPPORTDESK_RATE_LIMIT_READS": "1000000000",
        "SUPPORTDESK_RATE_LIMIT_WRITES": "1000000000",
    }
    env.pop("NATS_URL", None)
    env.pop("DATABASE_URL", None)
    env.update(extra_env or {})
    data_dir.mkdir(parents=True, exist_ok=True)
    log = data_dir / "supportdesk-up.log"
    with log.open("wb") as err:
        child = subprocess.Popen(
            [str(Path(sys.executable).parent / "supportdesk"), "up"], env=env, stdout=subprocess.PIPE, stderr=err
        )
    try:
        assert child.stdout is not None
        url = None
        for raw in child.stdout:
            match = re.search(r"supportdesk is up: (\S+)", raw.decode())
            if match:
                url = match.group(1)
                break
        if url is None:
            raise SystemExit(f"supportdesk up did not start; see {log}")
        # Keep reading what it prints, so a full pipe never blocks it.
        threading.Thread(target=shutil.copyfileobj, args=(child.stdout, _Discard()), daemon=True).start()
        yield url, child.pid
    finally:
        child.send_signal(2)  # SIGINT: the supervisor stops its children in order
        try:
            child.wait(timeout=60)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def log_messages(log: Path) -> dict[str, int]:
    """How often each warning or error message appeared in the services' logs (JSON lines) during the run."""
    counts: dict[str, int] = {}
    for line in log.read_text(errors="replace").splitlines():
        with contextlib.suppress(ValueError):
            record = json.loads(line)
            if isinstance(record, dict):
                key = f"{record.get('service', '?')}: {record.get('message', line[:80])}"
                counts[key] = counts.get(key, 0) + 1
    return dict(sorted(counts.items(), key=lambda item: -item[1]))


class _Discard:
    def write(self, data: bytes) -> int:
        return len(data)


def write_result(name: str, result: dict[str, Any]) -> Path:
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"{name}-{int(time.time())}.json"
    out.write_text(json.dumps(result, indent=2, default=str))
    return out
