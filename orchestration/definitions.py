"""The one Definitions object that `dagster dev` loads (see workspace.yaml).

One lineage graph: landing (simulated history and the live stream's files) -> bronze ->
silver -> gold -> features (Feast) -> models (training set, embeddings, FAISS index,
ranker, evaluation, registration, rollout), with the drift report watching the features.
The adaptive loop runs on sensors (``FLASHREC_ADAPTIVE_LOOP`` turns it off): live files ->
lake refresh -> drift -> retrain -> rollout looks -> promotion or rollback.
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
from assets.rollout import ROLLOUT_ASSETS
from assets.sequence import SEQUENCE_ASSETS
from flashrec.settings import Settings
from orchestration.jobs import (
    drift_job,
    drift_schedule,
    gold_job,
    gold_schedule,
    lake_daily_job,
    lake_daily_schedule,
    live_downstream_job,
    live_lake_job,
    retrain_job,
    retrain_schedule,
    rollout_job,
)
from orchestration.live_sensors import live_downstream_refresh, live_lake_refresh
from orchestration.profile import executor_for
from orchestration.rollout_sensor import rollout_watch
from orchestration.sensors import retrain_on_drift

LAKE_ASSETS = [simulated_landing_files, bronze_events, silver_tables, gold_tables]

RESOURCES = {"lake": LakeResource(), "spark": SparkResource()}

defs = dg.Definitions(
    assets=[
        *LAKE_ASSETS,
        *FEATURE_ASSETS,
        *SEQUENCE_ASSETS,
        *MODEL_ASSETS,
        *ROLLOUT_ASSETS,
        drift_report,
    ],
    asset_checks=[*LAKE_CHECKS, *FRESHNESS_CHECKS, *FEATURE_CHECKS],
    jobs=[
        lake_daily_job,
        gold_job,
        live_lake_job,
        live_downstream_job,
        retrain_job,
        rollout_job,
        drift_job,
    ],
    schedules=[lake_daily_schedule, gold_schedule, retrain_schedule, drift_schedule],
    sensors=[live_lake_refresh, live_downstream_refresh, retrain_on_drift, rollout_watch],
    resources=RESOURCES,
    executor=executor_for(Settings.from_env()),
)
