"""Every Kubernetes object of the platform, file by file (``python -m orchestration.k8s``).

The pieces live beside it: ``manifests`` (shared blocks and the ConfigMap), ``workloads``
(one Deployment/Service per process), ``flink`` (the FlinkDeployment), ``dagster_values``
and ``autoscaling`` (Helm values).
"""

from __future__ import annotations

from typing import Any

from flashrec.settings import Settings
from orchestration.k8s.autoscaling import prometheus_adapter_values
from orchestration.k8s.dagster_values import dagster_helm_values
from orchestration.k8s.flink import flink_deployment
from orchestration.k8s.manifests import config_map
from orchestration.k8s.workloads import process_objects, processes


def all_objects(settings: Settings) -> dict[str, list[dict[str, Any]]]:
    """File name -> the objects it holds (what `python -m orchestration.k8s` writes).

    ``dagster-values.yaml`` and ``prometheus-adapter-values.yaml`` hold Helm values (one
    document each), every other file Kubernetes objects.
    """
    services = [
        obj for process in processes(settings) for obj in process_objects(settings, process)
    ]
    return {
        "configmap.yaml": [config_map(settings)],
        "services.yaml": services,
        "flink-deployment.yaml": [flink_deployment(settings)],
        "dagster-values.yaml": [dagster_helm_values(settings)],
        "prometheus-adapter-values.yaml": [prometheus_adapter_values(settings)],
    }


#: Files of ``all_objects`` that are Helm values, not Kubernetes objects.
HELM_VALUES = frozenset({"dagster-values.yaml", "prometheus-adapter-values.yaml"})
