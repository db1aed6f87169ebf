"""Render every Kubernetes object of the platform from one Settings object.

Nothing here is written by hand twice: images, environment and resources come from the
settings and from the compute classes that the assets use, so the manifests cannot drift
from the code. Secrets are only ever referenced by name (``envFrom.secretRef``); their
values are created out of band (sealed-secrets, an external secret store, ...).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from assets.compute import COMPUTE, ComputeClass
from flashrec.settings import SETTINGS, Settings

CONFIG_MAP = "flashrec-config"
#: Settings whose values may hold credentials: they live in the Secret, never the ConfigMap.
SECRET_ENV = frozenset({"REDIS_URL"})
#: Settings that only make sense on one machine and are not shipped to the cluster.
LOCAL_ONLY_ENV = frozenset({"FLASHREC_VAR_DIR", "FLASHREC_SHARED_DATA_DIR"})
APP_LABEL = "app.kubernetes.io/part-of"


@dataclass(frozen=True)
class BentoService:
    """A BentoML service deployed as a Deployment + Service + autoscaler."""

    name: str
    service_ref: str  # module:Class given to `bentoml serve`
    port: int
    replicas: int
    max_replicas: int
    compute: ComputeClass


BENTO_SERVICES = (
    BentoService("gateway", "bentos.gateway:Gateway", 3000, 2, 20, COMPUTE["light"]),
    BentoService("read-api", "bentos.read_api:ReadAPI", 3000, 3, 40, COMPUTE["light"]),
)


def image(settings: Settings, component: str) -> str:
    """Images: code (Dagster code location, Spark jobs), bentos (services), flink (job)."""
    return f"{settings.image_registry}/{component}:{settings.image_tag}"


def _metadata(settings: Settings, name: str, component: str) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": settings.k8s_namespace,
        "labels": {APP_LABEL: "flashrec", "app.kubernetes.io/component": component},
    }


def _env_from(settings: Settings) -> list[dict[str, Any]]:
    return [{"configMapRef": {"name": CONFIG_MAP}}, {"secretRef": {"name": settings.k8s_secret}}]


def config_map(settings: Settings) -> dict[str, Any]:
    """Every non-secret setting, so pods configure themselves exactly like a laptop."""
    data = {}
    for spec in SETTINGS:
        if spec.env in SECRET_ENV or spec.env in LOCAL_ONLY_ENV:
            continue
        data[spec.env] = str(getattr(settings, spec.field))
    data["FLASHREC_PROFILE"] = "production"
    data["DAGSTER_DISABLE_TELEMETRY"] = "1"
    data["BENTOML_DO_NOT_TRACK"] = "true"
    data["FEAST_USAGE"] = "False"
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _metadata(settings, CONFIG_MAP, "config"),
        "data": data,
    }


def bento_objects(settings: Settings, service: BentoService) -> list[dict[str, Any]]:
    labels = {"app.kubernetes.io/name": service.name}
    container = {
        "name": service.name,
        "image": image(settings, "bentos"),
        "args": [
            "bentoml",
            "serve",
            service.service_ref,
            "--host",
            "0.0.0.0",
            "--port",
            str(service.port),
        ],
        "ports": [{"containerPort": service.port, "name": "http"}],
        "envFrom": _env_from(settings),
        "resources": service.compute.resources(),
        "readinessProbe": {
            "httpGet": {"path": "/readyz", "port": service.port},
            "periodSeconds": 5,
        },
        "livenessProbe": {"httpGet": {"path": "/livez", "port": service.port}, "periodSeconds": 10},
    }
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _metadata(settings, service.name, "serving"),
        "spec": {
            "replicas": service.replicas,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": {"containers": [container]}},
        },
    }
    svc = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(settings, service.name, "serving"),
        "spec": {"selector": labels, "ports": [{"port": 80, "targetPort": service.port}]},
    }
    hpa = {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": _metadata(settings, service.name, "serving"),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": service.name},
            "minReplicas": service.replicas,
            "maxReplicas": service.max_replicas,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {"type": "Utilization", "averageUtilization": 60},
                    },
                }
            ],
        },
    }
    return [deployment, svc, hpa]


def flink_deployment(settings: Settings, parallelism: int = 2) -> dict[str, Any]:
    """The stream job for the Flink Kubernetes operator (FlinkDeployment, application mode)."""
    return {
        "apiVersion": "flink.apache.org/v1beta1",
        "kind": "FlinkDeployment",
        "metadata": _metadata(settings, "flashrec-features", "stream"),
        "spec": {
            "image": image(settings, "flink"),
            "flinkVersion": "v2_0",
            "serviceAccount": "flink",
            "flinkConfiguration": {
                "taskmanager.numberOfTaskSlots": str(parallelism),
                "execution.checkpointing.interval": "1s",
                "execution.checkpointing.mode": "EXACTLY_ONCE",
                "state.checkpoints.dir": "s3://flashrec/flink/checkpoints",
                "state.savepoints.dir": "s3://flashrec/flink/savepoints",
                "high-availability.type": "kubernetes",
                "high-availability.storageDir": "s3://flashrec/flink/ha",
                "python.execution-mode": "thread",
            },
            "jobManager": {"resource": {"memory": "2048m", "cpu": 1}},
            "taskManager": {"resource": {"memory": "4096m", "cpu": parallelism}},
            "podTemplate": {
                "spec": {
                    "containers": [{"name": "flink-main-container", "envFrom": _env_from(settings)}]
                }
            },
            "job": {
                "jarURI": "local:///opt/flink/opt/flink-python.jar",
                "entryClass": "org.apache.flink.client.python.PythonDriver",
                "args": ["-pym", "flink_jobs.features_job", "run"],
                "parallelism": parallelism,
                "upgradeMode": "last-state",
            },
        },
    }


def dagster_helm_values(settings: Settings) -> dict[str, Any]:
    """Values for Dagster's Helm chart: our code location, the K8sRunLauncher, no telemetry."""
    env_config_maps = [{"name": CONFIG_MAP}]
    env_secrets = [{"name": settings.k8s_secret}]
    repository, tag = image(settings, "code").rsplit(":", 1)
    return {
        "telemetry": {"enabled": False},
        "dagster-user-deployments": {
            "enabled": True,
            "deployments": [
                {
                    "name": "flashrec",
                    "image": {"repository": repository, "tag": tag, "pullPolicy": "IfNotPresent"},
                    "dagsterApiGrpcArgs": ["-m", "orchestration.definitions"],
                    "port": 3030,
                    "envConfigMaps": env_config_maps,
                    "envSecrets": env_secrets,
                    "resources": COMPUTE["light"].resources(),
                }
            ],
        },
        "runLauncher": {
            "type": "K8sRunLauncher",
            "config": {
                "k8sRunLauncher": {
                    "envConfigMaps": env_config_maps,
                    "envSecrets": env_secrets,
                    "runK8sConfig": {
                        "containerConfig": {"resources": COMPUTE["light"].resources()}
                    },
                }
            },
        },
        "dagsterDaemon": {"enabled": True},
        "postgresql": {"enabled": True},
    }


def all_objects(settings: Settings) -> dict[str, list[dict[str, Any]]]:
    """File name -> the objects it holds (what `python -m orchestration.k8s` writes)."""
    bentos = [obj for service in BENTO_SERVICES for obj in bento_objects(settings, service)]
    return {
        "configmap.yaml": [config_map(settings)],
        "bentos.yaml": bentos,
        "flink-deployment.yaml": [flink_deployment(settings)],
        "dagster-values.yaml": [dagster_helm_values(settings)],
    }
