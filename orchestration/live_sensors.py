"""Continuous refresh of the lake from the live stream, visible in Dagster.

``live_lake_refresh`` sees new finished landing files of the live source (the stream job
commits one every ``FLASHREC_LIVE_LAKE_ROLL_S``) and materializes that day's bronze and
silver partitions; ``live_downstream_refresh`` sees a new silver materialization and
rebuilds gold, the feature history and the drift report, with their checks. So within
minutes of an event reaching the gateway it is in the lake, the features' history and the
drift report's recent window. Cursors hold what was seen; a run in flight makes the
sensor wait (one run catches up with everything new: bronze ingests every file it lacks).
"""

from __future__ import annotations

import json

import dagster as dg

from flashrec.lake_layout import LIVE_SOURCE, days_with_files, finished_files
from flashrec.settings import Settings
from orchestration.automation import in_flight, sensor_status
from orchestration.jobs import live_downstream_job, live_lake_job

SILVER_ASSET = dg.AssetKey("silver_events")
CURSOR_DAYS = 7
_SETTINGS = Settings.from_env()


def new_live_files(settings: Settings, seen: dict[str, int]) -> dict[str, int]:
    """Days whose count of finished live files grew since ``seen``: day -> count now."""
    out = {}
    for day in days_with_files(settings.landing_dir, LIVE_SOURCE)[-CURSOR_DAYS:]:
        n = len(finished_files(settings.landing_dir, LIVE_SOURCE, day))
        if n > seen.get(day, 0):
            out[day] = n
    return out


@dg.sensor(
    job=live_lake_job,
    minimum_interval_seconds=_SETTINGS.live_refresh_interval_s,
    default_status=sensor_status(_SETTINGS),
    description="New live landing files -> that day's bronze and silver partitions.",
)
def live_lake_refresh(context: dg.SensorEvaluationContext) -> dg.SensorResult:
    if in_flight(context, live_lake_job.name):
        return dg.SensorResult(skip_reason="a live lake refresh is running", cursor=context.cursor)
    seen: dict[str, int] = json.loads(context.cursor) if context.cursor else {}
    grown = new_live_files(Settings.from_env(), seen)
    if not grown:
        return dg.SensorResult(skip_reason="no new live files", cursor=context.cursor)
    seen.update(grown)
    seen = dict(sorted(seen.items())[-CURSOR_DAYS:])
    return dg.SensorResult(
        run_requests=[
            dg.RunRequest(
                run_key=f"live-{day}-{n}", partition_key=day, tags={"flashrec/trigger": "live"}
            )
            for day, n in sorted(grown.items())
        ],
        cursor=json.dumps(seen),
    )


@dg.sensor(
    job=live_downstream_job,
    minimum_interval_seconds=max(10, _SETTINGS.live_refresh_interval_s // 2),
    default_status=sensor_status(_SETTINGS),
    description="New silver data -> gold, feature history and the drift report.",
)
def live_downstream_refresh(context: dg.SensorEvaluationContext) -> dg.SensorResult:
    if in_flight(context, live_downstream_job.name) or in_flight(context, live_lake_job.name):
        return dg.SensorResult(skip_reason="the lake lane is busy", cursor=context.cursor)
    after = int(context.cursor or 0)
    records = context.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=SILVER_ASSET, after_storage_id=after or None), limit=100
    ).records
    if not records:
        return dg.SensorResult(skip_reason="silver unchanged", cursor=context.cursor)
    newest = max(r.storage_id for r in records)
    return dg.SensorResult(
        run_requests=[
            dg.RunRequest(run_key=f"downstream-{newest}", tags={"flashrec/trigger": "live"})
        ],
        cursor=str(newest),
    )
