"""docker-compose.yml, .env.example and the Dockerfile, checked without a container engine."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.unit.deploy_files import (
    COLLECTOR_CONFIG,
    COMPOSE_FILE,
    DOCKERFILE,
    ENV_EXAMPLE,
    ROOT,
    compose,
    env_example,
    env_example_set,
    setting_names,
)

pytestmark = pytest.mark.unit

APP_SERVICES = ("ticketing", "routing", "notify", "gateway")
GRPC_SERVICES = ("ticketing", "routing", "notify")
# Images with no shell or HTTP client inside, which Compose therefore cannot probe. Nothing waits on them.
UNPROBEABLE = {"otel-collector"}
_INTERPOLATION = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])([^}]*))?\}")
_SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN")
_EXACT_TAG = re.compile(r":v?\d+\.\d+\.\d+(?:[-.][\w.-]+)?$|@sha256:[0-9a-f]{64}$")
# Since version 10, a Postgres release is major.minor.
_EXACT_POSTGRES_TAG = re.compile(r"^postgres:\d+\.\d+(?:-[\w.-]+)?$")


def _validate_against_compose_spec(path: Path) -> subprocess.CompletedProcess[str]:
    # check-jsonschema ships the Compose specification's schema (vendor.compose-spec): no network.
    return subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _compose_text() -> str:
    """docker-compose.yml without its comment lines (which show ${...} forms as examples)."""
    lines = COMPOSE_FILE.read_text(encoding="utf-8").splitlines()
    return "\n".join(line for line in lines if not line.lstrip().startswith("#"))


def _long_running(services: dict[str, Any]) -> dict[str, Any]:
    return {name: svc for name, svc in services.items() if svc.get("restart") != "no"}


def _mounts(service: dict[str, Any]) -> dict[str, str]:
    """Short-syntax volumes as container path → source (a host path or a named volume)."""
    mounts = {}
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        mounts[target] = source
    return mounts


def _environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    assert isinstance(env, dict), "environment is written as a mapping"
    return {key: str(value) for key, value in env.items()}


def test_the_compose_file_satisfies_the_compose_specification() -> None:
    result = _validate_against_compose_spec(COMPOSE_FILE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_schema_check_refuses_a_malformed_compose_file(tmp_path: Path) -> None:
    broken = compose()
    broken["services"]["gateway"]["healthcheck"]["retries"] = "often"
    broken["services"]["nats"]["healthchek"] = broken["services"]["nats"].pop("healthcheck")
    path = tmp_path / "docker-compose.yml"
    path.write_text(yaml.safe_dump(broken), encoding="utf-8")
    result = _validate_against_compose_spec(path)
    assert result.returncode != 0
    assert "healthchek" in result.stdout


def test_every_long_running_service_has_a_healthcheck() -> None:
    services = _long_running(compose()["services"])
    unprobed = {name for name, svc in services.items() if "healthcheck" not in svc}
    assert unprobed == UNPROBEABLE
    for name in UNPROBEABLE:
        waiting = [other for other, svc in services.items() if name in svc.get("depends_on", {})]
        assert not waiting, f"{waiting} wait for {name}, which cannot report healthy"


def test_the_services_probe_the_port_they_listen_on() -> None:
    services = compose()["services"]
    for name in GRPC_SERVICES:
        port = _environment(services[name])["SUPPORTDESK_GRPC_PORT"]
        assert services[name]["healthcheck"]["test"] == ["CMD", "supportdesk", "probe", "--grpc", f"127.0.0.1:{port}"]
        assert services[name]["command"] == ["serve", name]
    gateway = services["gateway"]
    port = _environment(gateway)["SUPPORTDESK_HTTP_PORT"]
    assert gateway["healthcheck"]["test"] == [
        "CMD",
        "supportdesk",
        "probe",
        "--http",
        f"http://127.0.0.1:{port}/readyz",
    ]


def test_services_start_only_on_healthy_dependencies_after_the_migration() -> None:
    services = compose()["services"]
    migrate = services["migrate"]
    assert migrate["command"] == ["migrate"]
    assert migrate["restart"] == "no"
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in GRPC_SERVICES:
        assert services[name]["depends_on"] == {
            "postgres": {"condition": "service_healthy"},
            "nats": {"condition": "service_healthy"},
            "migrate": {"condition": "service_completed_successfully"},
        }
    assert services["gateway"]["depends_on"] == {name: {"condition": "service_healthy"} for name in GRPC_SERVICES}
    for name, svc in services.items():
        for dependency, rule in svc.get("depends_on", {}).items():
            if dependency != "migrate":
                assert rule["condition"] == "service_healthy", f"{name} → {dependency}"


def test_the_gateway_finds_each_service_at_its_listening_port() -> None:
    services = compose()["services"]
    gateway = _environment(services["gateway"])
    for name in GRPC_SERVICES:
        port = _environment(services[name])["SUPPORTDESK_GRPC_PORT"]
        assert gateway[f"SUPPORTDESK_{name.upper()}_ADDR"] == f"{name}:{port}"


def test_nats_keeps_jetstream_on_a_volume_and_flushes_every_write() -> None:
    nats = compose()["services"]["nats"]
    mounts = _mounts(nats)
    config = ROOT / mounts["/etc/nats/nats.conf"]
    text = config.read_text(encoding="utf-8")
    assert re.search(r"^\s*sync_interval:\s*always\s*$", text, re.MULTILINE)
    store_dir = re.search(r"^\s*store_dir:\s*(\S+)\s*$", text, re.MULTILINE)
    assert store_dir is not None
    assert mounts[store_dir.group(1)] in compose()["volumes"], "JetStream's store_dir is on a named volume"


def test_bind_mounted_files_exist() -> None:
    for name, svc in compose()["services"].items():
        for source in _mounts(svc).values():
            if not source.startswith("./"):
                continue
            assert (ROOT / source).exists(), f"{name} mounts {source}, which does not exist"


def test_prometheus_loads_the_alert_rules_and_grafana_the_dashboards() -> None:
    services = compose()["services"]
    prometheus = _mounts(services["prometheus"])
    assert prometheus["/etc/prometheus/prometheus.yml"] == "./deploy/prometheus/prometheus.yml"
    assert prometheus["/etc/prometheus/rules.yml"] == "./deploy/prometheus/rules.yml"
    grafana = _mounts(services["grafana"])
    assert grafana["/etc/grafana/provisioning"] == "./deploy/grafana/provisioning"
    assert grafana["/var/lib/grafana/dashboards"] == "./deploy/grafana/dashboards"


def test_secrets_have_no_default_and_compose_refuses_to_start_without_them() -> None:
    text = _compose_text()
    secrets = {m.group(1): m.group(2) for m in _INTERPOLATION.finditer(text) if _SECRET_NAME.search(m.group(1))}
    assert {"POSTGRES_PASSWORD", "GRAFANA_ADMIN_PASSWORD"} <= set(secrets)
    for match in _INTERPOLATION.finditer(text):
        if _SECRET_NAME.search(match.group(1)):
            assert match.group(2) == ":?", f"{match.group(0)} must be required, with no default"
    shipped = env_example_set()
    for name in secrets:
        assert shipped.get(name) == "", f".env.example must leave {name} empty"


def test_env_example_is_a_valid_env_file() -> None:
    """A copy of it is compose's .env: every line is a comment, blank, or NAME=value."""
    for number, line in enumerate(ENV_EXAMPLE.read_text(encoding="utf-8").splitlines(), start=1):
        assert line == "" or line.startswith("#") or re.fullmatch(r"[A-Z][A-Z0-9_]*=\S*", line), f"line {number}"


def test_env_example_documents_every_setting_and_every_compose_variable() -> None:
    documented = set(env_example())
    missing_settings = setting_names() - documented
    assert not missing_settings, f"settings missing from .env.example: {sorted(missing_settings)}"
    referenced = {m.group(1) for m in _INTERPOLATION.finditer(_compose_text())}
    assert not referenced - documented, f"compose variables missing from .env.example: {referenced - documented}"


def test_compose_sets_only_settings_that_exist() -> None:
    documented = set(env_example())
    for name in APP_SERVICES:
        unknown = set(_environment(compose()["services"][name])) - documented
        assert not unknown, f"{name} sets undocumented variables (a typo?): {unknown}"


def test_images_are_pinned_to_exact_versions() -> None:
    for name, svc in compose()["services"].items():
        if "build" in svc:
            continue
        image = svc["image"]
        assert _EXACT_TAG.search(image) or _EXACT_POSTGRES_TAG.match(image), (
            f"{name}: {image} is not pinned to an exact version"
        )


def test_the_image_is_multi_stage_pinned_non_root_and_installs_the_exact_pins() -> None:
    text = DOCKERFILE.read_text(encoding="utf-8")
    base = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", text, re.MULTILINE)
    assert base is not None
    assert _EXACT_TAG.search(base.group(1)), base.group(1)
    stages = re.findall(r"^FROM (\S+)", text, re.MULTILINE)
    assert len(stages) >= 2
    assert all(stage == "${PYTHON_IMAGE}" for stage in stages)
    assert re.search(r"pip install -c constraints\.txt \.$", text, re.MULTILINE)
    user = re.findall(r"^USER (\d+):(\d+)$", text, re.MULTILINE)
    assert user, "the image runs as a numeric user (Kubernetes' runAsNonRoot checks the uid)"
    assert all(int(uid) > 0 and int(gid) > 0 for uid, gid in user)
    assert re.search(r'^ENTRYPOINT \["supportdesk"\]$', text, re.MULTILINE)


def test_the_collector_pipelines_use_defined_components_and_variables_that_are_provided() -> None:
    config = yaml.safe_load(COLLECTOR_CONFIG.read_text(encoding="utf-8"))
    for pipeline, spec in config["service"]["pipelines"].items():
        for part in ("receivers", "processors", "exporters"):
            assert spec[part], f"{pipeline} has no {part}"
            assert set(spec[part]) <= set(config[part]), f"{pipeline}: undefined {part}"
    assert set(config["service"]["extensions"]) <= set(config["extensions"])
    needed = set(re.findall(r"\$\{env:([A-Z_]+)\}", COLLECTOR_CONFIG.read_text(encoding="utf-8")))
    collector = compose()["services"]["otel-collector"]
    assert _mounts(collector)["/etc/otelcol/config.yaml"] == "./deploy/otel-collector/config.yaml"
    assert needed <= set(_environment(collector))
    k8s_env = (COLLECTOR_CONFIG.parent / "kustomization.yaml").read_text(encoding="utf-8")
    for name in needed:
        assert f"- {name}=" in k8s_env


def test_the_build_context_holds_what_the_image_copies_and_nothing_else() -> None:
    ignore = [
        line for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines() if line and line[0] != "#"
    ]
    assert ignore[0] == "**", "the context starts empty, so no secret or local data reaches the build"
    included = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    copied = set()
    for line in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        if line.startswith("COPY ") and "--from=" not in line:
            copied |= set(line.split()[1:-1])
    assert copied == included
    assert all((ROOT / path).exists() for path in copied)
