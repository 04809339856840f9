"""Fixtures of the fault suite: its own Postgres server (scenarios stop it), settings, the results table."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest

from services.runtime.embedded_postgres import EmbeddedPostgres
from tests.conftest import make_scratch_dir
from tests.faults.harness.lifeline import Lifeline
from tests.faults.harness.results import Results
from tests.faults.harness.scenario import FaultSettings

RESULTS = Results()


@pytest.fixture(scope="session")
def fault_settings() -> FaultSettings:
    """Bounded by default (CI); the long run raises duration and rounds through the environment."""
    return FaultSettings(
        duration_s=float(os.environ.get("SUPPORTDESK_FAULTS_DURATION_S", "5")),
        rounds=int(os.environ.get("SUPPORTDESK_FAULTS_ROUNDS", "1")),
        seed=int(os.environ.get("SUPPORTDESK_FAULTS_SEED", "8")),
        long=os.environ.get("SUPPORTDESK_FAULTS_LONG", "") == "1",
        ack_wait_s=float(os.environ.get("SUPPORTDESK_FAULTS_ACK_WAIT_S", "5")),
    )


@pytest.fixture(scope="session")
def fault_results() -> Results:
    return RESULTS


@pytest.fixture(scope="session")
def fault_postgres() -> Iterator[EmbeddedPostgres]:
    """A Postgres server of the fault suite alone: scenarios kill it, so it is not the session's shared one."""
    data_dir = make_scratch_dir("supportdesk-faults-pg-")
    server = EmbeddedPostgres(data_dir, run_as=os.environ.get("SUPPORTDESK_PG_USER"))
    lifeline = Lifeline()
    # The pid file, not a pid: scenarios restart the server, and the file always names the running postmaster.
    lifeline.watch(server.data_dir / "postmaster.pid")
    server.start()
    try:
        yield server
    finally:
        server.stop()
        lifeline.close()
        shutil.rmtree(data_dir, ignore_errors=True)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    if not RESULTS.rows:
        return
    path = RESULTS.write(config._tmp_path_factory.getbasetemp())  # type: ignore[attr-defined]
    terminalreporter.section("fault scenarios")
    terminalreporter.write_line(RESULTS.table())
    terminalreporter.write_line(f"results: {path}")
