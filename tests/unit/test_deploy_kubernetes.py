"""deploy/k8s: every kustomization builds, every manifest satisfies the Kubernetes schemas, and the workloads
are probed, bounded and hardened. Offline: kubectl's embedded Kustomize and kubernetes-validate's schemas."""

from __future__ import annotations

import re
from typing import Any

import kubernetes_validate
import pytest

from tests.unit.deploy_files import KUSTOMIZATIONS, env_example, kustomize_build, of_kind

# Needs kubectl (Kustomize v5), which a machine with only Python lacks: run by `pytest -m deploy` (.ci/run).
pytestmark = pytest.mark.deploy

# The oldest Kubernetes the manifests support (native gRPC probes, the preStop sleep action), and the newest
# whose schemas kubernetes-validate ships: an API removed since would show.
KUBERNETES_VERSIONS = ("1.32", kubernetes_validate.utils.latest_version())
# Custom resources of the operators the manifests rely on; no schema ships for them, so they get the
# targeted checks below.
OPERATOR_KINDS = {("postgresql.cnpg.io/v1", "Cluster"), ("postgresql.cnpg.io/v1", "ScheduledBackup")}
OVERLAYS = ("overlays/dev", "overlays/prod")
GRPC_PORTS = {"ticketing": 50051, "routing": 50052, "notify": 50053}
SERVICES = (*GRPC_PORTS, "gateway")


def _pod_specs(docs: tuple[dict[str, Any], ...]) -> dict[str, dict[str, Any]]:
    return {
        f"{doc['kind']}/{doc['metadata']['name']}": doc["spec"]["template"]["spec"]
        for doc in docs
        if doc["kind"] in {"Deployment", "StatefulSet", "Job"}
    }


def _service_deployments(docs: tuple[dict[str, Any], ...]) -> dict[str, dict[str, Any]]:
    """The supportdesk services' Deployments (not the collector's)."""
    deployments = of_kind(docs, "Deployment")
    return {
        name: d
        for name, d in deployments.items()
        if d["metadata"]["labels"]["app.kubernetes.io/component"] == "service"
    }


def _env(container: dict[str, Any]) -> dict[str, Any]:
    return {item["name"]: item for item in container.get("env", [])}


def _config(docs: tuple[dict[str, Any], ...]) -> dict[str, str]:
    (config,) = (
        doc for doc in docs if doc["kind"] == "ConfigMap" and doc["metadata"]["name"].startswith("supportdesk-config")
    )
    data: dict[str, str] = config["data"]
    return data


# The base is built by every other check; its resources reach the schemas through the overlays, which are
# what gets applied.
@pytest.mark.parametrize("name", OVERLAYS)
def test_every_manifest_satisfies_the_kubernetes_schemas(name: str) -> None:
    docs = kustomize_build(name)
    assert docs
    for doc in docs:
        if (doc["apiVersion"], doc["kind"]) in OPERATOR_KINDS:
            continue
        for version in KUBERNETES_VERSIONS:
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.ValidationError as error:
                pytest.fail(f"{name}: {doc['kind']}/{doc['metadata']['name']} on {version}: {error.message}")


def test_the_schema_check_refuses_a_malformed_deployment() -> None:
    deployment = dict(of_kind(kustomize_build("base"), "Deployment")["routing"])
    deployment["spec"] = {**deployment["spec"], "replicas": "two", "paused_": True}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSIONS[0], strict=True)


@pytest.mark.parametrize("name", KUSTOMIZATIONS)
def test_every_pod_is_non_root_read_only_and_capability_free(name: str) -> None:
    for workload, pod in _pod_specs(kustomize_build(name)).items():
        context = pod["securityContext"]
        assert context["runAsNonRoot"] is True, workload
        assert context["runAsUser"] > 0, workload
        assert context["seccompProfile"] == {"type": "RuntimeDefault"}, workload
        assert pod.get("automountServiceAccountToken") is False, workload
        for container in pod["containers"] + pod.get("initContainers", []):
            hardened = container["securityContext"]
            assert hardened["readOnlyRootFilesystem"] is True, workload
            assert hardened["allowPrivilegeEscalation"] is False, workload
            assert hardened["capabilities"]["drop"] == ["ALL"], workload
            assert "add" not in hardened["capabilities"], workload


@pytest.mark.parametrize("name", KUSTOMIZATIONS)
def test_every_container_has_requests_and_limits(name: str) -> None:
    for workload, pod in _pod_specs(kustomize_build(name)).items():
        for container in pod["containers"]:
            resources = container["resources"]
            for bound in ("requests", "limits"):
                assert set(resources[bound]) >= {"cpu", "memory"}, f"{workload}: {bound}"


@pytest.mark.parametrize("name", KUSTOMIZATIONS)
def test_every_long_running_container_has_startup_readiness_and_liveness_probes(name: str) -> None:
    for workload, pod in _pod_specs(kustomize_build(name)).items():
        if workload.startswith("Job/"):
            continue
        for container in pod["containers"]:
            for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                assert probe in container, f"{workload}: {probe}"


@pytest.mark.parametrize("name", KUSTOMIZATIONS)
def test_grpc_services_use_native_grpc_probes_on_their_serving_port(name: str) -> None:
    deployments = of_kind(kustomize_build(name), "Deployment")
    for service, port in GRPC_PORTS.items():
        (container,) = deployments[service]["spec"]["template"]["spec"]["containers"]
        assert container["args"] == ["serve", service]
        assert _env(container)["SUPPORTDESK_GRPC_PORT"]["value"] == str(port)
        assert {"name": "grpc", "containerPort": port} in container["ports"]
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            assert container[probe]["grpc"] == {"port": port}, f"{service}: {probe}"


@pytest.mark.parametrize("name", KUSTOMIZATIONS)
def test_the_gateway_is_live_on_healthz_and_ready_on_readyz(name: str) -> None:
    (container,) = of_kind(kustomize_build(name), "Deployment")["gateway"]["spec"]["template"]["spec"]["containers"]
    assert container["args"] == ["serve", "gateway"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["startupProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"


@pytest.mark.parametrize("name", KUSTOMIZATIONS)
def test_every_service_has_a_service_a_disruption_budget_and_an_autoscaler(name: str) -> None:
    docs = kustomize_build(name)
    deployments = _service_deployments(docs)
    assert set(deployments) == set(SERVICES)
    services = of_kind(docs, "Service")
    budgets = of_kind(docs, "PodDisruptionBudget")
    scalers = of_kind(docs, "HorizontalPodAutoscaler")
    for service, deployment in of_kind(docs, "Deployment").items():
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert set(services[service]["spec"]["selector"].items()) <= set(labels.items())
        assert set(budgets[service]["spec"]["selector"]["matchLabels"].items()) <= set(labels.items())
    for service, deployment in deployments.items():
        scaler = scalers[service]["spec"]
        assert scaler["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": service}
        assert scaler["minReplicas"] <= deployment["spec"]["replicas"] <= scaler["maxReplicas"]


@pytest.mark.parametrize("name", KUSTOMIZATIONS)
def test_the_services_reach_each_other_and_postgres_by_the_names_the_manifests_define(name: str) -> None:
    docs = kustomize_build(name)
    config = _config(docs)
    services = of_kind(docs, "Service")
    for service, port in GRPC_PORTS.items():
        assert config[f"SUPPORTDESK_{service.upper()}_ADDR"] == f"{service}:{port}"
        assert port in [p["port"] for p in services[service]["spec"]["ports"]]
    for url in (config["NATS_URL"], config["OTEL_EXPORTER_OTLP_ENDPOINT"]):
        host, port = re.fullmatch(r"\w+://([\w-]+):(\d+)", url).groups()  # type: ignore[union-attr]
        assert int(port) in [p["port"] for p in services[host]["spec"]["ports"]], url
    (cluster,) = of_kind(docs, "Cluster").values()
    for workload, pod in _pod_specs(docs).items():
        for container in pod["containers"]:
            if container["image"].startswith(("nats:", "otel/")):
                continue
            url = _env(container).get("DATABASE_URL")
            if container["args"] == ["serve", "gateway"]:
                assert url is None, "the gateway reaches Postgres only through the services"
                continue
            assert url is not None, f"{workload} has no DATABASE_URL"
            # CloudNativePG writes the application's connection URI to the secret <cluster>-app.
            assert url["valueFrom"]["secretKeyRef"] == {"name": f"{cluster['metadata']['name']}-app", "key": "uri"}


@pytest.mark.parametrize("name", KUSTOMIZATIONS)
def test_every_variable_given_to_the_services_is_a_documented_setting(name: str) -> None:
    documented = set(env_example())
    docs = kustomize_build(name)
    given = set(_config(docs))
    for pod in _pod_specs(docs).values():
        for container in pod["containers"]:
            if not container["image"].startswith(("nats:", "otel/")):
                given |= set(_env(container))
    assert not given - documented, f"not settings (a typo?): {given - documented}"


@pytest.mark.parametrize("name", KUSTOMIZATIONS)
def test_nats_is_a_three_node_jetstream_cluster_with_r3_streams_flushed_on_every_write(name: str) -> None:
    docs = kustomize_build(name)
    nats = of_kind(docs, "StatefulSet")["nats"]
    assert nats["spec"]["replicas"] == 3
    (config_map,) = (d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].startswith("nats-config"))
    conf = config_map["data"]["nats.conf"]
    assert re.search(r"^\s*sync_interval:\s*always\s*$", conf, re.MULTILINE)
    routes = re.findall(r"nats://(nats-\d+)\.nats-headless:6222", conf)
    assert routes == [f"nats-{i}" for i in range(nats["spec"]["replicas"])]
    assert nats["spec"]["serviceName"] == "nats-headless"
    assert of_kind(docs, "Service")["nats-headless"]["spec"]["publishNotReadyAddresses"] is True
    replicas = int(_config(docs)["SUPPORTDESK_STREAM_REPLICAS"])
    assert replicas == 3
    assert replicas <= nats["spec"]["replicas"]
    assert of_kind(docs, "PodDisruptionBudget")["nats"]["spec"]["maxUnavailable"] == 1


@pytest.mark.parametrize("name", KUSTOMIZATIONS)
def test_the_migrate_job_runs_the_migrations_once(name: str) -> None:
    (job,) = of_kind(kustomize_build(name), "Job").values()
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["args"] == ["migrate"]
    assert job["spec"]["template"]["spec"]["restartPolicy"] in {"OnFailure", "Never"}
    assert job["spec"]["backoffLimit"] > 0


def test_production_runs_replicated_postgres_with_synchronous_commits_and_backups() -> None:
    docs = kustomize_build("overlays/prod")
    cluster = of_kind(docs, "Cluster")["supportdesk-pg"]["spec"]
    assert cluster["instances"] >= 3
    assert cluster["postgresql"]["synchronous"]["number"] >= 1
    assert cluster["affinity"]["enablePodAntiAffinity"] is True
    assert "barmanObjectStore" in cluster["backup"]
    (backup,) = of_kind(docs, "ScheduledBackup").values()
    assert backup["spec"]["cluster"]["name"] == "supportdesk-pg"


def test_production_verifies_identity_provider_tokens_with_several_replicas_of_each_service() -> None:
    docs = kustomize_build("overlays/prod")
    config = _config(docs)
    assert config["SUPPORTDESK_AUTH_MODE"] == "jwt"
    assert config["SUPPORTDESK_JWT_PUBLIC_KEY_FILE"].startswith("/etc/supportdesk/jwt/")
    for service, deployment in of_kind(docs, "Deployment").items():
        assert deployment["spec"]["replicas"] >= 2, service
    for namespace in of_kind(docs, "Namespace").values():
        assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


@pytest.mark.parametrize("name", OVERLAYS)
def test_local_mode_runs_a_single_gateway(name: str) -> None:
    """Each gateway replica in local mode creates its own signing secret: a token would work on one only."""
    docs = kustomize_build(name)
    if _config(docs)["SUPPORTDESK_AUTH_MODE"] != "local":
        assert name == "overlays/prod"
        return
    assert _service_deployments(docs)["gateway"]["spec"]["replicas"] == 1
    assert of_kind(docs, "HorizontalPodAutoscaler")["gateway"]["spec"]["maxReplicas"] == 1


@pytest.mark.parametrize("name", OVERLAYS)
def test_overlays_pin_the_image_and_a_namespace(name: str) -> None:
    docs = kustomize_build(name)
    namespaces = set(of_kind(docs, "Namespace"))
    assert len(namespaces) == 1
    for doc in docs:
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["namespace"] in namespaces, doc["metadata"]["name"]
    for workload, pod in _pod_specs(docs).items():
        for container in pod["containers"]:
            assert re.search(r":[\w.-]+$", container["image"]), f"{workload}: {container['image']} has no tag"
            assert not container["image"].endswith(":latest"), workload
