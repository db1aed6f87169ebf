"""The building blocks every Kubernetes object shares, from one Settings object
(metadata, images, environment, the ConfigMap); ``render`` assembles the files.

Nothing here is written by hand twice: images, environment, storage locations and
resources come from the settings, the per-pod capacities (``flashrec.forecast.capacity``)
and the compute classes the assets use, so the manifests cannot drift from the code.
Secrets are only ever referenced by name (``envFrom.secretRef``, the Dagster chart's
``postgresqlSecretName``); their values are created out of band.

Shared state never lives on a pod's disk: the lake, the landing files and Flink's
checkpoints, savepoints and HA metadata under ``FLASHREC_K8S_OBJECT_STORE``; model
artifacts and the BentoML model store on the ReadWriteMany claim
``FLASHREC_K8S_SHARED_VOLUME``; the Feast registry wherever ``FLASHREC_FEAST_REGISTRY``
(a Secret key) points, Feast's SQL registry in production. Each pod's scratch space is an
``emptyDir`` at /tmp, so no path of the machine that rendered the files is ever shipped.
"""

from __future__ import annotations

from typing import Any

from flashrec.settings import SETTINGS, Settings

CONFIG_MAP = "flashrec-config"
#: Settings whose values may hold credentials: they live in the Secret, never the ConfigMap.
SECRET_ENV = frozenset({"REDIS_URL", "FLASHREC_FEAST_REGISTRY", "FLASHREC_ADMIN_TOKEN"})
#: Settings that only make sense on one machine and are not shipped to the cluster.
LOCAL_ONLY_ENV = frozenset({"FLASHREC_SHARED_DATA_DIR"})
APP_LABEL = "app.kubernetes.io/part-of"

#: Where the shared ReadWriteMany volume is mounted, and each pod's scratch folder.
SHARED_MOUNT = "/var/lib/flashrec"
SCRATCH = "/tmp"
#: The BentoML home is per pod (two `bentoml serve` sharing one home wipe each other's
#: Prometheus multiprocess files); only its models/ folder is the shared model store.
BENTOML_HOME = f"{SCRATCH}/bentoml"
MODEL_STORE_SUBPATH = "bentoml/models"
#: The Kafka connector jars inside the flink image (Dockerfile.flink).
FLINK_CONNECTOR_DIR = "/opt/flink/usrlib/kafka"
#: The non-root user of the project's images (Dockerfile.*: useradd --uid 10001).
RUN_AS = 10001


def image(settings: Settings, component: str) -> str:
    """Images: code (Dagster, Spark), serving, model, flink (see orchestration/k8s/images.py)."""
    return f"{settings.image_registry}/{component}:{settings.image_tag}"


def object_store(settings: Settings, *parts: str) -> str:
    """A location under the object-storage root, e.g. ``s3://flashrec/lake``."""
    return "/".join([settings.k8s_object_store.rstrip("/"), *parts])


def production_env(settings: Settings) -> dict[str, str]:
    """The settings whose local value is a path of this machine, as every pod sees them."""
    return {
        "FLASHREC_VAR_DIR": f"{SCRATCH}/flashrec",
        "FLASHREC_LAKE_DIR": object_store(settings, "lake"),
        "FLASHREC_LANDING_DIR": object_store(settings, "landing"),
        "FLASHREC_FLINK_CHECKPOINT_DIR": object_store(settings, "flink", "checkpoints"),
        "FLASHREC_FLINK_CONNECTOR_DIR": FLINK_CONNECTOR_DIR,
        "FLASHREC_ARTIFACTS_DIR": f"{SHARED_MOUNT}/artifacts",
        "FLASHREC_MODEL_SERVICE_URL": "http://model-service",
        "FLASHREC_PROFILE": "production",
        "FLASHREC_ADMIN_HOST": "0.0.0.0",  # Prometheus scrapes the pods' admin ports
        "BENTOML_HOME": BENTOML_HOME,
        "DAGSTER_DISABLE_TELEMETRY": "1",
        "BENTOML_DO_NOT_TRACK": "true",
        "FEAST_USAGE": "False",
        "PYTHONDONTWRITEBYTECODE": "1",
    }


def metadata(settings: Settings, name: str, component: str) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": settings.k8s_namespace,
        "labels": {APP_LABEL: "flashrec", "app.kubernetes.io/component": component},
    }


def env_from(settings: Settings) -> list[dict[str, Any]]:
    return [{"configMapRef": {"name": CONFIG_MAP}}, {"secretRef": {"name": settings.k8s_secret}}]


def config_map(settings: Settings) -> dict[str, Any]:
    """Every non-secret setting, so pods configure themselves exactly like a laptop."""
    overrides = production_env(settings)
    data = {}
    for spec in SETTINGS:
        if spec.env in SECRET_ENV or spec.env in LOCAL_ONLY_ENV:
            continue
        data[spec.env] = overrides.get(spec.env, str(getattr(settings, spec.field)))
    data.update(overrides)
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata(settings, CONFIG_MAP, "config"),
        "data": data,
    }
