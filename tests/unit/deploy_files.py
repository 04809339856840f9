"""Readers for the deployment files, shared by the compose and Kubernetes checks. All offline."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic_settings import BaseSettings

from services.gateway.settings import GatewaySettings
from services.kit.settings import BusSettings, CommonSettings, ServiceSettings
from services.notify.__main__ import NotifySettings
from services.routing.__main__ import RoutingSettings
from services.runtime.up import UpSettings
from services.ticketing.__main__ import TicketingSettings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
COLLECTOR_CONFIG = ROOT / "deploy" / "otel-collector" / "config.yaml"
K8S = ROOT / "deploy" / "k8s"
KUSTOMIZATIONS = ("base", "overlays/dev", "overlays/prod")

SETTINGS_CLASSES: tuple[type[BaseSettings], ...] = (
    CommonSettings,
    BusSettings,
    ServiceSettings,
    TicketingSettings,
    RoutingSettings,
    NotifySettings,
    GatewaySettings,
    UpSettings,
)

# `# NAME=value` (a documented default) or `NAME=value` (set) at the start of a line.
_ENV_LINE = re.compile(r"^#?\s?([A-Z][A-Z0-9_]*)=(.*)$")


def setting_names() -> set[str]:
    """Every environment variable our settings classes read."""
    names = set()
    for cls in SETTINGS_CLASSES:
        prefix = str(cls.model_config.get("env_prefix", ""))
        for field_name, field in cls.model_fields.items():
            alias = field.validation_alias
            names.add(alias if isinstance(alias, str) else f"{prefix}{field_name}".upper())
    return names


def env_example() -> dict[str, str]:
    """What .env.example documents: variable name → the value shown (a default, or empty)."""
    documented = {}
    for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines():
        match = _ENV_LINE.match(line)
        if match:
            documented[match.group(1)] = match.group(2)
    return documented


def env_example_set() -> dict[str, str]:
    """The lines of .env.example that are not commented out: what a copy of it sets."""
    return {
        m.group(1): m.group(2)
        for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines()
        if not line.startswith("#") and (m := _ENV_LINE.match(line))
    }


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    return loaded


@cache
def kubectl() -> str:
    """kubectl's path. Its absence fails the checks (ADR 0040): a skipped validation would pass unseen."""
    path = shutil.which("kubectl")
    if path is None:
        pytest.fail("kubectl is needed to build the kustomizations (deploy/k8s); .ci/run checks for it")
    result = subprocess.run(
        [path, "version", "--client", "-o", "json"], capture_output=True, text=True, timeout=30, check=True
    )
    kustomize = json.loads(result.stdout).get("kustomizeVersion", "")
    # Kustomize v5 (kubectl 1.27+) is what the kustomizations are written for (labels, targeted patches).
    if not re.fullmatch(r"v([5-9]|\d{2,})\..*", kustomize):
        pytest.fail(f"kubectl embeds Kustomize {kustomize or 'of unknown version'}; deploy/k8s needs v5 or later")
    return path


@cache
def kustomize_build(name: str) -> tuple[dict[str, Any], ...]:
    """The manifests a kustomization renders, built offline by kubectl's embedded Kustomize."""
    result = subprocess.run(
        [kubectl(), "kustomize", str(K8S / name)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, f"kubectl kustomize {name} failed:\n{result.stderr}"
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


def of_kind(docs: tuple[dict[str, Any], ...], kind: str) -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for doc in docs if doc["kind"] == kind}
