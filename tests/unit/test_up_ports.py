"""``supportdesk up`` gives every gRPC service its own free metrics port, beside its gRPC port."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.runtime.up import UpSettings, _children

pytestmark = pytest.mark.unit


def test_each_service_gets_distinct_grpc_and_metrics_ports(tmp_path: Path) -> None:
    children = _children(UpSettings(), tmp_path, "nats://n", "postgresql://p", 8080, tmp_path / "key")
    services = {c.name: c.env for c in children if c.name != "gateway"}
    assert set(services) == {"ticketing", "routing", "notify"}
    ports = [
        int(env[key]) for env in services.values() for key in ("SUPPORTDESK_GRPC_PORT", "SUPPORTDESK_METRICS_PORT")
    ]
    assert len(set(ports)) == 6
    assert all(port > 0 for port in ports)
