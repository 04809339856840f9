"""``Idempotency-Key`` on every creating POST, with Stripe's semantics (ADR 0013, ADR 0018).

The gateway forwards the key to the owning service as ``request_id = "<caller>:<key>"`` (the caller's subject,
percent-encoded, so no two callers' scopes can overlap). The service stores it with what it creates, beside a
fingerprint of the request, in the same transaction; so a retry never creates a second object:

- same key, same body: 200 with the object the first call created (as it is now) instead of 201;
- same key, another body: 422 ``idempotency_key_reused`` (the service says FAILED_PRECONDITION; a key names
  one request, so another body under it is the client's mistake, which Stripe answers 422);
- while the first call is still being served: 409 ``idempotency_key_in_flight`` (FAILED_PRECONDITION with
  that reason maps to 409 as it is); retry after a moment.

Without a key every call is a new request.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Header

from services.gateway.openapi import problem_responses
from services.gateway.principal import Principal
from services.gateway.problems import ProblemError

IDEMPOTENCY_KEY_REUSED = "idempotency_key_reused"
IDEMPOTENCY_KEY_IN_FLIGHT = "idempotency_key_in_flight"

KEY_DESCRIPTION = (
    "Client-chosen key (e.g. a UUID). A retry with the same key and body answers 200 with what the first call "
    "created and never creates a second. The same key with another body is 422 `idempotency_key_reused`; "
    "while the first request is still being served, 409 `idempotency_key_in_flight` (retry after a moment)."
)

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key", min_length=1, max_length=255, pattern=r"^[\x21-\x7e]+$", description=KEY_DESCRIPTION
    ),
]

_IN_FLIGHT = "`idempotency_key_in_flight`: the first request with this Idempotency-Key is still being served."
_REUSED = "`idempotency_key_reused`: this Idempotency-Key was used for a request with another body."


def request_id_for(principal: Principal, idempotency_key: str | None) -> str:
    if idempotency_key is None:
        return str(uuid.uuid4())
    return f"{quote(principal.subject, safe='')}:{idempotency_key}"


@contextmanager
def reused_key_is_422() -> Iterator[None]:
    """Stripe's semantics: a key names one request, so another body under it is the client's error (422)."""
    try:
        yield
    except ProblemError as exc:
        if exc.code != IDEMPOTENCY_KEY_REUSED:
            raise
        raise ProblemError(
            422, IDEMPOTENCY_KEY_REUSED, "This Idempotency-Key was used for a request with another body."
        ) from None


def creating_responses(
    model: type[Any], what: str, *statuses: int, location: str = "", conflicts: str = "", in_flight: bool = True
) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a creating POST: 201 (with ``Location`` when ``location`` describes it), the 200 of a
    replay, the problems in ``statuses``, and 409/422 described with the idempotency codes (``conflicts``: the
    route's own reasons for a 409, e.g. "`article_slug_taken`"). ``in_flight=False`` for a route whose
    concurrent retries wait for the first and replay it."""
    responses: dict[int | str, dict[str, Any]] = {
        200: {"model": model, "description": f"A retry with an earlier Idempotency-Key and the same body: {what}."}
    }
    if location:
        responses[201] = {"headers": {"Location": {"description": location, "schema": {"type": "string"}}}}
    problems = problem_responses(*sorted({*statuses, 422, *((409,) if in_flight or conflicts else ())}))
    conflict_reasons = [reason for reason in (conflicts, _IN_FLIGHT if in_flight else "") if reason]
    if conflict_reasons:
        problems[409]["description"] = "Conflict: " + "; or ".join(conflict_reasons)
    problems[422]["description"] = f"{problems[422]['description']} Or {_REUSED}"
    return {**responses, **problems}
