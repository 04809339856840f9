"""Fixtures for real NATS and Postgres servers.

With ``TEST_NATS_URL`` / ``TEST_DATABASE_URL`` set, tests use those servers. Otherwise the session
starts its own on free ports with temporary data, so the suite never touches whatever this machine
happens to run on the default ports.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import uuid
from collections.abc import Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import asyncpg
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from services.runtime.embedded_nats import EmbeddedNats
from services.runtime.embedded_postgres import EmbeddedPostgres

T = TypeVar("T")


def make_scratch_dir(prefix: str = "supportdesk-test-") -> Path:
    """A new folder under the system temp folder that any user may traverse (but not list).

    Not under pytest's tmp_path: /tmp/pytest-of-root is mode 700, and when tests run as root
    PostgreSQL runs as an unprivileged user who must be able to reach a data folder inside it.
    """
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o711)
    return path


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine from sync code on a private loop in a worker thread.

    This works whether or not the calling thread has a running loop, and leaves the session's
    event loop alone.
    """
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


@pytest.fixture
def scratch_dir() -> Iterator[Path]:
    """A fresh folder that an unprivileged PostgreSQL user can reach; removed afterwards."""
    path = make_scratch_dir()
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def nats_url() -> Iterator[str]:
    """URL of a NATS server with JetStream: TEST_NATS_URL, or one started for this session."""
    given = os.environ.get("TEST_NATS_URL")
    if given:
        yield given
        return
    data_dir = make_scratch_dir("supportdesk-test-nats-")
    try:
        with EmbeddedNats(data_dir) as server:
            yield server.url
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    """URL of a Postgres database: TEST_DATABASE_URL, or a server started for this session."""
    given = os.environ.get("TEST_DATABASE_URL")
    if given:
        yield given
        return
    data_dir = make_scratch_dir("supportdesk-test-pg-")
    try:
        with EmbeddedPostgres(data_dir, run_as=os.environ.get("SUPPORTDESK_PG_USER")) as server:
            yield server.url
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


@contextmanager
def temporary_database(server_url: str) -> Iterator[str]:
    """Create an empty, uniquely named database next to ``server_url``'s; drop it on exit."""
    name = f"t_{uuid.uuid4().hex}"

    async def execute(sql: str) -> None:
        connection = await asyncpg.connect(server_url)
        try:
            await connection.execute(sql)
        finally:
            await connection.close()

    run_async(execute(f'CREATE DATABASE "{name}"'))
    try:
        yield urlsplit(server_url)._replace(path=f"/{name}").geturl()
    finally:
        run_async(execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def fresh_database_url(database_url: str) -> Iterator[str]:
    """URL of a new, empty database for one test, on the server behind ``database_url``."""
    with temporary_database(database_url) as url:
        yield url


@pytest.fixture(scope="module")
def module_database_url(database_url: str) -> Iterator[str]:
    """URL of a new, empty database shared by the tests of one module."""
    with temporary_database(database_url) as url:
        yield url


@pytest.fixture(scope="session")
def span_exporter() -> InMemorySpanExporter:
    """Every span of this test process, kept in memory (the global provider can be set once per process)."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    return exporter


@pytest.fixture
def spans(span_exporter: InMemorySpanExporter) -> InMemorySpanExporter:
    """The spans finished during one test."""
    span_exporter.clear()
    return span_exporter
