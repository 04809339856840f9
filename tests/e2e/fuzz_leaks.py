"""A Schemathesis check loaded into the stateful API fuzz run (``SCHEMATHESIS_HOOKS``): tickets stay private.

Every request the owner (customer A) made successfully on one of their tickets is replayed as the other
customer and as an agent who neither holds nor is offered the ticket: each must get the same 404
``ticket_not_found`` as a missing ticket, and the other customer's ticket list must not name it. Writes are
replayed too: a refused write changes nothing, and one that is not refused is the leak this check reports.
Each probe is logged to a file, so the test can tell that the check ran at all.
"""

from __future__ import annotations

import json
import os
from typing import Any

import requests
import schemathesis

PEERS_ENV = "SUPPORTDESK_FUZZ_PEERS"  # JSON: {"customer-b": "<token>", "agent": "<token>"}
PROBES_ENV = "SUPPORTDESK_FUZZ_PROBES"  # file: one line per replayed request


@schemathesis.check
def tickets_stay_private(ctx: schemathesis.CheckContext, response: schemathesis.Response, case: Any) -> None:
    template = case.operation.path
    if "{ticket_id}" not in template or not 200 <= response.status_code < 300:
        return
    ticket_id = case.path_parameters["ticket_id"]
    peers: dict[str, str] = json.loads(os.environ[PEERS_ENV])
    for peer, token in peers.items():
        replayed = case.call(headers={"Authorization": f"Bearer {token}"})
        _log(f"{peer} {case.method} {template} -> {replayed.status_code}")
        code = _code(replayed)
        if replayed.status_code != 404 or code != "ticket_not_found":
            raise AssertionError(
                f"{peer} got {replayed.status_code} {code!r} for {case.method} {template} on a ticket of "
                f"another customer (expected 404 ticket_not_found): {replayed.text[:300]}"
            )
    listed = requests.get(
        case.operation.schema.get_base_url().rstrip("/") + "/v1/tickets",
        headers={"Authorization": f"Bearer {peers['customer-b']}"},
        timeout=10,
    )
    _log(f"customer-b GET /v1/tickets -> {listed.status_code}")
    if listed.status_code != 200 or ticket_id in listed.text:
        raise AssertionError(f"customer-b's ticket list ({listed.status_code}) names {ticket_id} or fails")


def _code(response: Any) -> str | None:
    try:
        body = response.json()
    except ValueError:
        return None
    return body.get("code") if isinstance(body, dict) else None


def _log(line: str) -> None:
    with open(os.environ[PROBES_ENV], "a", encoding="utf-8") as probes:
        probes.write(line + "\n")
