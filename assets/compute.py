"""Compute classes: what each kind of asset asks Kubernetes for (dagster-k8s op tags).

Locally these tags are ignored; with the production profile the k8s executor turns them
into per-step pod resource requests and limits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ComputeClass:
    name: str
    cpu_request: str
    memory_request: str
    cpu_limit: str
    memory_limit: str

    def resources(self) -> dict[str, dict[str, str]]:
        return {
            "requests": {"cpu": self.cpu_request, "memory": self.memory_request},
            "limits": {"cpu": self.cpu_limit, "memory": self.memory_limit},
        }


COMPUTE: dict[str, ComputeClass] = {
    "light": ComputeClass("light", "250m", "512Mi", "1", "1Gi"),
    # local-mode Spark inside the step pod (or the driver when FLASHREC_SPARK_MASTER is a cluster)
    "spark": ComputeClass("spark", "2", "6Gi", "4", "8Gi"),
    "training": ComputeClass("training", "4", "8Gi", "8", "16Gi"),
}


def k8s_op_tags(kind: str) -> dict[str, Any]:
    """Op tags that dagster-k8s reads for the step's pod."""
    compute = COMPUTE[kind]
    return {
        "dagster-k8s/config": {
            "container_config": {"resources": compute.resources()},
            "pod_template_spec_metadata": {"labels": {"flashrec/compute": compute.name}},
        }
    }
