"""Schemathesis against the running backend's own /openapi.json, once per identity.

Every answer must be documented (status, content type, headers, body schema), no request may cause a server
error, invalid requests must be refused, and 405s must name the allowed methods. The run is bounded so CI
stays quick; a longer run is one environment variable away (README, "Tests").
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import make_scratch_dir
from tests.e2e.test_up import Backend

pytestmark = pytest.mark.e2e

CONFIG = Path(__file__).with_name("schemathesis.toml")
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
