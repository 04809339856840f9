"""Hostile input at the edge of the running system, and secrets that must never come out anywhere.

(Schemathesis per role lives in tests/e2e/test_api_fuzz.py; these are the hand-made cases it does not reach.)
"""

from __future__ import annotations

import random
import shutil
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import nats
import pytest
from mnemonic import Mnemonic

from services.runtime.embedded_postgres import EmbeddedPostgres
from tests.conftest import make_scratch_dir, temporary_database
from tests.faults.harness.invariants import converge
from tests.faults.harness.load import Load
from tests.faults.harness.results import Results
from tests.faults.harness.scenario import FaultSettings
from tests.faults.harness.system import SCHEMAS, System

pytestmark = pytest.mark.faults

DEEP = 5000  # nesting levels: far beyond any legitimate body, small enough to pass the size limit


@dataclass
class Running:
    system: System
    load: Load
    http: httpx.AsyncClient
    ticket_id: str


@pytest.fixture
async def running(fault_postgres: EmbeddedPostgres, fault_settings: FaultSettings) -> AsyncIterator[Running]:
    root = make_scratch_dir("supportdesk-faults-security-")
    with temporary_database(fault_postgres.url) as database_url:
        system = await System.start(root, fault_postgres, database_url)
        load = Load(system, seed=fault_settings.seed)
        try:
            async with httpx.AsyncClient(base_url=system.gateway_url, timeout=10) as http:
                created = await http.post(
                    "/v1/tickets",
                    headers={**system.auth("customer", "c-1"), "Idempotency-Key": "seed-ticket"},
                    json={"channel": "app", "category": "other", "subject": "Where is my refund?"},
                )
                assert created.status_code == 201, created.text
                yield Running(system, load, http, created.json()["id"])
        finally:
            await load.close()
            await system.close()
            shutil.rmtree(root, ignore_errors=True)


async def _snapshot(system: System) -> dict[str, str]:
    """A digest of every row of every service table."""
    digests: dict[str, str] = {}
    async with system.db() as conn:
        tables = await conn.fetch(
            "SELECT table_schema, table_name FROM information_schema.tables "
            "WHERE table_schema = ANY($1::text[]) AND table_type = 'BASE TABLE' ORDER BY 1, 2",
            list(SCHEMAS),
        )
        for t in tables:
            name = f'"{t["table_schema"]}"."{t["table_name"]}"'
            digests[name] = await conn.fetchval(
                f"SELECT md5(coalesce(string_agg(r::text, '|' ORDER BY r::text), '')) FROM {name} r"  # noqa: S608
            )
    return digests


def _hostile(ticket: str) -> list[tuple[str, str, str, dict[str, Any]]]:
    """(what, method, path, httpx arguments) of requests that must each be refused with a 4xx problem."""
    customer = "customer"
    ok_ticket = {"channel": "app", "category": "other", "subject": "x"}
    deep = "[" * DEEP + "]" * DEEP
    return [
        ("oversized body", "POST", "/v1/tickets", {"content": b'{"subject":"' + b"x" * 200_000 + b'"}'}),
        ("malformed JSON", "POST", "/v1/tickets", {"content": b'{"channel": "app",'}),
        (
            "invalid UTF-8",
            "POST",
            "/v1/tickets",
            {"content": b'{"channel":"app","category":"other","subject":"\xff\xfe"}'},
        ),
        ("UTF-16 body", "POST", "/v1/tickets", {"content": '{"channel":"app"}'.encode("utf-16")}),
        ("not JSON at all", "POST", "/v1/tickets", {"content": b"<xml>ticket</xml>", "ctype": "application/xml"}),
        ("deep JSON", "POST", "/v1/tickets", {"content": f'{{"channel":"app","subject":{deep}}}'.encode()}),
        (
            "deep JSON in a message",
            "POST",
            f"/v1/tickets/{ticket}/messages",
            {"content": f'{{"body":{deep}}}'.encode()},
        ),
        ("huge integer", "POST", f"/v1/tickets/{ticket}/csat", {"json": {"score": 10**400}}),
        ("huge float", "POST", f"/v1/tickets/{ticket}/csat", {"content": b'{"score": 1e400}'}),
        ("NaN", "POST", f"/v1/tickets/{ticket}/csat", {"content": b'{"score": NaN}'}),
        ("huge version", "PATCH", f"/v1/tickets/{ticket}", {"json": {"status": "open", "expected_version": 10**30}}),
        ("huge page size", "GET", "/v1/tickets?page_size=100000000000000000000", {}),
        ("NUL in subject", "POST", "/v1/tickets", {"json": {**ok_ticket, "subject": "refund\x00please"}}),
        ("NUL in a message", "POST", f"/v1/tickets/{ticket}/messages", {"json": {"body": "hello\x00world"}}),
        ("escape codes in language", "POST", "/v1/tickets", {"json": {**ok_ticket, "language": "\x1b[31men"}}),
        ("SQL in a path", "GET", "/v1/tickets/1'%20OR%20'1'='1", {}),
        ("SQL in a ticket id", "GET", "/v1/tickets/'; DROP TABLE tickets; --", {}),
        ("SQL in a filter", "GET", "/v1/tickets?status=open'%20OR%201=1--", {}),
        ("SQL in an enum", "POST", "/v1/tickets", {"json": {**ok_ticket, "category": "other'; DROP TABLE x;--"}}),
        ("HTML in an enum", "POST", "/v1/tickets", {"json": {**ok_ticket, "channel": "<script>alert(1)</script>"}}),
        ("HTML in a key", "POST", "/v1/tickets", {"json": ok_ticket, "headers": {"Idempotency-Key": "<b> x</b>"}}),
        ("unknown field", "POST", "/v1/tickets", {"json": {**ok_ticket, "is_admin": True}}),
        ("wrong type", "POST", "/v1/tickets", {"json": {**ok_ticket, "subject": 12345}}),
        ("staff field", "POST", "/v1/tickets", {"json": {**ok_ticket, "priority": "urgent"}}),
        ("no token", "GET", "/v1/tickets", {"role": None}),
        ("forged token", "GET", "/v1/tickets", {"headers": {"Authorization": "Bearer eyJhbGciOiJub25lIn0.e30."}}),
        ("wrong role", "PUT", "/v1/sla/policies/x", {"role": customer, "json": {}}),
    ]


async def test_hostile_input_is_refused_with_a_problem_and_changes_nothing(
    running: Running, fault_results: Results
) -> None:
    system, http = running.system, running.http
    await converge(system, running.load)
    before = await _snapshot(system)
    answers: dict[str, int] = {}
    for what, method, path, args in _hostile(running.ticket_id):
        role = args.pop("role", "customer")
        headers = {**(system.auth(role, "c-1") if role else {}), **args.pop("headers", {})}
        if "content" in args:
            headers["Content-Type"] = args.pop("ctype", "application/json")
        response = await http.request(method, path, headers=headers, **args)
        answers[what] = response.status_code
        assert 400 <= response.status_code < 500, f"{what}: {response.status_code} {response.text[:300]}"
        assert response.headers["content-type"].startswith("application/problem+json"), what
        assert response.json()["code"], what
    await converge(system, running.load)
    after = await _snapshot(system)
    changed = [table for table in before if before[table] != after[table]]
    fault_results.add("security_hostile_input", {"requests": len(answers), "refused_4xx": len(answers), "changed": 0})
    fault_results.add("security_hostile_input_statuses", dict(answers))
    assert changed == [], f"refused requests changed {changed}"


def _card(rng: random.Random) -> str:
    """A Luhn-valid 16-digit card number, fixed by the seed."""
    digits = [4, *(rng.randrange(10) for _ in range(14))]
    total = 0
    for i, d in enumerate(reversed(digits)):
        doubled = d * 2 if i % 2 == 0 else d
        total += doubled - 9 if doubled > 9 else doubled
    return "".join(map(str, digits)) + str((10 - total % 10) % 10)


async def test_a_seeded_recovery_phrase_and_card_number_never_come_out(
    running: Running, fault_settings: FaultSettings, fault_results: Results
) -> None:
    system, http = running.system, running.http
    rng = random.Random(fault_settings.seed)
    phrase = Mnemonic("english").to_mnemonic(bytes(rng.randrange(256) for _ in range(16)))
    card = _card(rng)
    spaced = " ".join(card[i : i + 4] for i in range(0, 16, 4))
    secret_text = f"my words are {phrase} and my card is {spaced}"
    customer = system.auth("customer", "c-7")
    supervisor = system.auth("supervisor", "s-1")
    bodies: list[bytes] = []

    async def send(method: str, path: str, headers: dict[str, str], **args: Any) -> httpx.Response:
        response = await http.request(method, path, headers=headers, **args)
        bodies.append(response.content)
        assert response.status_code < 500, f"{path}: {response.status_code} {response.text[:300]}"
        return response

    created = await send(
        "POST",
        "/v1/tickets",
        {**customer, "Idempotency-Key": str(uuid.uuid4())},
        json={
            "channel": "app",
            "category": "suspicious_activity",
            "subject": f"help {phrase}",
            "description": secret_text,
            "language": "en",
            "wallet_context": {"transaction_ref": spaced, "error_code": card},
        },
    )
    assert created.status_code == 201, created.text
    ticket = created.json()["id"]
    await send(
        "POST",
        f"/v1/tickets/{ticket}/messages",
        {**customer, "Idempotency-Key": str(uuid.uuid4())},
        json={
            "body": secret_text,
            "attachments": [
                {"name": f"{spaced}.png", "content_type": "image/png", "size_bytes": 10, "url": "https://x.test/a"}
            ],
        },
    )
    await send("GET", "/v1/help/articles", customer, params={"q": secret_text})
    await send("POST", "/v1/help/suggestions", customer, json={"subject": phrase, "description": secret_text})
    await send(
        "PATCH", f"/v1/tickets/{ticket}", supervisor, json={"status": "resolved", "resolution_note": secret_text}
    )
    await send("POST", f"/v1/tickets/{ticket}/csat", customer, json={"score": 2, "comment": secret_text})
    for path in (f"/v1/tickets/{ticket}", f"/v1/tickets/{ticket}/messages", f"/v1/tickets/{ticket}/timeline"):
        await send("GET", path, supervisor)
    _, left = await converge(system, running.load)
    assert left.empty, vars(left)

    words = phrase.split()
    needles = {card.encode(), spaced.encode(), phrase.encode()} | {
        " ".join(words[i : i + 4]).encode() for i in range(len(words) - 3)
    }
    places = {
        "postgres": await _postgres_text(system),
        "nats": await _nats_payloads(system),
        "logs": system.logs(),
        "responses": b"\n".join(bodies),
    }
    found = {place: sum(n in data for n in needles) for place, data in places.items()}
    # The searches look where the text went: its redacted form is there.
    assert card[-4:].encode() in places["postgres"]
    assert b"recovery_phrase" in places["postgres"]
    assert sum(len(b) for b in places.values()) > 10_000
    fault_results.add("security_secrets", {f"found_in_{p}": n for p, n in found.items()} | {"needles": len(needles)})
    assert found == dict.fromkeys(places, 0), found


async def _postgres_text(system: System) -> bytes:
    """Every row of every service table as text, plus every bytea column's raw bytes (event payloads)."""
    chunks: list[bytes] = []
    async with system.db() as conn:
        tables = await conn.fetch(
            "SELECT table_schema, table_name FROM information_schema.tables "
            "WHERE table_schema = ANY($1::text[]) AND table_type = 'BASE TABLE'",
            list(SCHEMAS),
        )
        for t in tables:
            name = f'"{t["table_schema"]}"."{t["table_name"]}"'
            chunks += [r[0].encode() for r in await conn.fetch(f"SELECT r::text FROM {name} r")]  # noqa: S608
            columns = await conn.fetch(
                "SELECT column_name FROM information_schema.columns "
                "WHERE table_schema = $1 AND table_name = $2 AND data_type = 'bytea'",
                t["table_schema"],
                t["table_name"],
            )
            for c in columns:
                rows = await conn.fetch(f'SELECT "{c[0]}" FROM {name}')  # noqa: S608
                chunks += [bytes(r[0]) for r in rows if r[0] is not None]
    return b"\n".join(chunks)


async def _nats_payloads(system: System) -> bytes:
    chunks: list[bytes] = []
    nc = await nats.connect(system.nats.url)
    try:
        js = nc.jetstream()
        for stream in await js.streams_info():
            state = stream.state
            for seq in range(state.first_seq, state.last_seq + 1) if state.messages else ():
                msg = await js.get_msg(stream.config.name, seq)
                chunks += [msg.data or b"", repr(msg.headers).encode()]
    finally:
        await nc.close()
    return b"\n".join(chunks)
