"""The embedded NATS and Postgres servers: they start, keep their data across restarts, and stop."""

from __future__ import annotations

import os
import re
import shutil
import socket
import tempfile
from pathlib import Path

import asyncpg
import nats
import psutil
import pytest
from nats.js.api import StorageType

from services.runtime.embedded_nats import EmbeddedNats
from services.runtime.embedded_postgres import EmbeddedPostgres

pytestmark = pytest.mark.integration


def assert_all_gone(processes: list[psutil.Process]) -> None:
    # psutil checks the start time too, so a reused pid does not count as still running.
    _, alive = psutil.wait_procs(processes, timeout=10)
    assert alive == []


def process_tree(pid: int) -> list[psutil.Process]:
    leader = psutil.Process(pid)
    return [leader, *leader.children(recursive=True)]


async def test_session_servers_answer(nats_url: str, database_url: str) -> None:
    client = await nats.connect(nats_url)
    try:
        await client.jetstream().account_info()
    finally:
        await client.close()
    connection = await asyncpg.connect(database_url)
    try:
        assert await connection.fetchval("SELECT 1") == 1
    finally:
        await connection.close()


async def test_nats_runs_jetstream_and_stops_without_leftovers(scratch_dir: Path) -> None:
    with EmbeddedNats(scratch_dir) as server:
        pid = server.pid
        assert pid is not None
        processes = process_tree(pid)
        client = await nats.connect(server.url)
        try:
            info = await client.jetstream().account_info()
        finally:
            await client.close()
        assert info.limits is not None
    assert_all_gone(processes)
    assert server.pid is None
    server.stop()  # a second stop is harmless


async def test_nats_stream_survives_restart(scratch_dir: Path) -> None:
    with EmbeddedNats(scratch_dir) as server:
        client = await nats.connect(server.url)
        try:
            js = client.jetstream()
            await js.add_stream(name="EVENTS", subjects=["events.>"], storage=StorageType.FILE)
            for number in range(3):
                await js.publish(f"events.{number}", f"message {number}".encode())
        finally:
            await client.close()

    with EmbeddedNats(scratch_dir) as server:
        client = await nats.connect(server.url)
        try:
            js = client.jetstream()
            stream = await js.stream_info("EVENTS")
            third = await js.get_msg("EVENTS", seq=3)
        finally:
            await client.close()
    assert stream.state.messages == 3
    assert third.data == b"message 2"


async def test_postgres_keeps_data_across_restart_and_stops_without_leftovers(scratch_dir: Path) -> None:
    with EmbeddedPostgres(scratch_dir) as server:
        connection = await asyncpg.connect(server.url)
        try:
            assert await connection.fetchval("SELECT 1") == 1
            await connection.execute("CREATE TABLE notes (id int PRIMARY KEY, body text NOT NULL)")
            await connection.execute("INSERT INTO notes VALUES (1, 'kept'), (2, 'also kept')")
        finally:
            await connection.close()
        pid = server.pid
        assert pid is not None
        processes = process_tree(pid)
        assert len(processes) > 1  # the postmaster and its background workers
    assert_all_gone(processes)
    assert server.pid is None
    server.stop()  # a second stop is harmless

    with EmbeddedPostgres(scratch_dir) as server:
        connection = await asyncpg.connect(server.url)
        try:
            rows = await connection.fetch("SELECT id, body FROM notes ORDER BY id")
        finally:
            await connection.close()
    assert [tuple(row) for row in rows] == [(1, "kept"), (2, "also kept")]


async def test_postgres_same_instance_restarts_on_the_same_url(scratch_dir: Path) -> None:
    server = EmbeddedPostgres(scratch_dir, database="inventory")
    with server:
        first_url = server.url
        assert first_url.endswith("/inventory")
    with server:
        assert server.url == first_url
        connection = await asyncpg.connect(server.url)
        try:
            assert await connection.fetchval("SELECT current_database()") == "inventory"
        finally:
            await connection.close()


async def test_fresh_database_is_empty_and_separate(database_url: str, fresh_database_url: str) -> None:
    assert fresh_database_url != database_url
    connection = await asyncpg.connect(fresh_database_url)
    try:
        tables = await connection.fetchval(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
        )
    finally:
        await connection.close()
    assert tables == 0


def test_nats_start_failure_reports_the_log(scratch_dir: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        server = EmbeddedNats(scratch_dir, port=taken.getsockname()[1])
        with pytest.raises(RuntimeError, match="address already in use"):
            server.start()
    assert server.pid is None


@pytest.mark.skipif(os.geteuid() != 0, reason="the run-as user only matters when running as root")
def test_postgres_refuses_a_data_folder_its_user_cannot_reach() -> None:
    private = Path(tempfile.mkdtemp(prefix="supportdesk-test-private-"))  # mode 700, owned by root
    try:
        expected = f"cannot enter folder {re.escape(str(private))}.*SUPPORTDESK_DATA_DIR"
        with pytest.raises(RuntimeError, match=expected):
            EmbeddedPostgres(private / "pg").start()
        assert list(private.iterdir()) == []
    finally:
        shutil.rmtree(private)
