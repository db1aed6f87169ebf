"""The one place where the deployment profile changes how Dagster runs steps."""

from __future__ import annotations

import dagster as dg
from dagster_k8s import k8s_job_executor

from flashrec.settings import Settings


def executor_for(settings: Settings) -> dg.ExecutorDefinition | None:
    """Local: every step of a run in the run's own process (one import of the code and
    one Spark session per run instead of one per step: on a two-core machine the imports
    alone cost ~10 s of CPU each). Production: one pod per step, sized by each asset's
    compute class (assets/compute.py)."""
    if settings.profile == "production":
        return k8s_job_executor.configured({"max_concurrent": 8})
    return dg.in_process_executor
