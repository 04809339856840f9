"""Schemathesis against the running backend's own /openapi.json, once per identity, then statefully.

Every answer must be documented (status, content type, headers, body schema), no request may cause a server
error, invalid requests must be refused, and 405s must name the allowed methods. The stateful run chains one
customer's ticket calls and replays each success as outsiders, who must not reach the ticket (ADR 0052). The
runs are bounded so CI stays quick; a longer run is one environment variable away (README, "Tests").
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import make_scratch_dir
from tests.e2e import fuzz_leaks
from tests.e2e.test_up import Backend

pytestmark = pytest.mark.e2e

CONFIG = Path(__file__).with_name("schemathesis.toml")
ROOT = Path(__file__).parents[2]
IDENTITIES = [("customer", "c-fuzz"), ("agent", "a-fuzz"), ("supervisor", "s-fuzz"), ("admin", "ad-fuzz")]
MAX_EXAMPLES = int(os.environ.get("SUPPORTDESK_FUZZ_MAX_EXAMPLES", "8"))
MAX_TIME_S = int(os.environ.get("SUPPORTDESK_FUZZ_MAX_TIME_S", "25"))


@pytest.fixture(scope="module")
def backend() -> Iterator[Backend]:
    data_dir = make_scratch_dir("supportdesk-fuzz-")
    # Generated webhook URLs must never send a delivery off this machine. Each identity fires hundreds of
    # requests in seconds; rate limits would turn most of them into 429s (documented, so still conforming)
    # and leave the routes behind them unexplored.
    running = Backend(
        data_dir,
        {"SUPPORTDESK_WEBHOOK_ALLOWED_HOSTS": "127.0.0.1,localhost", "SUPPORTDESK_RATE_LIMIT_ENABLED": "false"},
    )
    try:
        yield running
    finally:
        running.interrupt()
        shutil.rmtree(data_dir, ignore_errors=True)


@pytest.mark.parametrize(("role", "subject"), IDENTITIES)
def test_the_api_keeps_its_description_under_generated_requests(backend: Backend, role: str, subject: str) -> None:
    command = [
        str(Path(sys.executable).parent / "schemathesis"),
        "--config-file",
        str(CONFIG),
        "run",
        f"{backend.url}/openapi.json",
        "--header",
        f"Authorization: Bearer {backend.token(role, subject)}",
        "--checks",
        "all",
        # Business rules (a known language tag, who may do what) refuse some schema-valid requests on
        # purpose; what must hold is that nothing errors and every answer matches the description.
        "--exclude-checks",
        "positive_data_acceptance",
        "--phases",
        "examples,coverage,fuzzing",
        "--max-examples",
        str(MAX_EXAMPLES),
        "--max-time",
        str(MAX_TIME_S),
        "--workers",
        "1",
        "--no-color",
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=MAX_TIME_S * 4 + 60, check=False)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert "operations" in result.stdout.lower(), result.stdout[-2000:]  # it ran against the API, not nothing


def test_stateful_sequences_find_no_server_error_and_no_ticket_of_another_customer(
    backend: Backend, tmp_path: Path
) -> None:
    """Customer A's calls chained by the links Schemathesis infers (create a ticket, read it, post to it, change
    it), every check on each answer, and each success on a ticket replayed as customer B and as an agent who
    neither holds nor is offered it (tests/e2e/fuzz_leaks.py)."""
    probes = tmp_path / "probes.log"
    peers = {"customer-b": backend.token("customer", "c-fuzz-b"), "agent": backend.token("agent", "a-bystander")}
    command = [
        str(Path(sys.executable).parent / "schemathesis"),
        "--config-file",
        str(CONFIG),
        "run",
        f"{backend.url}/openapi.json",
        "--header",
        f"Authorization: Bearer {backend.token('customer', 'c-fuzz-a')}",
        "--checks",
        "all",
        "--exclude-checks",
        "positive_data_acceptance",
        "--phases",
        "stateful",
        # Where customers own objects: the ticket resources (the per-role runs above cover every operation).
        "--include-path-regex",
        "^/v1/tickets",
        "--max-examples",
        str(MAX_EXAMPLES),
        "--max-time",
        str(MAX_TIME_S),
        "--workers",
        "1",
        "--no-color",
    ]
    env = {
        **os.environ,
        "SCHEMATHESIS_HOOKS": "tests.e2e.fuzz_leaks",
        fuzz_leaks.PEERS_ENV: json.dumps(peers),
        fuzz_leaks.PROBES_ENV: str(probes),
    }
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=MAX_TIME_S * 4 + 60, check=False, env=env, cwd=ROOT
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    replayed = probes.read_text().splitlines() if probes.exists() else []
    # The check ran on the owner's tickets, as both other identities, reads and writes alike.
    assert any(line.startswith("customer-b GET /v1/tickets/{ticket_id} ") for line in replayed), result.stdout[-3000:]
    assert any(line.startswith("agent GET /v1/tickets/{ticket_id} ") for line in replayed), replayed[:20]
    assert any(line.startswith("customer-b POST /v1/tickets/{ticket_id}/messages ") for line in replayed), replayed[:20]
    assert any(line.startswith("customer-b GET /v1/tickets -> 200") for line in replayed), replayed[:20]
