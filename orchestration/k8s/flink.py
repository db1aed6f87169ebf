"""The stream job (Flink features and the live-lake writer) for the Flink Kubernetes operator.

Application mode: the operator starts a JobManager that runs our PyFlink driver
(``python -m flink_jobs.features_job run``) and TaskManagers from the same image.
Checkpoints, savepoints and HA metadata live under the object store, and the job's own
checkpoint setting (``FLASHREC_FLINK_CHECKPOINT_DIR`` in the ConfigMap) names the same
folder as ``execution.checkpointing.dir`` here, so neither overrides the other.
Restores are the operator's: ``upgradeMode: last-state`` restarts from the newest
checkpoint recorded in the HA metadata, after a crash or an upgrade.
"""

from __future__ import annotations

from importlib.metadata import version
from typing import Any

from flashrec.settings import Settings
from orchestration.k8s.manifests import env_from, image, metadata, object_store
from orchestration.k8s.workloads import container_security_context, pod_security_context

#: Paths inside the flink image (orchestration/k8s/Dockerfile.flink).
PYTHON = "/opt/venv/bin/python"
SOURCE_JAR = "/opt/flink/usrlib/flashrec-redis-source.jar"
FLINK_USER = 9999  # the official Flink image's `flink` user
#: The Flink release the job is built against (the image's Flink must be the same).
FLINK_RELEASE = version("apache-flink")
#: Flink's S3 filesystem plugin, shipped in the image's opt/ and enabled at start.
S3_PLUGIN = f"flink-s3-fs-hadoop-{FLINK_RELEASE}.jar"


def flink_version() -> str:
    """The operator's ``flinkVersion`` for the PyFlink the job is built with (2.3.0 -> v2_3)."""
    major, minor = FLINK_RELEASE.split(".")[:2]
    return f"v{major}_{minor}"


def flink_deployment(settings: Settings) -> dict[str, Any]:
    parallelism = settings.flink_parallelism
    return {
        "apiVersion": "flink.apache.org/v1beta1",
        "kind": "FlinkDeployment",
        "metadata": metadata(settings, "flashrec-features", "stream"),
        "spec": {
            "image": image(settings, "flink"),
            "imagePullPolicy": "IfNotPresent",
            "flinkVersion": flink_version(),
            "serviceAccount": "flink",
            "flinkConfiguration": {
                "taskmanager.numberOfTaskSlots": str(parallelism),
                "execution.checkpointing.interval": f"{settings.flink_checkpoint_interval_ms}ms",
                "execution.checkpointing.timeout": f"{settings.flink_checkpoint_timeout_s}s",
                "execution.checkpointing.mode": "EXACTLY_ONCE",
                "execution.checkpointing.dir": object_store(settings, "flink", "checkpoints"),
                "execution.checkpointing.savepoint-dir": object_store(
                    settings, "flink", "savepoints"
                ),
                "execution.checkpointing.num-retained": "3",
                "high-availability.type": "kubernetes",
                "high-availability.storageDir": object_store(settings, "flink", "ha"),
                "python.execution-mode": settings.flink_execution_mode,
                "python.executable": PYTHON,
                "python.client.executable": PYTHON,
                "metrics.reporter.prom.factory.class": (
                    "org.apache.flink.metrics.prometheus.PrometheusReporterFactory"
                ),
                "metrics.reporter.prom.port": "9249",
            },
            "jobManager": {"replicas": 1, "resource": {"memory": "2048m", "cpu": 1}},
            "taskManager": {"resource": {"memory": "4096m", "cpu": max(parallelism, 1)}},
            "podTemplate": {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "annotations": {
                        "prometheus.io/scrape": "true",
                        "prometheus.io/port": "9249",
                    }
                },
                "spec": {
                    "securityContext": pod_security_context(FLINK_USER),
                    "containers": [
                        {
                            "name": "flink-main-container",
                            "envFrom": env_from(settings),
                            "env": [{"name": "ENABLE_BUILT_IN_PLUGINS", "value": S3_PLUGIN}],
                            # Flink writes its configuration and logs under /opt/flink.
                            "securityContext": container_security_context(read_only_root=False),
                        }
                    ],
                },
            },
            "job": {
                "jarURI": "local:///opt/flink/opt/flink-python.jar",
                "entryClass": "org.apache.flink.client.python.PythonDriver",
                "args": ["-pym", "flink_jobs.features_job", "run", "--jar", SOURCE_JAR],
                "parallelism": parallelism,
                "upgradeMode": "last-state",
                "state": "running",
            },
        },
    }
