"""The one place where the deployment profile changes how Dagster runs steps."""

from __future__ import annotations

import dagster as dg
from dagster_k8s import k8s_job_executor

from flashrec.settings import Settings


def executor_for(settings: Settings) -> dg.ExecutorDefinition | None:
    """Local: Dagster's default (multiprocess) executor. Production: one pod per step,
    sized by each asset's compute class (assets/compute.py)."""
    if settings.profile == "production":
        return k8s_job_executor.configured({"max_concurrent": 8})
    return None
