"""Jobs and schedules, defined by asset selection; the loop's run in lanes (see
``orchestration.automation``)."""

from __future__ import annotations

import dagster as dg

from assets import groups
from assets.partitions import daily
from orchestration.automation import LAKE_LANE, LANE, MODELS_LANE, ROLLOUT_LANE, schedule_status

FEATURE_TABLES = ("features_item_activity", "features_session_activity", "features_user_activity")

lake_daily_job = dg.define_asset_job(
    "lake_daily",
    selection=dg.AssetSelection.groups(groups.LANDING, groups.BRONZE, groups.SILVER),
    partitions_def=daily,
    description="Ingest one landing day into bronze and rebuild its silver partitions.",
    tags={LANE: LAKE_LANE},
)

gold_job = dg.define_asset_job(
    "lake_gold",
    selection=dg.AssetSelection.groups(groups.GOLD),
    description="Rebuild the gold tables from the current silver snapshot.",
    tags={LANE: LAKE_LANE},
)

live_lake_job = dg.define_asset_job(
    "live_lake",
    selection=dg.AssetSelection.groups(groups.BRONZE, groups.SILVER),
    partitions_def=daily,
    description="The live stream's new landing files of one day into bronze, then silver.",
    tags={LANE: LAKE_LANE},
)

live_downstream_job = dg.define_asset_job(
    "live_downstream",
    selection=(
        dg.AssetSelection.groups(groups.GOLD)
        | dg.AssetSelection.assets(*FEATURE_TABLES)
        | dg.AssetSelection.assets("drift_report")
    ),
    description="After new live silver data: gold, the feature history, then drift.",
    tags={LANE: LAKE_LANE},
)

#: Shortly after midnight UTC, ingest the day that just closed.
lake_daily_schedule = dg.build_schedule_from_partitioned_job(
    lake_daily_job, hour_of_day=0, minute_of_hour=30, default_status=schedule_status()
)

gold_schedule = dg.ScheduleDefinition(
    job=gold_job,
    cron_schedule="15 1 * * *",
    execution_timezone="UTC",
    default_status=schedule_status(),
)

retrain_job = dg.define_asset_job(
    "retrain_models",
    selection=dg.AssetSelection.groups(groups.MODELS) - dg.AssetSelection.assets("model_rollout"),
    description="Train, evaluate and register a model; a retrained one enters as a shadow.",
    tags={LANE: MODELS_LANE},
)

rollout_job = dg.define_asset_job(
    "advance_rollout",
    selection=dg.AssetSelection.assets("model_rollout"),
    description="Move the challenger through shadow -> canary -> promote/rollback.",
    tags={LANE: ROLLOUT_LANE},
)

#: Regular retraining (drift can trigger more through the sensor, with a cooldown).
retrain_schedule = dg.ScheduleDefinition(
    job=retrain_job,
    cron_schedule="0 3 * * *",
    execution_timezone="UTC",
    default_status=schedule_status(),
)

drift_job = dg.define_asset_job(
    "detect_drift",
    selection=dg.AssetSelection.assets("drift_report"),
    description="Compare the recent window with the reference window.",
    tags={LANE: LAKE_LANE},
)
drift_schedule = dg.ScheduleDefinition(
    job=drift_job,
    cron_schedule="*/15 * * * *",
    execution_timezone="UTC",
    default_status=schedule_status(),
)
