"""The adaptive loop's one switch: are its sensors and schedules running by default?

``FLASHREC_ADAPTIVE_LOOP=on`` (the default) starts every sensor and schedule of the loop
running as soon as the Dagster daemon loads the code (``make up``): live lake refresh,
drift, retrain, rollout. ``off`` leaves them stopped until a person switches them on in
the UI (Automation page). A status set by hand in the UI always wins over this default.
"""

from __future__ import annotations

import dagster as dg

from flashrec.settings import Settings


def loop_on(settings: Settings | None = None) -> bool:
    return (settings or Settings.from_env()).adaptive_loop == "on"


def sensor_status(settings: Settings | None = None) -> dg.DefaultSensorStatus:
    return dg.DefaultSensorStatus.RUNNING if loop_on(settings) else dg.DefaultSensorStatus.STOPPED


def schedule_status(settings: Settings | None = None) -> dg.DefaultScheduleStatus:
    return (
        dg.DefaultScheduleStatus.RUNNING if loop_on(settings) else dg.DefaultScheduleStatus.STOPPED
    )


#: Run-queue lanes (``dagster.yaml`` limits each to one run at a time): a retrain never
#: waits behind a lake refresh, and two refreshes never race on the same tables.
LANE = "flashrec/lane"
LAKE_LANE, MODELS_LANE, ROLLOUT_LANE = "lake", "models", "rollout"


def in_flight(context: dg.SensorEvaluationContext, job_name: str) -> bool:
    """A run of ``job_name`` is queued or running (sensors then wait instead of piling up)."""
    runs = context.instance.get_runs(
        filters=dg.RunsFilter(
            job_name=job_name,
            statuses=[
                dg.DagsterRunStatus.QUEUED,
                dg.DagsterRunStatus.NOT_STARTED,
                dg.DagsterRunStatus.STARTING,
                dg.DagsterRunStatus.STARTED,
            ],
        ),
        limit=1,
    )
    return bool(runs)
