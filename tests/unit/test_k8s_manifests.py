"""k8s/: every overlay assembles, and every port, probe, env var, secret key and reference points at
something that exists, in the manifests or in the sidecar's own options.

No kustomize binary is assumed: `assemble` does what these manifests use (resources, labels,
secretGenerator, strategic-merge patches by kind and name, named lists merged by name). When a
`kustomize` binary is on PATH, its output is compared with ours.
"""

from __future__ import annotations

import copy
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from entitlements_sidecar.cli import _parser
from entitlements_sidecar.config import OPTIONS, load_settings

K8S = Path(__file__).resolve().parents[2] / "k8s"
OVERLAYS = sorted(p.name for p in (K8S / "overlays").iterdir())
OPTION_ENVS = {o.env for o in OPTIONS}
SECRET_FILE_ENVS = {f"{o.env}_FILE" for o in OPTIONS if o.secret}
SIDECAR_IMAGE = "entitlements-sidecar"
Obj = dict[str, Any]


def assemble(directory: Path) -> list[Obj]:
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    objects: list[Obj] = []
    for resource in kustomization.get("resources", []):
        path = directory / resource
        if path.is_dir():
            objects += assemble(path)
        else:
            objects += [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    for generator in kustomization.get("secretGenerator", []):
        data = dict(literal.split("=", 1) for literal in generator.get("literals", []))
        objects.append({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": generator["name"]}, "data": data})
    for patch in kustomization.get("patches", []):
        change = yaml.safe_load((directory / patch["path"]).read_text())
        [target] = [o for o in objects if _key(o) == _key(change)]
        _merge(target, change)
    for label_set in kustomization.get("labels", []):
        for obj in objects:
            obj["metadata"].setdefault("labels", {}).update(label_set["pairs"])
    return objects


def _key(obj: Obj) -> tuple[str, str]:
    return obj["kind"], obj["metadata"]["name"]


def _merge(target: Any, change: Any) -> None:
    for key, value in change.items():
        current = target.get(key)
        if isinstance(value, dict) and isinstance(current, dict):
            _merge(current, value)
        elif isinstance(value, list) and isinstance(current, list) and all("name" in v for v in value):
            by_name = {item["name"]: item for item in current}
            for item in value:
                if item["name"] in by_name:
                    _merge(by_name[item["name"]], item)
                else:
                    current.append(copy.deepcopy(item))
        else:
            target[key] = copy.deepcopy(value)


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
    return assemble(K8S / "overlays" / request.param)


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
            assert name in OPTION_ENVS | SECRET_FILE_ENVS, f"{container['name']}: {name} is not an option"
        plain = {k: v for k, v in env.items() if k in OPTION_ENVS}
        # Secrets come from mounted files (checked below); stand-ins let the rest be checked as at start-up.
        plain |= {name.removesuffix("_FILE"): "from-the-mounted-file" for name in SECRET_FILE_ENVS & env.keys()}
        args = _parser().parse_args(container["args"])
        assert args.command == "serve"
        settings = load_settings({"roles": args.roles}, environ=plain)  # every value parses, the roles fit
        _check_probes(container, settings.grpc_address, settings.http_address, "reader" in settings.roles)
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
    for name in SECRET_FILE_ENVS & env.keys():
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
    dev, production = assemble(K8S / "overlays" / "dev"), assemble(K8S / "overlays" / "production")
    dev_config = _named(dev, "ConfigMap", "entitlements-config")
    assert dev_config is not None
    host = dev_config["data"]["ENTITLEMENTS_REDIS_URL"].split("//")[1].split(":")[0]
    assert _named(dev, "Service", host) is not None and _named(dev, "StatefulSet", host) is not None
    prod_config = _named(production, "ConfigMap", "entitlements-config")
    assert prod_config is not None and prod_config["data"]["ENTITLEMENTS_REDIS_URL"].startswith("rediss://")
    assert not [o for o in production if o["kind"] in ("StatefulSet", "Secret")]


@pytest.mark.skipif(shutil.which("kustomize") is None, reason="no kustomize binary: our assembly stands in")
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_kustomize_agrees(overlay: str) -> None:
    built = subprocess.run(["kustomize", "build", str(K8S / "overlays" / overlay)], capture_output=True, text=True)
    assert built.returncode == 0, built.stderr
    theirs = {_key(o) for o in yaml.safe_load_all(built.stdout) if o}
    assert theirs == {_key(o) for o in assemble(K8S / "overlays" / overlay)}
