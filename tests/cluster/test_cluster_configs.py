"""Every file under cluster/ is parsed and checked: the launcher YAML against Ray's own schema, the
KubeRay and MLflow manifests for structure and secure defaults, the Dockerfiles lightly linted, the
job entrypoints against the scripts and configs they name. A new file fails until it is checked here."""

import copy
import json
import re
import shlex
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import ray
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

import raypath
from raypath.config import load_config
from raypath.extract.config import ExtractConfig
from raypath.sweep.config import SweepConfig

REPO = Path(__file__).resolve().parents[2]
CLUSTER = REPO / "cluster"
KUBERAY = CLUSTER / "kuberay"
IMAGE_ROOT = "/opt/raypath/"  # where cluster/Dockerfile puts the repo inside the image
RAYPATH_IMAGE = f"ghcr.io/raypath/raypath:{raypath.__version__}"
MLFLOW_IMAGE = "ghcr.io/raypath/mlflow:3.17.2"
JOB_CONFIG_MODELS = {"extract.py": ExtractConfig, "sweep.py": SweepConfig}
PUBLIC_SERVICE_TYPES = {"LoadBalancer", "NodePort"}

# Each file and the test that checks it; test_every_cluster_file_is_checked keeps this complete.
CHECKED = {
    "README.md": "test_readme_names_every_deployment_file",
    "ray-cluster.yaml": "test_launcher_config_passes_ray_schema",
    "Dockerfile": "test_dockerfile_lint",
    "Dockerfile.dockerignore": "test_dockerignore_keeps_environments_and_secrets_out",
    "kuberay/base.yaml": "test_manifest_documents",
    "kuberay/raycluster.yaml": "test_ray_cluster_specs",
    "kuberay/rayjob-extract.yaml": "test_rayjob_entrypoints_name_real_scripts_and_valid_configs",
    "kuberay/rayjob-sweep.yaml": "test_rayjob_entrypoints_name_real_scripts_and_valid_configs",
    "kuberay/mlflow.yaml": "test_mlflow_manifest_is_private_and_authenticated",
    "kuberay/secrets.example.yaml": "test_secret_references_resolve_and_examples_hold_no_secrets",
    "mlflow/Dockerfile": "test_dockerfile_lint",
    "mlflow/entrypoint.sh": "test_mlflow_entrypoint_always_enables_auth",
    "mlflow/docker-compose.yaml": "test_compose_binds_loopback_and_requires_secrets",
    "mlflow/env.example": "test_compose_binds_loopback_and_requires_secrets",
    "mlflow/initdb.sql": "test_compose_binds_loopback_and_requires_secrets",
}


def _docs(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def _all_manifests() -> list[tuple[str, dict[str, Any]]]:
    return [(p.name, doc) for p in sorted(KUBERAY.glob("*.yaml")) for doc in _docs(p)]


def _ray_cluster_specs() -> list[tuple[str, dict[str, Any]]]:
    """RayCluster specs, standalone or embedded in a RayJob."""
    specs = []
    for name, doc in _all_manifests():
        if doc["kind"] == "RayCluster":
            specs.append((name, doc["spec"]))
        elif doc["kind"] == "RayJob" and "rayClusterSpec" in doc["spec"]:
            specs.append((name, doc["spec"]["rayClusterSpec"]))
    return specs


def _walk(node: Any, key: str) -> list[Any]:
    """Every value stored under `key` anywhere in a nested YAML document."""
    found = []
    if isinstance(node, dict):
        for k, v in node.items():
            if k == key:
                found.append(v)
            found.extend(_walk(v, key))
    elif isinstance(node, list):
        for item in node:
            found.extend(_walk(item, key))
    return found


def test_every_cluster_file_is_checked():
    on_disk = {p.relative_to(CLUSTER).as_posix() for p in CLUSTER.rglob("*") if p.is_file()}
    on_disk = {p for p in on_disk if "__pycache__" not in p}
    assert on_disk - CHECKED.keys() == set(), "new files under cluster/ need a check in this module"
    assert CHECKED.keys() - on_disk == set(), "checked files that no longer exist"
    tests = {name for name in globals() if name.startswith("test_")}
    assert set(CHECKED.values()) <= tests


# ---------------------------------------------------------------- Ray cluster launcher
def _launcher() -> dict[str, Any]:
    return yaml.safe_load((CLUSTER / "ray-cluster.yaml").read_text())


def test_launcher_config_passes_ray_schema():
    raw = _launcher()
    schema = Path(ray.autoscaler.__file__).with_name("ray-schema.json")
    jsonschema.validate(raw, json.loads(schema.read_text()))  # as written, before defaults
    validate_config(prepare_config(copy.deepcopy(raw)))  # what `ray up` does after merging defaults
    broken = copy.deepcopy(raw)
    broken["available_node_types"]["cpu"]["max_workers"] = "many"
    with pytest.raises(jsonschema.ValidationError):
        validate_config(prepare_config(broken))


def test_launcher_node_types_cover_extraction_and_sweeps():
    config = _launcher()
    types = config["available_node_types"]
    assert types[config["head_node_type"]]["resources"].get("CPU") == 0, "no work on the head"
    workers = {n: t for n, t in types.items() if n != config["head_node_type"]}
    assert any(t["resources"].get("GPU", 0) >= 1 for t in workers.values()), "GPU workers"
    assert any(t["resources"].get("GPU", 0) == 0 for t in workers.values()), "CPU-only workers"
    for name, node_type in workers.items():
        assert 0 <= node_type["min_workers"] <= node_type["max_workers"] <= config["max_workers"], name
    assert config["docker"]["image"] == RAYPATH_IMAGE


def test_launcher_enables_token_auth_and_keeps_dashboard_local():
    config = _launcher()
    head = " ".join(config["head_start_ray_commands"])
    worker = " ".join(config["worker_start_ray_commands"])
    assert "--dashboard-host=127.0.0.1" in head
    assert "0.0.0.0" not in head
    for commands in (head, worker):
        for start in re.findall(r"[^;]*ray start[^;]*", commands):
            assert "RAY_AUTH_MODE=token" in start, start
    mounted = {Path(remote).name: local for remote, local in config["file_mounts"].items()}
    assert mounted.get("auth_token") == "~/.ray/auth_token"
    assert config["provider"]["cache_stopped_nodes"] is False


# ---------------------------------------------------------------- KubeRay manifests
def test_manifest_documents():
    for name, doc in _all_manifests():
        assert {"apiVersion", "kind", "metadata"} <= doc.keys(), name
        meta = doc["metadata"]
        assert meta.get("name") or meta.get("generateName"), name
        if doc["kind"] != "Namespace":
            assert meta.get("namespace") == "raypath", f"{name}: {doc['kind']} outside the namespace"
        if doc["kind"] == "Service":
            assert doc["spec"].get("type", "ClusterIP") not in PUBLIC_SERVICE_TYPES, name
        assert doc["kind"] not in {"Ingress", "Route", "Gateway"}, f"{name} exposes a service"
    kinds = {doc["kind"] for _, doc in _all_manifests()}
    assert {"RayCluster", "RayJob", "Deployment", "StatefulSet", "Service", "NetworkPolicy"} <= kinds


def test_ray_cluster_specs():
    specs = _ray_cluster_specs()
    assert len(specs) == 3, "raycluster.yaml and both RayJobs"
    for name, spec in specs:
        assert spec["rayVersion"] == ray.__version__, name
        assert spec["enableInTreeAutoscaling"] is True, name
        assert spec["authOptions"] == {"mode": "token", "secretName": "raypath-ray-auth"}, name
        head = spec["headGroupSpec"]
        assert head.get("serviceType", "ClusterIP") == "ClusterIP", name
        assert all(isinstance(v, str) for v in head["rayStartParams"].values()), "KubeRay wants strings"
        gpu_groups = cpu_groups = 0
        for group in spec["workerGroupSpecs"]:
            assert 0 <= group["minReplicas"] <= group["replicas"] <= group["maxReplicas"], group["groupName"]
            assert all(isinstance(v, str) for v in group["rayStartParams"].values())
            limits = group["template"]["spec"]["containers"][0]["resources"]["limits"]
            gpu_groups += "nvidia.com/gpu" in limits
            cpu_groups += "nvidia.com/gpu" not in limits
        assert gpu_groups >= 1 and cpu_groups >= 1, name
        for pod in [head["template"]["spec"], *(g["template"]["spec"] for g in spec["workerGroupSpecs"])]:
            _check_pod(name, pod, RAYPATH_IMAGE)


def _check_pod(name: str, pod: dict[str, Any], image: str) -> None:
    assert pod["securityContext"]["runAsNonRoot"] is True, name
    assert not pod.get("hostNetwork"), name
    for container in pod["containers"]:
        assert container["image"] == image, name
        assert container["securityContext"]["allowPrivilegeEscalation"] is False, name
        assert all("hostPort" not in port for port in container.get("ports", [])), name


def test_rayjobs_clean_up_and_retry():
    jobs = [(name, doc["spec"]) for name, doc in _all_manifests() if doc["kind"] == "RayJob"]
    assert {name for name, _ in jobs} == {"rayjob-extract.yaml", "rayjob-sweep.yaml"}
    for name, spec in jobs:
        assert spec["entrypoint"].strip(), name
        assert "rayClusterSpec" in spec or "clusterSelector" in spec, name
        if "rayClusterSpec" in spec:
            assert spec["shutdownAfterJobFinishes"] is True, name
        assert spec["submitterConfig"]["backoffLimit"] >= 1, name


def _entrypoint_commands(entrypoint: str) -> list[list[str]]:
    return [shlex.split(part) for part in entrypoint.split("&&")]


def _in_repo(image_path: str) -> Path:
    assert image_path.startswith(IMAGE_ROOT), image_path
    return REPO / image_path.removeprefix(IMAGE_ROOT)


def test_rayjob_entrypoints_name_real_scripts_and_valid_configs():
    scripts = set()
    for name, doc in _all_manifests():
        if doc["kind"] != "RayJob":
            continue
        for argv in _entrypoint_commands(doc["spec"]["entrypoint"]):
            assert argv[0] == "python", name
            script = _in_repo(argv[1])
            assert script.is_file(), f"{name}: {script} does not exist"
            scripts.add(script.name)
            config = _in_repo(argv[argv.index("--config") + 1])
            assert config.is_file(), f"{name}: {config} does not exist"
            overrides = [argv[i + 1] for i, arg in enumerate(argv) if arg == "--set"]
            if script.name in JOB_CONFIG_MODELS:
                load_config(JOB_CONFIG_MODELS[script.name], config, overrides=overrides)
    assert scripts == {"extract.py", "sweep.py", "compare.py"}


def test_secret_references_resolve_and_examples_hold_no_secrets():
    examples = {doc["metadata"]["name"]: doc["stringData"] for doc in _docs(KUBERAY / "secrets.example.yaml")}
    for name, doc in _all_manifests():
        for ref in _walk(doc, "secretKeyRef"):
            assert ref["key"] in examples.get(ref["name"], {}), f"{name}: {ref}"
        for ref in _walk(doc, "secretRef"):
            assert ref.get("optional") or ref["name"] in examples, f"{name}: {ref}"
        for secret_name in _walk(doc, "secretName"):
            assert "auth_token" in examples.get(secret_name, {}), f"{name}: {secret_name}"
    for secret, data in examples.items():
        for key, value in data.items():
            if re.search(r"password|token|secret|uri|key", key, re.IGNORECASE):
                assert "CHANGE-ME" in value, f"{secret}.{key} must not hold a real value"


def test_mlflow_manifest_is_private_and_authenticated():
    docs = {(d["kind"], d["metadata"]["name"]): d for d in _docs(KUBERAY / "mlflow.yaml")}
    assert docs[("Service", "mlflow")]["spec"]["type"] == "ClusterIP"
    assert docs[("Service", "postgres")]["spec"]["type"] == "ClusterIP"
    pod = docs[("Deployment", "mlflow")]["spec"]["template"]["spec"]
    _check_pod("mlflow.yaml", pod, MLFLOW_IMAGE)
    env = {e["name"]: e for e in pod["containers"][0]["env"]}
    for var in ("MLFLOW_AUTH_ADMIN_PASSWORD", "MLFLOW_FLASK_SERVER_SECRET_KEY", "MLFLOW_BACKEND_STORE_URI"):
        assert "secretKeyRef" in env[var]["valueFrom"], var
    assert "*" not in env["MLFLOW_ALLOWED_HOSTS"]["value"].split(",")
    assert env["MLFLOW_ARTIFACTS_DESTINATION"]["value"].startswith("s3://")
    assert "--disable-security-middleware" not in pod["containers"][0].get("args", [])
    postgres = docs[("StatefulSet", "postgres")]["spec"]["template"]["spec"]
    _check_pod("mlflow.yaml", postgres, "postgres:16-bookworm")


# ---------------------------------------------------------------- MLflow on one host
def test_mlflow_entrypoint_always_enables_auth():
    script = CLUSTER / "mlflow" / "entrypoint.sh"
    subprocess.run(["sh", "-n", str(script)], check=True)
    text = script.read_text()
    assert text.startswith("#!/bin/sh") and "set -eu" in text
    assert "--app-name basic-auth" in text
    assert '--host "${MLFLOW_HOST:-127.0.0.1}"' in text, "loopback unless a container says otherwise"


def test_compose_binds_loopback_and_requires_secrets():
    folder = CLUSTER / "mlflow"
    compose = yaml.safe_load((folder / "docker-compose.yaml").read_text())
    services = compose["services"]
    assert "ports" not in services["postgres"]
    published = services["mlflow"]["ports"]
    assert published and all(p.startswith("127.0.0.1:") for p in published)
    assert services["mlflow"]["image"] == MLFLOW_IMAGE
    required = set(re.findall(r"\$\{(\w+):\?", (folder / "docker-compose.yaml").read_text()))
    documented = set(re.findall(r"^(\w+)=", (folder / "env.example").read_text(), re.MULTILINE))
    assert required and required <= documented
    assert "CREATE DATABASE mlflow_auth;" in (folder / "initdb.sql").read_text()
    assert services["mlflow"]["environment"]["MLFLOW_AUTH_DATABASE_URI"].endswith("/mlflow_auth")


# ---------------------------------------------------------------- images
def _instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    text = re.sub(r"\\\n", " ", path.read_text())
    lines = [line.strip() for line in text.splitlines()]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines
            if line and not line.startswith("#")]


@pytest.mark.parametrize("dockerfile", ["Dockerfile", "mlflow/Dockerfile"])
def test_dockerfile_lint(dockerfile):
    steps = _instructions(CLUSTER / dockerfile)
    assert steps[0][0] in {"FROM", "ARG"} and any(kind == "FROM" for kind, _ in steps)
    for kind, args in steps:
        if kind == "FROM":
            image = args.split()[0]
            assert ":" in image and not image.endswith(":latest"), f"unpinned base image {image}"
        if kind == "RUN":
            assert not re.search(r"(curl|wget)[^|;&]*\|\s*(ba|z)?sh", args), f"piped download: {args}"
        if kind == "COPY" and "--from" not in args:
            sources = [a for a in shlex.split(args) if not a.startswith("--")][:-1]
            assert all((REPO / s).exists() for s in sources), f"missing COPY source in {args}"
        if kind in {"ENV", "ARG"}:
            assert not re.search(r"(PASSWORD|TOKEN|SECRET)\w*=", args, re.IGNORECASE), args
    users = [args.strip() for kind, args in steps if kind == "USER"]
    assert users and users[-1] not in {"root", "0", "0:0"}, "the image must end as a non-root user"


def test_raypath_image_matches_ray_and_has_gpu_decoding():
    steps = _instructions(CLUSTER / "Dockerfile")
    base = next(args for kind, args in steps if kind == "FROM")
    assert base.startswith(f"rayproject/ray:{ray.__version__}-") and "gpu" in base, base
    installs = " ".join(args for kind, args in steps if kind == "RUN")
    assert '".[cucim,server]"' in installs and "openslide-bin" in installs


def test_dockerignore_keeps_environments_and_secrets_out():
    patterns = (CLUSTER / "Dockerfile.dockerignore").read_text().split()
    assert {"**/.venv", "**/.git", "**/.env", "data"} <= set(patterns)


def test_readme_names_every_deployment_file():
    readme = (CLUSTER / "README.md").read_text()
    for relative in CHECKED:
        if relative != "README.md":
            assert Path(relative).name in readme, f"cluster/README.md does not mention {relative}"
    for needed in ("RAY_AUTH_MODE=token", "--dashboard-host=127.0.0.1", "ray job submit",
                   "port-forward", "--app-name basic-auth"):
        assert needed in readme, needed
