"""Production manifests and dagster-k8s step jobs, built from the same configuration."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import dagster as dg
import pytest
import yaml
from dagster_k8s import k8s_job_executor

from assets.compute import COMPUTE, k8s_op_tags
from flashrec.settings import PROJECT_ROOT, Settings
from orchestration.k8s.images import IMAGES
from orchestration.k8s.jobs import step_job
from orchestration.k8s.manifests import CONFIG_MAP, SECRET_ENV, config_map
from orchestration.k8s.render import all_objects
from orchestration.k8s.workloads import processes
from orchestration.profile import executor_for

PROD = Settings.from_env(
    environ={},
    profile="production",
    image_registry="registry.test/acme",
    image_tag="1.2.3",
    k8s_secret="acme-secrets",
    redis_url="redis://:hunter2@redis.internal:6379/0",
)


def containers(obj: dict) -> list[dict]:
    spec = obj.get("spec", {})
    template = spec.get("template", {}).get("spec", {})
    pod = spec.get("podTemplate", {}).get("spec", {})
    return template.get("containers", []) + pod.get("containers", [])


def all_manifests() -> list[dict]:
    return [
        obj
        for name, objects in all_objects(PROD).items()
        if name != "prometheus-adapter-values.yaml"
        for obj in objects
    ]


def test_no_secret_value_is_ever_inlined():
    rendered = yaml.safe_dump_all(all_manifests())
    assert "hunter2" not in rendered
    assert "REDIS_URL" not in config_map(PROD)["data"]
    for obj in all_manifests():
        for container in containers(obj):
            for env in container.get("env", []):
                assert env["name"] not in SECRET_ENV or "valueFrom" in env
            refs = container.get("envFrom", [])
            assert {"secretRef": {"name": "acme-secrets"}} in refs
            assert {"configMapRef": {"name": CONFIG_MAP}} in refs


def test_images_and_resources_come_from_the_settings():
    for obj in all_manifests():
        for container in containers(obj):
            if "image" in container:
                assert container["image"].startswith("registry.test/acme/")
                assert container["image"].endswith(":1.2.3")
            if obj["kind"] in ("Deployment", "StatefulSet"):
                assert container["resources"]["requests"]["cpu"]
                assert container["resources"]["limits"]["memory"]
    flink = all_objects(PROD)["flink-deployment.yaml"][0]
    assert flink["spec"]["image"] == "registry.test/acme/flink:1.2.3"
    assert flink["spec"]["job"]["upgradeMode"] == "last-state"
    assert flink["spec"]["flinkConfiguration"]["execution.checkpointing.interval"]
    values = all_objects(PROD)["dagster-values.yaml"][0]
    deployment = values["dagster-user-deployments"]["deployments"][0]
    assert deployment["image"] == {
        "repository": "registry.test/acme/code",
        "tag": "1.2.3",
        "pullPolicy": "IfNotPresent",
    }
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    assert values["telemetry"] == {"enabled": False}


def test_configmap_carries_every_non_secret_setting():
    data = config_map(PROD)["data"]
    assert data["FLASHREC_PROFILE"] == "production"
    assert data["FLASHREC_EVENTS_STREAM"] == PROD.events_stream
    assert data["DAGSTER_DISABLE_TELEMETRY"] == "1"


#: Process modules written in parallel on another branch: their manifests exist already.
PENDING_MODULES: set[str] = set()


def test_every_process_command_names_code_that_exists():
    for process in processes(PROD):
        args = process.args
        if args[:2] == ("bentoml", "serve"):
            module, _, cls = args[2].partition(":")
            source = importlib.util.find_spec(module).origin
            assert f"class {cls}" in Path(source).read_text(), args[2]
        else:
            assert args[:2] == ("python", "-m"), args
            if args[2] in PENDING_MODULES and importlib.util.find_spec(args[2]) is None:
                continue
            assert importlib.util.find_spec(args[2]) is not None, args[2]
    dockerfiles = sorted((PROJECT_ROOT / "orchestration" / "k8s").glob("Dockerfile.*"))
    assert sorted(d.suffix.lstrip(".") for d in dockerfiles) == sorted(IMAGES)
    assert {p.image for p in processes(PROD)} <= set(IMAGES)
    for dockerfile in dockerfiles:
        text = dockerfile.read_text()
        assert "constraints.txt" in text
        for line in text.splitlines():
            if line.startswith("COPY ") and not line.startswith("COPY --"):
                for source in line.rstrip(" \\").split()[1:-1]:
                    assert (PROJECT_ROOT / source).exists(), f"{dockerfile.name}: {source}"


@pytest.mark.parametrize("kind", sorted(COMPUTE))
def test_step_jobs_request_the_asset_compute_class(kind):
    job = step_job(PROD, "some_asset", k8s_op_tags(kind))
    pod = job["spec"]["template"]
    container = pod["spec"]["containers"][0]
    assert container["image"] == "registry.test/acme/code:1.2.3"
    assert container["resources"]["requests"] == COMPUTE[kind].resources()["requests"]
    assert container["resources"]["limits"] == COMPUTE[kind].resources()["limits"]
    refs = container["env_from"]
    assert any(r["secret_ref"] and r["secret_ref"]["name"] == "acme-secrets" for r in refs)
    assert pod["metadata"]["labels"]["flashrec/compute"] == kind


def test_every_spark_asset_asks_for_spark_resources():
    from orchestration.definitions import defs

    graph = defs.resolve_asset_graph()
    sized = {}
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        assets_def = node.assets_def
        tags = assets_def.op.tags if assets_def.is_executable else {}
        if "dagster-k8s/config" in tags:
            config = tags["dagster-k8s/config"]  # Dagster stores dict tags as JSON
            sized[key.to_user_string()] = json.loads(config) if isinstance(config, str) else config
    assert sized["silver_events"]["container_config"]["resources"] == COMPUTE["spark"].resources()
    assert sized["gold_catalog"]["container_config"]["resources"] == COMPUTE["spark"].resources()


def test_profile_is_chosen_in_one_place():
    assert executor_for(Settings.from_env(environ={})) is dg.in_process_executor
    production = executor_for(PROD)
    assert isinstance(production, dg.ExecutorDefinition)
    assert production.name == k8s_job_executor.name


def test_render_command_writes_yaml(tmp_path: Path, monkeypatch):
    import sys

    from orchestration.k8s.__main__ import main

    monkeypatch.setattr(sys, "argv", ["k8s", "--out", str(tmp_path)])
    main()
    written = sorted(p.name for p in tmp_path.glob("*.yaml"))
    assert written == sorted(all_objects(PROD))
    objects = list(yaml.safe_load_all((tmp_path / "services.yaml").read_text()))
    kinds = {o["kind"] for o in objects}
    assert kinds == {
        "Deployment",
        "StatefulSet",
        "Service",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
    }
