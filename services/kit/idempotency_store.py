"""SQL for the in-flight claim of idempotent creation (see ``services.kit.idempotency``).

The claim is a transaction-scoped advisory lock on a hash of the request_id, taken with ``try`` inside the
creating transaction: it never waits, it ends with the transaction (nothing to clean up after a crash), and
a (rare) hash collision only makes one unrelated request answer "in flight" for a moment.

Each kind of object claims in its own ``scope`` (e.g. ``"routing_rule"``), so a client using one key for
two different creations at once is not told the second is in flight. Tickets, the hot path, claim the bare
request_id (empty scope) inside the statement that writes them: ``claim_expression``.
"""

from __future__ import annotations

from services.kit.db import Connection


def claim_key(scope: str, request_id: str) -> str:
    """The text whose hash is locked; tests hold it to stand in for a request in flight."""
    return f"{scope}\x1f{request_id}" if scope else request_id


def claim_expression(param: str) -> str:
    """SQL that claims the key bound to ``param`` (e.g. ``"$1"``) and is true when the claim was taken."""
    return f"pg_try_advisory_xact_lock(hashtextextended({param}, 0))"


async def claim(conn: Connection, scope: str, request_id: str) -> bool:
    """Whether no other transaction is creating with ``request_id`` in ``scope`` right now; call inside the
    creating transaction, before looking for an earlier result."""
    return bool(await conn.fetchval(f"SELECT {claim_expression('$1')}", claim_key(scope, request_id)))
