"""k8s/: every overlay renders with kustomize (`kubectl kustomize`, or a `kustomize` binary), every
object is valid against the Kubernetes schemas (kubernetes-validate), and every port, probe, env
var, secret and reference points at something that exists; credentials only where used, the
sidecar's ports closed to other pods, an eviction that can proceed, probes that wait for no sync.
"""

from __future__ import annotations

import base64
import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from entitlements_sidecar.cli import _parser
from entitlements_sidecar.config import OPTIONS, load_settings

K8S = Path(__file__).resolve().parents[2] / "k8s"
OVERLAYS = sorted(p.name for p in (K8S / "overlays").iterdir())
OPTION_ENVS = {o.env for o in OPTIONS}
FILE_ENVS = {f"{o.env}_FILE" for o in OPTIONS if o.secret or o.from_file}
SECRET_ENVS = {o.env for o in OPTIONS if o.secret or o.from_file}
LAGO_CREDENTIALS = {"ENTITLEMENTS_LAGO_API_KEY_FILE", "ENTITLEMENTS_LAGO_HMAC_KEY_FILE"}
SIDECAR_IMAGE = "entitlements-sidecar"
# Native sidecars (init containers with restartPolicy: Always) are on by default from 1.29.
KUBERNETES_VERSIONS = ("1.29.0", kubernetes_validate.latest_version())
Obj = dict[str, Any]


def _kustomize() -> list[str] | None:
    if shutil.which("kubectl") is not None:
        return ["kubectl", "kustomize"]
    if shutil.which("kustomize") is not None:
        return ["kustomize", "build"]
    return None


@cache
def render(overlay: str) -> tuple[Obj, ...]:
    command = _kustomize()
    if command is None:
        pytest.skip("neither kubectl nor kustomize is installed")
    built = subprocess.run([*command, str(K8S / "overlays" / overlay)], capture_output=True, text=True, timeout=60)
    assert built.returncode == 0, built.stderr
    return tuple(o for o in yaml.safe_load_all(built.stdout) if o)


def _key(obj: Obj) -> tuple[str, str]:
    return obj["kind"], obj["metadata"]["name"]


def _pods(objects: list[Obj]) -> list[tuple[Obj, Obj]]:
    """(workload, pod template spec) for every Deployment and StatefulSet."""
    return [(o, o["spec"]["template"]) for o in objects if o["kind"] in ("Deployment", "StatefulSet")]


def _containers(pod: Obj) -> list[Obj]:
    return [*pod["spec"].get("initContainers", []), *pod["spec"]["containers"]]


def _named(objects: list[Obj], kind: str, name: str) -> Obj | None:
    return next((o for o in objects if _key(o) == (kind, name)), None)


def _env(container: Obj, objects: list[Obj]) -> dict[str, str]:
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        config_map = _named(objects, "ConfigMap", source["configMapRef"]["name"])
        assert config_map is not None, f"configMapRef {source['configMapRef']['name']} does not exist"
        env.update(config_map["data"])
    env.update({item["name"]: item["value"] for item in container.get("env", []) if "value" in item})
    return env


@pytest.fixture(params=OVERLAYS)
def objects(request: pytest.FixtureRequest) -> list[Obj]:
    return list(render(request.param))


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_object_is_valid_against_the_kubernetes_schemas(objects: list[Obj], version: str) -> None:
    for obj in objects:
        try:
            kubernetes_validate.validate(obj, version, strict=True)  # strict: no unknown fields either
        except kubernetes_validate.ValidationError as exc:
            raise AssertionError(f"{_key(obj)} on Kubernetes {version}: {exc.message} at {list(exc.path)}") from None


def test_every_file_parses() -> None:
    files = sorted(K8S.rglob("*.yaml"))
    assert len(files) >= 10
    for path in files:
        assert list(yaml.safe_load_all(path.read_text())), path


def test_selectors_match_pods_and_services_reach_named_ports(objects: list[Obj]) -> None:
    pods = _pods(objects)
    for workload, pod in pods:
        assert workload["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    for obj in objects:
        selector = obj.get("spec", {}).get("podSelector", {}).get("matchLabels") or (
            obj["spec"].get("selector", {}).get("matchLabels") if obj["kind"] == "PodDisruptionBudget" else None
        )
        if obj["kind"] == "Service":
            selector = obj["spec"]["selector"]
        if selector is None:
            continue
        matched = [pod for _, pod in pods if selector.items() <= pod["metadata"]["labels"].items()]
        assert matched, f"{_key(obj)} selects no pod"
        port_names = {p["name"] for pod in matched for c in _containers(pod) for p in c.get("ports", [])}
        wanted = [p["targetPort"] for p in obj["spec"].get("ports", [])] if obj["kind"] == "Service" else [
            p["port"] for rule in obj["spec"].get("ingress", []) for p in rule.get("ports", [])
        ]  # fmt: skip
        for port in wanted:
            assert port in port_names, f"{_key(obj)} refers to port {port!r}, pods have {port_names}"


def test_sidecar_containers_are_configured_only_with_real_options(objects: list[Obj]) -> None:
    sidecars = [(pod, c) for _, pod in _pods(objects) for c in _containers(pod) if c["image"].startswith(SIDECAR_IMAGE)]
    assert len(sidecars) == 2  # the injected reader and the syncer
    for pod, container in sidecars:
        env = _env(container, objects)
        for name in env:
            assert name in OPTION_ENVS | FILE_ENVS, f"{container['name']}: {name} is not an option"
        plain = {k: v for k, v in env.items() if k in OPTION_ENVS}
        # Secrets come from mounted files (checked below); stand-ins let the rest be checked as at start-up.
        stand_ins = {"ENTITLEMENTS_REDIS_URL_FILE": "redis://from-the-mounted-file:6379/0"}
        plain |= {n.removesuffix("_FILE"): stand_ins.get(n, "from-the-mounted-file") for n in FILE_ENVS & env.keys()}
        args = _parser().parse_args(container["args"])
        assert args.command == "serve"
        settings = load_settings({"roles": args.roles}, environ=plain)  # every value parses, the roles fit
        _check_probes(container, settings.grpc.address, settings.http.address, "reader" in settings.mode.roles)
        _check_secret_files(pod, container, env, objects)
        for mount in container.get("volumeMounts", []):
            assert mount["name"] in {v["name"] for v in pod["spec"].get("volumes", [])}


def _check_probes(container: Obj, grpc_address: str, http_address: str, serves_grpc: bool) -> None:
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["http"] == int(http_address.rsplit(":", 1)[1]) and http_address.startswith("0.0.0.0:")
    probes = [container[k] for k in ("startupProbe", "readinessProbe", "livenessProbe") if k in container]
    assert container.get("readinessProbe") and container.get("livenessProbe")
    for probe in probes:
        if "grpc" in probe:
            assert serves_grpc, "a gRPC probe on a process that serves no gRPC"
            assert probe["grpc"]["port"] == ports["grpc"] == int(grpc_address.rsplit(":", 1)[1])
            assert grpc_address.startswith("0.0.0.0:"), "the kubelet probes the pod IP, not localhost"
        else:
            get = probe["httpGet"]
            assert get["port"] in ports and get["path"] in ("/healthz", "/readyz")
    assert container["livenessProbe"].get("httpGet", {}).get("path") == "/healthz"  # never restart on staleness


def _check_secret_files(pod: Obj, container: Obj, env: dict[str, str], objects: list[Obj]) -> None:
    volumes = {v["name"]: v for v in pod["spec"].get("volumes", [])}
    mounts = {m["mountPath"]: volumes[m["name"]] for m in container.get("volumeMounts", [])}
    for name in FILE_ENVS & env.keys():
        directory, file_name = env[name].rsplit("/", 1)
        volume = mounts.get(directory)
        assert volume is not None and "secret" in volume, f"{name}: {directory} is not a mounted secret"
        items = {item["path"]: item["key"] for item in volume["secret"]["items"]}
        assert file_name in items, f"{name}: no secret item is mounted as {file_name}"
        secret = _named(objects, "Secret", volume["secret"]["secretName"])
        if secret is not None:  # production creates it outside git (see its kustomization)
            assert items[file_name] in secret["data"], f"secret key {items[file_name]} missing"


def test_the_sidecar_is_injected_as_a_native_sidecar(objects: list[Obj]) -> None:
    app = _named(objects, "Deployment", "example-app")
    assert app is not None
    [sidecar] = app["spec"]["template"]["spec"]["initContainers"]
    assert sidecar["restartPolicy"] == "Always" and sidecar["args"] == ["serve", "--roles", "reader"]
    app_env = {e["name"]: e["value"] for c in app["spec"]["template"]["spec"]["containers"] for e in c.get("env", [])}
    assert app_env["ENTITLEMENTS_TARGET"].endswith(f":{_port(sidecar, 'grpc')}")


def _port(container: Obj, name: str) -> int:
    return int(next(p["containerPort"] for p in container["ports"] if p["name"] == name))


def test_dev_has_its_redis_and_production_does_not() -> None:
    dev, production = render("dev"), render("production")
    dev_secret = _named(list(dev), "Secret", "entitlements-redis")
    assert dev_secret is not None
    host = base64.b64decode(dev_secret["data"]["url"]).decode().split("//")[1].split(":")[0]
    assert _named(list(dev), "Service", host) is not None and _named(list(dev), "StatefulSet", host) is not None
    assert not [o for o in production if o["kind"] in ("StatefulSet", "Secret")]  # created outside git


def test_credentials_only_where_they_are_used(objects: list[Obj]) -> None:
    for config_map in (o for o in objects if o["kind"] == "ConfigMap"):
        leaked = set(config_map.get("data", {})) & SECRET_ENVS
        assert not leaked, f"{_key(config_map)} holds {leaked}: secrets (the Redis URL too) belong in Secrets"
    for workload, pod in _pods(objects):
        for container in _containers(pod):
            env = _env(container, objects)
            if not container["image"].startswith(SIDECAR_IMAGE):
                continue
            roles = _parser().parse_args(container["args"]).roles
            if roles == "reader":
                assert not LAGO_CREDENTIALS & env.keys(), f"{_key(workload)}: a reader gets Lago credentials"
                secrets = {v["secret"]["secretName"] for v in pod["spec"].get("volumes", []) if "secret" in v}
                assert secrets == {"entitlements-redis"}, f"{_key(workload)} mounts {secrets}"
            else:
                assert env.keys() >= LAGO_CREDENTIALS


def test_an_eviction_can_always_proceed(objects: list[Obj]) -> None:
    for pdb in (o for o in objects if o["kind"] == "PodDisruptionBudget"):
        selector = pdb["spec"]["selector"]["matchLabels"]
        [workload] = [w for w, pod in _pods(objects) if selector.items() <= pod["metadata"]["labels"].items()]
        replicas = workload["spec"].get("replicas", 1)
        if "minAvailable" in pdb["spec"]:
            assert pdb["spec"]["minAvailable"] < replicas, f"{_key(pdb)} blocks every eviction of {replicas}"
        else:
            assert pdb["spec"]["maxUnavailable"] >= 1


def test_the_sidecars_ports_are_closed_to_other_pods_and_the_apps_stay_open(objects: list[Obj]) -> None:
    app = _named(objects, "Deployment", "example-app")
    assert app is not None
    pod = app["spec"]["template"]
    labels = pod["metadata"]["labels"].items()
    policies = [o for o in objects if o["kind"] == "NetworkPolicy"]
    [policy] = [o for o in policies if o["spec"]["podSelector"]["matchLabels"].items() <= labels]
    open_to_all = {p["port"] for rule in policy["spec"]["ingress"] if not rule.get("from") for p in rule["ports"]}
    restricted = {p["port"] for rule in policy["spec"]["ingress"] if rule.get("from") for p in rule["ports"]}
    app_ports = {p["name"] for c in pod["spec"]["containers"] for p in c.get("ports", [])}
    [sidecar] = pod["spec"]["initContainers"]
    sidecar_ports = {p["name"] for p in sidecar["ports"]}
    assert app_ports and app_ports <= open_to_all, "the policy shuts the application's own ports"
    assert not sidecar_ports & open_to_all, "the sidecar answers any subject: its ports are for the app"
    assert "grpc" not in restricted and restricted <= {"http"}  # /metrics, for the monitoring namespace only


def test_no_probe_waits_for_a_sync(objects: list[Obj]) -> None:
    # The first load waits for the syncer's first full sync, which takes as long as Lago's rate limit
    # makes it: probes that restart (startup, liveness) may only ask whether the process is alive.
    for _, pod in _pods(objects):
        for container in _containers(pod):
            if not container["image"].startswith(SIDECAR_IMAGE):
                continue
            for kind in ("startupProbe", "livenessProbe"):
                probe = container.get(kind)
                if probe is not None:
                    assert probe.get("httpGet", {}).get("path") == "/healthz", f"{container['name']} {kind}: {probe}"
