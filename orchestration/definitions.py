"""The one Definitions object that `dagster dev` loads (see workspace.yaml)."""

from __future__ import annotations

import dagster as dg

from assets.checks import FRESHNESS_CHECKS, LAKE_CHECKS
from assets.lake import bronze_events, gold_tables, silver_tables
from assets.landing import simulated_landing_files
from assets.resources import LakeResource, SparkResource
from flashrec.settings import Settings
from orchestration.jobs import gold_job, gold_schedule, lake_daily_job, lake_daily_schedule
from orchestration.profile import executor_for

LAKE_ASSETS = [simulated_landing_files, bronze_events, silver_tables, gold_tables]

RESOURCES = {"lake": LakeResource(), "spark": SparkResource()}

defs = dg.Definitions(
    assets=LAKE_ASSETS,
    asset_checks=[*LAKE_CHECKS, *FRESHNESS_CHECKS],
    jobs=[lake_daily_job, gold_job],
    schedules=[lake_daily_schedule, gold_schedule],
    resources=RESOURCES,
    executor=executor_for(Settings.from_env()),
)
