"""Request fingerprints: equal exactly for requests that ask for the same thing, and stable across releases."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import uuid
from datetime import UTC, date, datetime, timedelta

import pytest

from services.kit.errors import FailedPrecondition
from services.kit.idempotency import (
    IDEMPOTENCY_KEY_REUSED,
    canonical,
    check_replay,
    fingerprint,
    same_request,
)
from services.kit.idempotency_store import claim_key
from services.routing.domain import AgentProfile, Skill
from services.routing.sla.domain import Metric, PolicyMatch, PolicySpec
from services.ticketing import domain
from services.ticketing.domain import Category, Channel, NewTicket, Priority, WalletContext

pytestmark = pytest.mark.unit


def ticket(**overrides: object) -> NewTicket:
    fields: dict[str, object] = {
        "request_id": "c-1:k-1",
        "customer_id": "c-1",
        "channel": Channel.APP,
        "category": Category.PAYMENT_FAILED,
        "subject": "Transfer failed",
        "description": "付款失败",
        "priority": Priority.HIGH,
        "language": "zh",
        "customer_tier": "gold",
        "wallet_context": WalletContext(amount="12.50", currency="CNY", occurred_at=datetime(2026, 3, 1, tzinfo=UTC)),
        **overrides,
    }
    return NewTicket(**fields)  # type: ignore[arg-type]


def test_ticket_fingerprints_are_what_they_were_before_the_shared_helper() -> None:
    """Tickets stored fingerprints before the helper existed: a retry across the upgrade must still match."""

    def before(new: NewTicket) -> str:
        fields = dataclasses.asdict(new)
        del fields["request_id"]
        text = json.dumps(
            fields,
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
            default=lambda v: v.isoformat(),
        )
        return hashlib.sha256(text.encode()).hexdigest()

    for new in (ticket(), ticket(priority=None, wallet_context=WalletContext())):
        assert domain.request_fingerprint(new) == before(new)


def test_the_request_id_and_excluded_fields_do_not_count() -> None:
    assert domain.request_fingerprint(ticket()) == domain.request_fingerprint(ticket(request_id="c-1:k-2"))
    assert domain.request_fingerprint(ticket()) != domain.request_fingerprint(ticket(subject="Transfer failed!"))
    assert fingerprint({"id": 1, "name": "a"}, exclude=("id",)) == fingerprint({"id": 2, "name": "a"}, exclude=("id",))


def test_every_field_and_its_order_counts() -> None:
    profile = AgentProfile("Li Lei", (Skill("payments", 5), Skill("cards", 3)), ("en", "zh"), 2)
    assert fingerprint(profile) == fingerprint(dataclasses.replace(profile))
    for other in (
        dataclasses.replace(profile, capacity=3),
        dataclasses.replace(profile, skills=(Skill("payments", 4), Skill("cards", 3))),
        dataclasses.replace(profile, languages=("zh", "en")),  # order is what was asked for
    ):
        assert fingerprint(other) != fingerprint(profile)


def test_canonical_forms() -> None:
    spec = PolicySpec(
        name="Urgent",
        position=0,
        match=PolicyMatch(priorities=("urgent",)),
        targets={Metric.FIRST_RESPONSE: timedelta(minutes=2)},
        calendar_id=uuid.UUID(int=7),
    )
    plain = canonical(spec)
    assert isinstance(plain, dict)
    assert plain["targets"] == {"first_response": 120.0}
    assert plain["calendar_id"] == str(uuid.UUID(int=7))
    assert canonical({"when": date(2026, 10, 1), "tags": frozenset({"b", "a"})}) == {
        "when": "2026-10-01",
        "tags": ["a", "b"],
    }
    # Key order in a mapping never matters.
    assert fingerprint({"a": 1, "b": 2}) == fingerprint({"b": 2, "a": 1})
    with pytest.raises(TypeError):
        canonical(object())


def test_an_empty_stored_fingerprint_predates_fingerprints_and_matches_anything() -> None:
    assert [same_request(stored, "abc") for stored in ("", "abc", "abd")] == [True, True, False]
    check_replay("", "abc", "a rule")
    with pytest.raises(FailedPrecondition) as refused:
        check_replay("abc", "abd", "a rule")
    assert refused.value.code == IDEMPOTENCY_KEY_REUSED


def test_claims_are_scoped_by_kind_and_tickets_claim_the_bare_request_id() -> None:
    assert claim_key("", "c-1:k-1") == "c-1:k-1"
    assert claim_key("agent", "c-1:k-1") != claim_key("routing_rule", "c-1:k-1")
    # No request_id can pose as another scope's key: the separator never appears in a gateway request_id.
    assert claim_key("agent", "x") != claim_key("", "agent:x")
