"""notify's pure rules: who is told what, templates, quiet hours, signing, filters, the retry schedule."""

from __future__ import annotations

import random
from datetime import UTC, datetime, time

import pytest

from services.notify import recipients as r
from services.notify.deliveries.admin import host_allowed
from services.notify.delivery_rules import RetrySchedule, sign, subject_matches, valid_pattern, verify
from services.notify.domain import SUPERVISORS, Channel, Preferences, normalise_locale, quiet_until
from services.notify.templates import TEMPLATES, render

pytestmark = pytest.mark.unit

VIEW = r.TicketView("t-1", "c-1", assignee_id="a-1", language="zh", subject="付款失败", version=3)


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        (
            r.TicketOpened(r.TicketView("t-1", "c-1", category="complaint", version=1)),
            [("c-1", "ticket.received"), (SUPERVISORS, "complaint.opened")],
        ),
        (r.TicketAssigned("t-1", "a-2", 4), [("c-1", "agent.assigned"), ("a-2", "ticket.assigned")]),
        (r.MessagePosted("t-1", "agent", "c-1", "a-1", "zh", "hi", 4), [("c-1", "agent.replied")]),
        (r.MessagePosted("t-1", "customer", "c-1", "a-1", "zh", "hi", 4), [("a-1", "customer.replied")]),
        (r.MessagePosted("t-1", "customer", "c-1", "", "zh", "hi", 4), [("a-1", "customer.replied")]),
        (r.MessagePosted("t-1", "system", "c-1", "a-1", "zh", "warning", 4), []),
        (r.StatusChanged("t-1", "resolved", "c-1", 4), [("c-1", "ticket.resolved"), ("c-1", "csat.requested")]),
        (r.StatusChanged("t-1", "pending", "c-1", 4), []),
        (r.Flagged("t-1", "secret_exposed", ("recovery_phrase",), "c-1", 4), [(SUPERVISORS, "secret.exposed")]),
        (r.OfferMade("o-1", "t-1", "a-3", "payments", ""), [("a-3", "offer.received")]),
        (r.SlaWarned("t-1", "first_response", 80, "", "payments"), [("a-1", "sla.warning")]),
        (r.SlaBreached("t-1", "first_response", "payments"), [(SUPERVISORS, "sla.breached")]),
        (r.Escalated("t-1", "payments", 2), [(SUPERVISORS, "ticket.escalated")]),
        (r.AccountAlert("al-1", "c-1", "card_linked", {}, "", "zh-CN"), [("c-1", "security.card_linked")]),
        (r.AccountAlert("al-1", "c-1", "", {}, "", "zh-CN"), [("c-1", "security.alert")]),
    ],
)
def test_who_is_told_what(event: r.Event, expected: list[tuple[str, str]]) -> None:
    assert [(i.recipient, i.kind) for i in r.intents(event, VIEW)] == expected


def test_events_needing_an_unknown_ticket_wait_for_it() -> None:
    for event in (r.TicketAssigned("t-9", "a-1", 2), r.SlaWarned("t-9", "first_response", 50, "", "q")):
        with pytest.raises(r.UnknownTicket):
            r.intents(event, None)


def test_only_newer_versions_change_the_view() -> None:
    assert r.updated_view(r.TicketAssigned("t-1", "a-2", 2), VIEW) is None
    changed = r.updated_view(r.TicketAssigned("t-1", "a-2", 4), VIEW)
    assert changed is not None
    assert (changed.assignee_id, changed.version, changed.subject) == ("a-2", 4, "付款失败")


def test_security_alerts_are_marked_and_carry_the_wallets_address() -> None:
    [intent] = r.intents(r.AccountAlert("al-1", "c-1", "suspicious_login", {"device": "Pixel"}, "c@x.io", "en"), None)
    assert (intent.security, intent.fallback_email, intent.facts["alert_id"]) == (True, "c@x.io", "al-1")


@pytest.mark.parametrize("kind", sorted(TEMPLATES))
def test_every_kind_renders_in_both_languages(kind: str) -> None:
    facts = {"subject": "S", "ticket_id": "t-1", "metric": "first_response", "percent": "80", "queue": "q"}
    zh_title, zh_body = render(kind, "zh-CN", facts)
    en_title, en_body = render(kind, "en", facts)
    assert zh_title != en_title
    assert any("\u4e00" <= c <= "\u9fff" for c in zh_title + zh_body)
    assert en_title.isascii()
    assert "{" not in zh_body + en_body


def test_locales_fall_back_to_english_and_metrics_are_translated() -> None:
    assert render("ticket.received", "fr", {"subject": "x"})[0] == "We have your ticket"
    assert "首次响应" in render("sla.warning", "zh", {"metric": "first_response", "percent": "50"})[1]
    assert [normalise_locale(t) for t in ("zh", "zh-CN", "zh_Hans", "en-GB", "")] == [
        "zh-CN",
        "zh-CN",
        "zh-CN",
        "en",
        "en",
    ]


def test_quiet_hours_across_midnight_in_the_users_zone() -> None:
    prefs = Preferences("c-1", quiet_start=time(22), quiet_end=time(7), time_zone="Asia/Shanghai")
    late = datetime(2026, 3, 1, 15, 30, tzinfo=UTC)  # 23:30 in Shanghai
    early = datetime(2026, 3, 1, 21, 0, tzinfo=UTC)  # 05:00 next day in Shanghai
    noon = datetime(2026, 3, 1, 4, 0, tzinfo=UTC)  # 12:00
    assert quiet_until(prefs, late) == datetime(2026, 3, 1, 23, 0, tzinfo=UTC)
    assert quiet_until(prefs, early) == datetime(2026, 3, 1, 23, 0, tzinfo=UTC)
    assert quiet_until(prefs, noon) is None
    assert quiet_until(Preferences("c-1"), late) is None


def test_security_alerts_use_every_channel() -> None:
    prefs = Preferences("c-1", channels=(Channel.IN_APP,))
    assert not prefs.wants(Channel.EMAIL, security=False)
    assert prefs.wants(Channel.EMAIL, security=True)


def test_signatures_verify_only_with_the_key_body_and_a_fresh_timestamp() -> None:
    body = b'{"id":"e-1"}'
    signature = sign("whsec_k", 1_700_000_000, body)
    assert signature.startswith("v1=")
    assert verify("whsec_k", "1700000000", body, signature, now=1_700_000_060)
    assert not verify("whsec_other", "1700000000", body, signature, now=1_700_000_060)
    assert not verify("whsec_k", "1700000000", body + b" ", signature, now=1_700_000_060)
    assert not verify("whsec_k", "1700000001", body, signature, now=1_700_000_060)
    assert not verify("whsec_k", "1700000000", body, signature, now=1_700_000_000 + 301)
    assert not verify("whsec_k", "soon", body, signature, now=1_700_000_060)


@pytest.mark.parametrize(
    ("pattern", "subject", "matches"),
    [
        (">", "wallet.v1.account.alert", True),
        ("wallet.>", "wallet.v1.account.alert", True),
        ("wallet.>", "wallet", False),
        ("support.ticketing.v1.ticket.*", "support.ticketing.v1.ticket.created", True),
        ("support.ticketing.v1.ticket.*", "support.ticketing.v1.ticket", False),
        ("support.*.v1.sla.warning", "support.routing.v1.sla.warning", True),
        ("support.routing.v1.sla.warning", "support.routing.v1.sla.breached", False),
    ],
)
def test_event_filters_are_nats_subjects(pattern: str, subject: str, matches: bool) -> None:
    assert subject_matches(pattern, subject) is matches


def test_invalid_filters_are_refused() -> None:
    assert valid_pattern("support.>")
    assert valid_pattern("*")
    assert not any(valid_pattern(p) for p in ("a.>.b", "a..b", "a*.b", ""))


def test_the_retry_schedule_doubles_with_jitter_and_a_cap() -> None:
    schedule = RetrySchedule(max_attempts=4, base_s=1.0, cap_s=5.0, jitter=0.5)
    rng = random.Random(7)
    for attempt, nominal in ((1, 1.0), (2, 2.0), (3, 4.0), (4, 5.0), (9, 5.0)):
        low, high = schedule.bounds_after(attempt)
        assert (low, high) == (nominal / 2, nominal)
        assert all(low <= schedule.delay_after(attempt, rng) <= high for _ in range(100))
    assert not schedule.exhausted(3)
    assert schedule.exhausted(4)


def test_webhook_hosts_can_be_restricted() -> None:
    assert host_allowed("https://anywhere.example/x", [])
    assert host_allowed("http://127.0.0.1:9000/x", ["127.0.0.1"])
    assert not host_allowed("http://10.0.0.8/x", ["127.0.0.1"])
    assert not host_allowed("http:///nohost", [])
