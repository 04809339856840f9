"""`supportdesk up` as a user runs it: embedded servers, four services, a ticket over HTTP, Ctrl-C."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from tests.conftest import make_scratch_dir

pytestmark = pytest.mark.e2e

BIN = Path(sys.executable).parent
URL_LINE = re.compile(r"supportdesk is up: (http://127\.0\.0\.1:\d+)")


class Backend:
    """One `supportdesk up` process and everything it started."""

    def __init__(self, data_dir: Path, servers: dict[str, str] | None = None) -> None:
        self.env = {
            **os.environ,
            "SUPPORTDESK_DATA_DIR": str(data_dir),
            "SUPPORTDESK_HTTP_PORT": "0",
            "SUPPORTDESK_LOG_LEVEL": "INFO",
        }
        for name in ("NATS_URL", "DATABASE_URL"):  # embedded servers, exactly as on a fresh machine...
            self.env.pop(name, None)
        self.env.update(servers or {})  # ...unless the test names servers to use
        self.log = data_dir / "up.log"
        self._log_file = self.log.open("wb")
        self.process = subprocess.Popen(
            [str(BIN / "supportdesk"), "up"], env=self.env, stdout=subprocess.PIPE, stderr=self._log_file
        )
        self.url = self._read_url(deadline=time.monotonic() + 120)

    def _read_url(self, deadline: float) -> str:
        found: list[str] = []
        assert self.process.stdout is not None
        stdout = self.process.stdout

        def read() -> None:
            for raw in stdout:
                match = URL_LINE.search(raw.decode())
                if match:
                    found.append(match.group(1))
            # keep draining so the child never blocks on a full pipe

        threading.Thread(target=read, daemon=True).start()
        while not found:
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"`supportdesk up` did not come up:\n{self.log.read_text()[-4000:]}")
            time.sleep(0.05)
        return found[0]

    def token(self, role: str, sub: str) -> str:
        out = subprocess.run(
            [str(BIN / "supportdesk"), "token", "--role", role, "--sub", sub],
            env=self.env,
            capture_output=True,
            text=True,
            check=True,
        )
        return out.stdout.strip()

    def tree(self) -> list[psutil.Process]:
        return psutil.Process(self.process.pid).children(recursive=True)

    def child_pid(self, module: str) -> int | None:
        for proc in self.tree():
            try:
                if proc.cmdline()[-2:] == ["-m", module]:
                    return proc.pid
            except psutil.NoSuchProcess:
                continue
        return None

    def interrupt(self) -> int:
        self.process.send_signal(signal.SIGINT)
        code = self.process.wait(timeout=90)
        self._log_file.close()
        return code


def wait_for(check: Any, *, timeout: float = 30, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def alive(procs: list[psutil.Process]) -> list[psutil.Process]:
    return [p for p in procs if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]


@pytest.fixture
def data_dir() -> Iterator[Path]:
    path = make_scratch_dir("supportdesk-e2e-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_up_routes_a_ticket_restarts_a_crash_keeps_data_and_stops_clean(data_dir: Path) -> None:
    backend = Backend(data_dir)
    try:
        customer = {"Authorization": f"Bearer {backend.token('customer', 'c-1')}"}
        supervisor = {"Authorization": f"Bearer {backend.token('supervisor', 's-1')}"}
        with httpx.Client(base_url=backend.url, timeout=10) as http:
            created = http.post(
                "/v1/tickets",
                headers={**customer, "Idempotency-Key": str(uuid.uuid4())},
                json={
                    "channel": "app",
                    "category": "payment_failed",
                    "subject": "Payment failed",
                    "description": "Error 51 at checkout",
                    "language": "en",
                },
            )
            assert created.status_code == 201, created.text
            ticket = created.json()
            assert created.headers["location"] == f"/v1/tickets/{ticket['id']}"
            assert http.get(f"/v1/tickets/{ticket['id']}", headers=customer).json() == ticket

            routed = wait_for(
                lambda: http.get(f"/v1/tickets/{ticket['id']}/routing", headers=supervisor).status_code == 200,
                what="routing to record the ticket",
            )
            assert routed
            entry = http.get(f"/v1/tickets/{ticket['id']}/routing", headers=supervisor).json()
            assert (entry["queue"], entry["state"], entry["priority"]) == ("payments", "waiting", "urgent")
            notes = wait_for(
                lambda: http.get("/v1/notifications", headers=customer).json()["notifications"],
                what="notify to record the customer's notification",
            )
            assert notes[0]["ticket_id"] == ticket["id"]

            # A crashed service is restarted and reported, and the system goes on routing.
            crashed = backend.child_pid("services.routing")
            assert crashed is not None
            os.kill(crashed, signal.SIGKILL)
            wait_for(
                lambda: backend.child_pid("services.routing") not in (None, crashed), what="routing to be restarted"
            )
            assert "routing exited with code -9" in backend.log.read_text()
            response = http.post(
                "/v1/tickets",
                headers=customer,
                json={"channel": "web", "category": "bank_card", "subject": "Card not linking", "language": "en"},
            )
            assert response.status_code == 201, response.text
            second = response.json()
            wait_for(
                lambda: http.get(f"/v1/tickets/{second['id']}/routing", headers=supervisor).status_code == 200,
                what="the restarted routing to record a new ticket",
            )
        processes = backend.tree()
        assert len(processes) >= 6  # nats, postgres (and its workers), four services
    finally:
        code = backend.interrupt()
    assert code == 0
    assert alive(processes) == [], "Ctrl-C must leave no process behind"

    again = Backend(data_dir)  # same data folder: the data is still there
    try:
        customer = {"Authorization": f"Bearer {again.token('customer', 'c-1')}"}
        with httpx.Client(base_url=again.url, timeout=10) as http:
            assert http.get(f"/v1/tickets/{ticket['id']}", headers=customer).json() == ticket
    finally:
        assert again.interrupt() == 0


def test_up_uses_the_servers_it_is_given(data_dir: Path, nats_url: str, fresh_database_url: str) -> None:
    backend = Backend(data_dir, {"NATS_URL": nats_url, "DATABASE_URL": fresh_database_url})
    try:
        customer = {"Authorization": f"Bearer {backend.token('customer', 'c-2')}"}
        supervisor = {"Authorization": f"Bearer {backend.token('supervisor', 's-1')}"}
        with httpx.Client(base_url=backend.url, timeout=10) as http:
            response = http.post(
                "/v1/tickets",
                headers=customer,
                json={"channel": "email", "category": "account_frozen", "subject": "Account frozen"},
            )
            assert response.status_code == 201, response.text
            ticket_id = response.json()["id"]
            wait_for(
                lambda: http.get(f"/v1/tickets/{ticket_id}/routing", headers=supervisor).status_code == 200,
                what="routing to record the ticket",
            )
    finally:
        assert backend.interrupt() == 0
    assert not (data_dir / "nats").exists()
    assert not (data_dir / "postgres").exists()
