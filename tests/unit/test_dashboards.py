"""The Grafana dashboard and the alerting rules query only series the code defines."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY

# Importing the modules registers their metrics; nothing else runs at import time.
from services.gateway import metrics as gateway_metrics
from services.kit import metrics as kit_metrics
from services.routing import metrics as routing_metrics
from services.routing import timer_metrics
from services.ticketing import metrics as ticketing_metrics

pytestmark = pytest.mark.unit

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "supportdesk.json"
RULES = DEPLOY / "prometheus" / "rules.yml"
OURS = re.compile(r"\bsupportdesk_[a-z0-9_]+\b")
_SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}


def defined_series() -> set[str]:
    assert {gateway_metrics, kit_metrics, routing_metrics, ticketing_metrics, timer_metrics}
    return {
        family.name + suffix
        for family in REGISTRY.collect()
        if family.name.startswith("supportdesk_")
        for suffix in _SUFFIXES[family.type]
    }


def expressions(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        if isinstance(node.get("expr"), str):
            yield node["expr"]
        for value in node.values():
            yield from expressions(value)
    elif isinstance(node, list):
        for item in node:
            yield from expressions(item)


def test_the_catalogue_holds_every_promised_series() -> None:
    series = defined_series()
    for name in (
        "supportdesk_http_requests_total",
        "supportdesk_grpc_server_handling_seconds_bucket",
        "supportdesk_queue_waiting_tickets",
        "supportdesk_queue_longest_wait_seconds",
        "supportdesk_skill_waiting_tickets",
        "supportdesk_skill_longest_wait_seconds",
        "supportdesk_agents",
        "supportdesk_offers_total",
        "supportdesk_first_response_seconds_bucket",
        "supportdesk_sla_warnings_total",
        "supportdesk_sla_breaches_total",
        "supportdesk_sla_met_total",
        "supportdesk_consumer_pending_messages",
        "supportdesk_consumer_ack_pending_messages",
        "supportdesk_outbox_unpublished_events",
        "supportdesk_outbox_oldest_unpublished_age_seconds",
        "supportdesk_dead_letters_total",
        "supportdesk_redactions_total",
    ):
        assert name in series


def test_the_dashboard_queries_only_defined_series() -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    queries = list(expressions(dashboard["panels"]))
    assert len(queries) >= 20
    used = {name for query in queries for name in OURS.findall(query)}
    assert used, "the dashboard shows our metrics"
    assert used - defined_series() == set()
    waits = {
        "supportdesk_queue_waiting_tickets",
        "supportdesk_queue_longest_wait_seconds",
        "supportdesk_skill_waiting_tickets",
        "supportdesk_skill_longest_wait_seconds",
        "supportdesk_agents",
    }
    assert waits <= used, "queue depth and waits per queue and per skill, and agents by presence, are shown"


def test_the_dashboard_uses_the_provisioned_data_source() -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    provisioned = (DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml").read_text()
    assert "uid: prometheus" in provisioned
    for panel in dashboard["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"] == {"type": "prometheus", "uid": "prometheus"}, panel["title"]


def test_the_alerting_rules_query_only_defined_series() -> None:
    used = set(OURS.findall(RULES.read_text(encoding="utf-8")))
    assert {"supportdesk_sla_breaches_total", "supportdesk_consumer_pending_messages"} <= used
    assert used - defined_series() == set()
