"""Offline checks of the rendered production manifests and of the images.

Schemas: the Kubernetes API's (kubernetes-validate, strict). The FlinkDeployment's CRD
schema and the Dagster chart's values schema cannot be had from the registries we reach
(``NOT_AVAILABLE``): their Kubernetes fragments are validated as core Pods instead.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from flashrec.forecast.capacity import CAPACITY
from flashrec.forecast.exporter import ForecastExporter
from flashrec.settings import PROJECT_ROOT, SETTINGS, Settings
from orchestration.k8s.__main__ import render
from orchestration.k8s.dagster_values import DagsterPostgres
from orchestration.k8s.images import IMAGES, uncovered_modules
from orchestration.k8s.manifests import FLINK_CONNECTOR_DIR, SHARED_MOUNT, config_map
from orchestration.k8s.render import all_objects
from orchestration.k8s.validate import (
    NOT_AVAILABLE,
    hadolint_errors,
    kubernetes_errors,
    manifest_errors,
    yamllint_errors,
)
from orchestration.k8s.workloads import PROCESS_ALIVE, REDIS_REACHABLE, processes

PROD = Settings.from_env(
    environ={},
    profile="production",
    image_registry="registry.test/acme",
    image_tag="1.2.3",
    k8s_secret="acme-secrets",
    k8s_object_store="gs://acme-lake",
    redis_url="redis://:hunter2@redis.internal:6379/0",
    feast_registry="postgresql+psycopg://feast:s3cret@db.internal/feast",
)


def files() -> dict[str, list[dict]]:
    return all_objects(PROD)


def workloads() -> list[dict]:
    return [o for o in files()["services.yaml"] if o["kind"] in ("Deployment", "StatefulSet")]


def test_every_rendered_object_validates_against_the_kubernetes_schemas():
    assert manifest_errors(files()) == []
    assert set(NOT_AVAILABLE) == {
        "FlinkDeployment",
        "dagster-values.yaml",
        "prometheus-adapter-values.yaml",
    }


def test_the_schema_check_catches_a_wrong_field():
    broken = copy.deepcopy(workloads()[0])
    broken["spec"]["template"]["spec"]["containers"][0]["resourcez"] = {}
    assert kubernetes_errors(broken)
    flink = copy.deepcopy(files()["flink-deployment.yaml"][0])
    flink["spec"]["podTemplate"]["spec"]["containers"][0]["envFrum"] = []
    assert manifest_errors({**files(), "flink-deployment.yaml": [flink]})


def test_rendered_files_pass_yamllint_and_dockerfiles_pass_hadolint(tmp_path):
    paths = render(PROD, tmp_path)
    assert yamllint_errors(paths) == []
    assert hadolint_errors(image.dockerfile for image in IMAGES.values()) == []


def test_no_path_of_the_rendering_machine_is_shipped(tmp_path):
    local = Settings.from_env(environ={}, var_dir=tmp_path / "somewhere" / "var")
    rendered = "".join(p.read_text() for p in render(local, tmp_path / "out"))
    assert str(tmp_path) not in rendered
    assert str(PROJECT_ROOT) not in rendered
    assert str(Path.home()) + "/" not in rendered
    # Every setting whose local value is a path is given a cluster location, a folder an
    # image ships (the flink image's connector jars), or is not shipped.
    data = config_map(local)["data"]
    in_image = (FLINK_CONNECTOR_DIR,)
    for spec in SETTINGS:
        value = getattr(local, spec.field)
        if isinstance(value, Path) and spec.env in data and data[spec.env] not in in_image:
            assert data[spec.env].startswith(("/tmp/", f"{SHARED_MOUNT}/", "gs://", "s3://"))


def test_shared_state_lives_on_shared_storage():
    data = config_map(PROD)["data"]
    assert data["FLASHREC_LAKE_DIR"] == "gs://acme-lake/lake"
    assert data["FLASHREC_LANDING_DIR"] == "gs://acme-lake/landing"
    flink = files()["flink-deployment.yaml"][0]["spec"]["flinkConfiguration"]
    # The job's own checkpoint setting and the FlinkDeployment's agree.
    assert flink["execution.checkpointing.dir"] == data["FLASHREC_FLINK_CHECKPOINT_DIR"]
    assert flink["high-availability.storageDir"].startswith("gs://acme-lake/")
    assert data["FLASHREC_ARTIFACTS_DIR"].startswith(SHARED_MOUNT)
    assert "FLASHREC_FEAST_REGISTRY" not in data  # an SQL URL with credentials: the Secret
    by_name = {o["metadata"]["name"]: o for o in workloads()}
    for name in ("model-service", "scorer"):
        volumes = by_name[name]["spec"]["template"]["spec"]["volumes"]
        claims = [
            v["persistentVolumeClaim"]["claimName"] for v in volumes if "persistentVolumeClaim" in v
        ]
        assert claims == [PROD.k8s_shared_volume], name


def test_secrets_only_by_reference():
    rendered = yaml.safe_dump_all([o for objs in files().values() for o in objs])
    assert "hunter2" not in rendered and "s3cret" not in rendered
    values = files()["dagster-values.yaml"][0]
    assert values["postgresql"]["enabled"] is False  # not the chart's default credentials
    assert values["generatePostgresqlPasswordSecret"] is False
    assert values["global"]["postgresqlSecretName"] == "acme-secrets"
    assert "postgresqlPassword" not in values["postgresql"]


def test_dagster_postgres_setting_is_parsed_strictly():
    pg = DagsterPostgres.from_settings(PROD)
    assert (pg.user, pg.host, pg.port, pg.database) == ("dagster", "postgresql", 5432, "dagster")
    for bad in ("postgresql:5432/dagster", "dagster@postgresql", "u:pw@h:5432/db"):
        with pytest.raises(ValueError, match="FLASHREC_K8S_DAGSTER_POSTGRES"):
            DagsterPostgres.from_settings(Settings.from_env(environ={}, k8s_dagster_postgres=bad))


def test_liveness_never_depends_on_redis_and_readiness_does():
    for workload in workloads():
        container = workload["spec"]["template"]["spec"]["containers"][0]
        live, ready = container["livenessProbe"], container["readinessProbe"]
        if "httpGet" in live:
            assert live["httpGet"]["path"] == "/livez"
            assert ready["httpGet"]["path"] == "/readyz"
        else:
            assert live["exec"]["command"] == PROCESS_ALIVE
            assert ready["exec"]["command"] == REDIS_REACHABLE
        assert "redis" not in " ".join(live.get("exec", {}).get("command", [])).lower()


def test_pods_run_as_non_root_with_requests_and_limits():
    for workload in workloads():
        pod = workload["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        for container in pod["containers"]:
            assert container["securityContext"]["allowPrivilegeEscalation"] is False
            assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
            assert set(container["resources"]) == {"requests", "limits"}
    flink = files()["flink-deployment.yaml"][0]["spec"]["podTemplate"]["spec"]
    assert flink["securityContext"]["runAsNonRoot"] is True


def test_every_process_has_a_manifest_and_the_serving_tier_a_disruption_budget():
    names = {o["metadata"]["name"] for o in workloads()}
    assert names == {"gateway", "read-api", "model-service", "scorer", "attribution", "forecast"}
    budgets = {
        o["metadata"]["name"]
        for o in files()["services.yaml"]
        if o["kind"] == "PodDisruptionBudget"
    }
    assert {"gateway", "read-api", "model-service"} <= budgets
    scorer = next(o for o in workloads() if o["metadata"]["name"] == "scorer")
    assert scorer["kind"] == "StatefulSet"  # stable consumer names across restarts
    env = scorer["spec"]["template"]["spec"]["containers"][0]["env"]
    assert env[0]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    job = files()["flink-deployment.yaml"][0]["spec"]["job"]
    assert job["args"][:3] == ["-pym", "flink_jobs.features_job", "run"]


def test_the_serving_tier_and_scorer_scale_on_the_forecast():
    exported = ForecastExporter(PROD, client=None).metrics().decode()
    hpas = {
        o["metadata"]["name"]: o
        for o in files()["services.yaml"]
        if o["kind"] == "HorizontalPodAutoscaler"
    }
    for name in ("gateway", "read-api", "scorer"):
        metrics = hpas[name]["spec"]["metrics"]
        external = [m["external"] for m in metrics if m["type"] == "External"]
        assert len(external) == 1, name
        metric = external[0]["metric"]["name"]
        assert metric in exported  # the exporter publishes exactly this name
        capacity = CAPACITY[name]
        assert metric == f"flashrec_forecast_{capacity.driver}_per_second"
        want = round(capacity.target_per_pod * 1000)
        assert external[0]["target"]["averageValue"] == f"{want}m"
        assert any(m["type"] == "Resource" for m in metrics)  # CPU stays as the backstop
    adapter = files()["prometheus-adapter-values.yaml"][0]
    assert adapter["rules"]["external"][0]["seriesQuery"].startswith(
        '{__name__=~"flashrec_forecast_'
    )
    assert {p.name for p in processes(PROD) if p.capacity} == set(CAPACITY)


@pytest.mark.parametrize("name", [n for n, image in IMAGES.items() if image.requirements])
def test_each_image_holds_what_its_processes_import_and_nothing_heavy(name):
    from orchestration.k8s.images import installed_closure, requirement_lines

    image = IMAGES[name]
    assert uncovered_modules(image) == {}
    closure = installed_closure(requirement_lines(image.requirements_path()))
    assert not set(image.excluded) & closure
    assert f"requirements/{image.requirements}" in image.dockerfile.read_text()
