from pathlib import Path

import pytest
from pydantic import ValidationError

from services.kit.settings import ServiceSettings
from services.runtime.up import UpSettings

pytestmark = pytest.mark.unit


def test_service_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://u@db:5432/support")
    monkeypatch.setenv("NATS_URL", "nats://bus:4222")
    monkeypatch.setenv("SUPPORTDESK_GRPC_PORT", "6001")
    monkeypatch.setenv("SUPPORTDESK_DB_POOL_MAX", "8")
    settings = ServiceSettings()  # type: ignore[call-arg]
    assert settings.database_url == "postgresql://u@db:5432/support"
    assert settings.nats_url == "nats://bus:4222"
    assert settings.grpc_port == 6001
    assert settings.db_pool_max == 8


def test_a_service_without_a_database_url_refuses_to_start(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    with pytest.raises(ValidationError, match="DATABASE_URL"):
        ServiceSettings()  # type: ignore[call-arg]


def test_bad_numbers_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://x")
    monkeypatch.setenv("SUPPORTDESK_GRPC_PORT", "many")
    with pytest.raises(ValidationError, match="grpc_port"):
        ServiceSettings()  # type: ignore[call-arg]


def test_up_embeds_servers_unless_urls_are_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("NATS_URL", raising=False)
    monkeypatch.delenv("SUPPORTDESK_DATA_DIR", raising=False)
    settings = UpSettings()
    assert settings.database_url is None
    assert settings.nats_url is None
    assert settings.data_dir == Path(".supportdesk")
    assert settings.http_port == 8080
    monkeypatch.setenv("NATS_URL", "nats://elsewhere:4222")
    monkeypatch.setenv("SUPPORTDESK_DATA_DIR", "/var/lib/supportdesk")
    settings = UpSettings()
    assert settings.nats_url == "nats://elsewhere:4222"
    assert settings.data_dir == Path("/var/lib/supportdesk")
