"""Jobs and schedules, defined by asset selection."""

from __future__ import annotations

import dagster as dg

from assets import groups
from assets.partitions import daily

lake_daily_job = dg.define_asset_job(
    "lake_daily",
    selection=dg.AssetSelection.groups(groups.LANDING, groups.BRONZE, groups.SILVER),
    partitions_def=daily,
    description="Ingest one landing day into bronze and rebuild its silver partitions.",
)

gold_job = dg.define_asset_job(
    "lake_gold",
    selection=dg.AssetSelection.groups(groups.GOLD),
    description="Rebuild the gold tables from the current silver snapshot.",
)

#: Shortly after midnight UTC, ingest the day that just closed.
lake_daily_schedule = dg.build_schedule_from_partitioned_job(
    lake_daily_job, hour_of_day=0, minute_of_hour=30
)

gold_schedule = dg.ScheduleDefinition(
    job=gold_job, cron_schedule="15 1 * * *", execution_timezone="UTC"
)

retrain_job = dg.define_asset_job(
    "retrain_models",
    selection=dg.AssetSelection.groups("models") - dg.AssetSelection.assets("model_rollout"),
    description="Train, evaluate and register a model; a retrained one enters as a shadow.",
)

rollout_job = dg.define_asset_job(
    "advance_rollout",
    selection=dg.AssetSelection.assets("model_rollout"),
    description="Move the challenger through shadow -> canary -> promote/rollback.",
)

#: Regular retraining (drift can trigger more through the sensor, with a cooldown).
retrain_schedule = dg.ScheduleDefinition(
    job=retrain_job, cron_schedule="0 3 * * *", execution_timezone="UTC"
)
#: The rollout decision is re-evaluated every 10 minutes while a challenger is out.
rollout_schedule = dg.ScheduleDefinition(
    job=rollout_job, cron_schedule="*/10 * * * *", execution_timezone="UTC"
)

drift_job = dg.define_asset_job(
    "detect_drift",
    selection=dg.AssetSelection.assets("drift_report"),
    description="Compare the recent window with the reference window.",
)
drift_schedule = dg.ScheduleDefinition(
    job=drift_job, cron_schedule="*/15 * * * *", execution_timezone="UTC"
)
