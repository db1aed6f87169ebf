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
