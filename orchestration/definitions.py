"""The one Definitions object that `dagster dev` loads (see workspace.yaml).

One lineage graph: landing -> bronze -> silver -> gold -> features (Feast) -> models
(training set, embeddings, FAISS index, ranker, evaluation, registration, rollout), with
the drift report watching the features and the sensor that retrains on drift.
"""

from __future__ import annotations

import dagster as dg

from assets.adaptivity import drift_report
from assets.checks import FRESHNESS_CHECKS, LAKE_CHECKS
from assets.features import FEATURE_ASSETS, FEATURE_CHECKS
from assets.lake import bronze_events, gold_tables, silver_tables
from assets.landing import simulated_landing_files
from assets.models import MODEL_ASSETS
from assets.resources import LakeResource, SparkResource
from flashrec.settings import Settings
from orchestration.jobs import (
    drift_job,
    drift_schedule,
    gold_job,
    gold_schedule,
    lake_daily_job,
    lake_daily_schedule,
    retrain_job,
    retrain_schedule,
    rollout_job,
    rollout_schedule,
)
from orchestration.profile import executor_for
from orchestration.sensors import retrain_on_drift

LAKE_ASSETS = [simulated_landing_files, bronze_events, silver_tables, gold_tables]

RESOURCES = {"lake": LakeResource(), "spark": SparkResource()}

defs = dg.Definitions(
    assets=[*LAKE_ASSETS, *FEATURE_ASSETS, *MODEL_ASSETS, drift_report],
    asset_checks=[*LAKE_CHECKS, *FRESHNESS_CHECKS, *FEATURE_CHECKS],
    jobs=[lake_daily_job, gold_job, retrain_job, rollout_job, drift_job],
    schedules=[
        lake_daily_schedule,
        gold_schedule,
        retrain_schedule,
        rollout_schedule,
        drift_schedule,
    ],
    sensors=[retrain_on_drift],
    resources=RESOURCES,
    executor=executor_for(Settings.from_env()),
)
