"""The long-running processes of the platform as Kubernetes workloads.

One ``Process`` per pod kind, with the command that `make up` runs locally
(``orchestration.stack``), so a pod runs exactly what a laptop runs. Each gets a
Deployment (the scorer a StatefulSet: its consumer name must survive restarts so that its
pending rescore signals are replayed), a Service when it listens, an autoscaler when it
scales and a PodDisruptionBudget in the serving tier.

Probes: liveness never depends on Redis (restarting a pod does not bring Redis back, and
a Redis blip must not restart the whole tier); readiness does, so a pod that cannot reach
Redis stops receiving traffic. BentoML serves ``/livez`` and ``/readyz`` from the
service's ``__is_alive__`` / ``__is_ready__`` hooks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flashrec.forecast.capacity import CAPACITY, PodCapacity
from flashrec.settings import Settings
from orchestration.k8s.autoscaling import autoscaler
from orchestration.k8s.manifests import (
    BENTOML_HOME,
    MODEL_STORE_SUBPATH,
    RUN_AS,
    SCRATCH,
    SHARED_MOUNT,
    env_from,
    image,
    metadata,
)

BENTO_PORT = 3000


@dataclass(frozen=True)
class Resources:
    cpu_request: str
    memory_request: str
    cpu_limit: str
    memory_limit: str

    def spec(self) -> dict[str, dict[str, str]]:
        return {
            "requests": {"cpu": self.cpu_request, "memory": self.memory_request},
            "limits": {"cpu": self.cpu_limit, "memory": self.memory_limit},
        }


#: One worker per serving pod, limited to the one core its capacity was measured on.
SERVING = Resources("1", "512Mi", "1", "1Gi")
MODEL = Resources("1", "2Gi", "2", "4Gi")
SCORER = Resources("1", "1Gi", "1", "2Gi")
SMALL = Resources("100m", "128Mi", "500m", "256Mi")


@dataclass(frozen=True)
class Process:
    """One pod kind: its image, command, size, probes and how it scales."""

    name: str
    image: str  # component of orchestration.k8s.images
    args: tuple[str, ...]
    resources: Resources
    replicas: int
    max_replicas: int | None = None  # None: a fixed number of pods
    port: int | None = None  # HTTP port with /livez and /readyz
    capacity: PodCapacity | None = None  # scales on the forecast of capacity.driver
    stateful: bool = False
    shared_volume: bool = False  # mounts the ReadWriteMany claim (artifacts)
    model_store: bool = False  # the shared BentoML model store at $BENTOML_HOME/models
    disruption_budget: bool = False
    metrics_port: int | None = None  # scraped by Prometheus at /metrics
    single_instance: bool = False  # never two at once (Recreate on rollout)


def bento(ref: str) -> tuple[str, ...]:
    return ("bentoml", "serve", ref, "--host", "0.0.0.0", "--port", str(BENTO_PORT))


def processes(settings: Settings) -> tuple[Process, ...]:
    forecast_port = settings.forecast_port
    return (
        Process(
            "gateway", "serving", bento("bentos.gateway:Gateway"), SERVING, 2, 40,
            port=BENTO_PORT, capacity=CAPACITY["gateway"], disruption_budget=True,
            metrics_port=settings.gateway_admin_port,
        ),
        Process(
            "read-api", "serving", bento("bentos.read_api:ReadAPI"), SERVING, 3, 40,
            port=BENTO_PORT, capacity=CAPACITY["read-api"], disruption_budget=True,
            metrics_port=settings.read_api_admin_port,
        ),
        Process(
            "model-service", "model", bento("bentos.model_service:ModelService"), MODEL, 2, 10,
            port=BENTO_PORT, shared_volume=True, model_store=True, disruption_budget=True,
            metrics_port=settings.model_service_admin_port,
        ),
        Process(
            "scorer", "model", ("python", "-m", "bentos.scorer_process", "run"), SCORER, 2, 20,
            capacity=CAPACITY["scorer"], stateful=True, shared_volume=True,
            disruption_budget=True, metrics_port=settings.scorer_metrics_port,
        ),
        Process(
            "attribution", "serving", ("python", "-m", "flashrec.attribution", "run"), SMALL, 1,
            single_instance=True, metrics_port=settings.attribution_metrics_port,
        ),
        Process(
            "forecast", "serving",
            ("python", "-m", "flashrec.forecast", "run", "--port", str(forecast_port)),
            SMALL, 1, port=forecast_port, metrics_port=forecast_port, single_instance=True,
        ),
    )  # fmt: skip


def _labels(process: Process) -> dict[str, str]:
    return {"app.kubernetes.io/name": process.name}


#: Liveness of a process without HTTP: its main process is neither a zombie nor stopped.
#: Deliberately independent of Redis (see the module docstring).
PROCESS_ALIVE = ["/bin/sh", "-c", "! grep -Eq '^State:[[:space:]]+[ZT]' /proc/1/status"]
#: Readiness of a process without HTTP: Redis answers a PING within two seconds.
REDIS_REACHABLE = [
    "python",
    "-c",
    "import os, redis; redis.Redis.from_url(os.environ['REDIS_URL'], socket_timeout=2,"
    " socket_connect_timeout=2).ping()",
]


def _probes(process: Process) -> dict[str, Any]:
    if process.port is not None:
        port = process.port
        return {
            # Models load before the service answers: up to two minutes to start.
            "startupProbe": {
                "httpGet": {"path": "/livez", "port": port},
                "periodSeconds": 2,
                "failureThreshold": 60,
            },
            "livenessProbe": {
                "httpGet": {"path": "/livez", "port": port},
                "periodSeconds": 10,
                "timeoutSeconds": 2,
                "failureThreshold": 3,
            },
            "readinessProbe": {
                "httpGet": {"path": "/readyz", "port": port},
                "periodSeconds": 5,
                "timeoutSeconds": 2,
                "failureThreshold": 2,
            },
        }
    return {
        "livenessProbe": {"exec": {"command": PROCESS_ALIVE}, "periodSeconds": 10},
        "readinessProbe": {
            "exec": {"command": REDIS_REACHABLE},
            "periodSeconds": 30,
            "timeoutSeconds": 5,
        },
    }


def _volumes(settings: Settings, process: Process) -> tuple[list[dict], list[dict]]:
    volumes: list[dict[str, Any]] = [{"name": "scratch", "emptyDir": {"sizeLimit": "2Gi"}}]
    mounts: list[dict[str, Any]] = [{"name": "scratch", "mountPath": SCRATCH}]
    if process.shared_volume or process.model_store:
        volumes.append(
            {"name": "shared", "persistentVolumeClaim": {"claimName": settings.k8s_shared_volume}}
        )
    if process.shared_volume:
        mounts.append({"name": "shared", "mountPath": SHARED_MOUNT})
    if process.model_store:
        mounts.append(
            {
                "name": "shared",
                "mountPath": f"{BENTOML_HOME}/models",
                "subPath": MODEL_STORE_SUBPATH,
            }
        )
    return volumes, mounts


def pod_security_context(user: int = RUN_AS) -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "runAsUser": user,
        "runAsGroup": user,
        "fsGroup": user,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def container_security_context(read_only_root: bool = True) -> dict[str, Any]:
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": read_only_root,
        "capabilities": {"drop": ["ALL"]},
    }


def _container(settings: Settings, process: Process, mounts: list[dict]) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": process.name,
        "image": image(settings, process.image),
        "imagePullPolicy": "IfNotPresent",
        "args": list(process.args),
        "envFrom": env_from(settings),
        "resources": process.resources.spec(),
        "securityContext": container_security_context(),
        "volumeMounts": mounts,
        **_probes(process),
    }
    if process.port is not None:
        container["ports"] = [{"containerPort": process.port, "name": "http"}]
    if process.metrics_port is not None and process.metrics_port != process.port:
        # the admin surface (metrics, stats): its own port, never the storefront's
        container.setdefault("ports", []).append(
            {"containerPort": process.metrics_port, "name": "admin"}
        )
    if process.stateful:
        # The consumer name is the pod's (scorer-0, scorer-1, ...): stable across restarts,
        # so a restarted scorer replays its own pending signals.
        container["env"] = [
            {
                "name": "FLASHREC_SCORER_CONSUMER",
                "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}},
            }
        ]
    return container


def _pod_template(settings: Settings, process: Process) -> dict[str, Any]:
    volumes, mounts = _volumes(settings, process)
    annotations = {}
    if process.metrics_port is not None:
        annotations = {
            "prometheus.io/scrape": "true",
            "prometheus.io/port": str(process.metrics_port),
            "prometheus.io/path": "/metrics",
        }
    spec: dict[str, Any] = {
        "securityContext": pod_security_context(),
        "automountServiceAccountToken": False,
        "containers": [_container(settings, process, mounts)],
        "volumes": volumes,
    }
    if process.max_replicas:
        spec["topologySpreadConstraints"] = [
            {
                "maxSkew": 1,
                "topologyKey": "kubernetes.io/hostname",
                "whenUnsatisfiable": "ScheduleAnyway",
                "labelSelector": {"matchLabels": _labels(process)},
            }
        ]
    template_meta: dict[str, Any] = {"labels": _labels(process)}
    if annotations:
        template_meta["annotations"] = annotations
    return {"metadata": template_meta, "spec": spec}


def _workload(settings: Settings, process: Process, tier: str) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "replicas": process.replicas,
        "selector": {"matchLabels": _labels(process)},
        "template": _pod_template(settings, process),
    }
    if process.stateful:
        spec["serviceName"] = process.name
        spec["podManagementPolicy"] = "Parallel"
    elif process.single_instance:
        spec["strategy"] = {"type": "Recreate"}
    else:
        spec["strategy"] = {
            "type": "RollingUpdate",
            "rollingUpdate": {"maxUnavailable": 0, "maxSurge": "25%"},
        }
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet" if process.stateful else "Deployment",
        "metadata": metadata(settings, process.name, tier),
        "spec": spec,
    }


def _service(settings: Settings, process: Process, tier: str) -> dict[str, Any] | None:
    if process.stateful:  # the StatefulSet's governing (headless) Service
        spec: dict[str, Any] = {"clusterIP": "None", "selector": _labels(process)}
    elif process.port is not None:
        spec = {
            "selector": _labels(process),
            "ports": [{"name": "http", "port": 80, "targetPort": "http"}],
        }
    else:
        return None
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(settings, process.name, tier),
        "spec": spec,
    }


def _disruption_budget(settings: Settings, process: Process, tier: str) -> dict[str, Any]:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": metadata(settings, process.name, tier),
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": _labels(process)}},
    }


def tier_of(process: Process) -> str:
    return "serving" if process.disruption_budget else "background"


def process_objects(settings: Settings, process: Process) -> list[dict[str, Any]]:
    """Workload, Service, autoscaler and disruption budget of one process, as they apply."""
    tier = tier_of(process)
    objects = [_workload(settings, process, tier)]
    service = _service(settings, process, tier)
    if service is not None:
        objects.append(service)
    if process.max_replicas:
        objects.append(autoscaler(settings, process, tier))
    if process.disruption_budget:
        objects.append(_disruption_budget(settings, process, tier))
    return objects
