"""The Kubernetes Job that dagster-k8s launches for one asset step, built for real.

Used by tests and by `python -m orchestration.k8s` to show what a step pod looks like:
the image, the environment (ConfigMap + Secret by reference) and the resources that the
asset's compute class asks for.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dagster_k8s.job import (
    DagsterK8sJobConfig,
    UserDefinedDagsterK8sConfig,
    construct_dagster_k8s_job,
)

from flashrec.settings import Settings
from orchestration.k8s.manifests import CONFIG_MAP, image


def job_config(settings: Settings) -> DagsterK8sJobConfig:
    return DagsterK8sJobConfig(
        job_image=image(settings, "code"),
        dagster_home="/opt/dagster/dagster_home",
        image_pull_policy="IfNotPresent",
        instance_config_map="dagster-instance",
        env_config_maps=[CONFIG_MAP],
        env_secrets=[settings.k8s_secret],
    )


def step_job(settings: Settings, step_key: str, op_tags: Mapping[str, Any]) -> dict[str, Any]:
    """The V1Job (as a dict) for one step with these op tags (e.g. k8s_op_tags('spark'))."""
    user_config = UserDefinedDagsterK8sConfig.from_dict(op_tags.get("dagster-k8s/config", {}))
    job = construct_dagster_k8s_job(
        job_config(settings),
        args=["dagster", "api", "execute_step"],
        job_name=f"dagster-step-{step_key.replace('_', '-')}",
        user_defined_k8s_config=user_config,
        component="step_worker",
    )
    return job.to_dict()
