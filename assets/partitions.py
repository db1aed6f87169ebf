"""Daily partitions of the lake: one landing day = one bronze batch = one silver day."""

from __future__ import annotations

import dagster as dg

from flashrec.settings import Settings

_SETTINGS = Settings.from_env()

daily = dg.DailyPartitionsDefinition(start_date=_SETTINGS.lake_start_date, end_offset=1)

#: Silver day D reads bronze days D-1 .. D+lateness (see spark_jobs/silver.py).
silver_reads_bronze = dg.TimeWindowPartitionMapping(
    start_offset=-1,
    end_offset=_SETTINGS.allowed_lateness_days,
    allow_nonexistent_upstream_partitions=True,
)
