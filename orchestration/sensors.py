"""The sensor that retrains when drift is detected, with a cursor and a cooldown.

It watches materializations of the ``drift_report`` asset. A report whose metadata says
``retrain`` (drift in the lake a new model can fix: catalog, candidate position; online
decay alone waits for the lake to hold that traffic; older reports: ``drift_detected``)
launches the retraining job, unless a retrain was launched less than ``cooldown_s`` ago:
one surge makes many drifted reports, and one retrain.
The cursor remembers the last report seen and the last launch, so a restarted daemon
neither re-launches for old reports nor forgets the cooldown.
"""

import json
from dataclasses import asdict, dataclass

import dagster as dg

from assets.adaptivity import DRIFT_ASSET
from flashrec.settings import Settings
from orchestration.automation import in_flight, sensor_status

RETRAIN_JOB = "retrain_models"
_SETTINGS = Settings.from_env()
COOLDOWN_S = _SETTINGS.retrain_cooldown_s


@dataclass(frozen=True)
class SensorCursor:
    last_storage_id: int = 0
    last_launch_ts: float = 0.0

    @classmethod
    def parse(cls, raw: str | None) -> "SensorCursor":
        return cls(**json.loads(raw)) if raw else cls()

    def dump(self) -> str:
        return json.dumps(asdict(self))


@dataclass(frozen=True)
class Report:
    storage_id: int
    timestamp: float
    drift_detected: bool
    summary: str


def decide_retrain(
    reports: list[Report], cursor: SensorCursor, cooldown_s: float = COOLDOWN_S
) -> tuple[Report | None, SensorCursor, str]:
    """Pick the drifted report that launches a retrain (if any) and the next cursor."""
    new = sorted(
        (r for r in reports if r.storage_id > cursor.last_storage_id), key=lambda r: r.storage_id
    )
    if not new:
        return None, cursor, "no new drift report"
    seen = new[-1].storage_id
    drifted = [r for r in new if r.drift_detected]
    if not drifted:
        return None, SensorCursor(seen, cursor.last_launch_ts), "latest reports show no drift"
    trigger = drifted[-1]
    since = trigger.timestamp - cursor.last_launch_ts
    if cursor.last_launch_ts and since < cooldown_s:
        why = f"drift seen, but last retrain was {since:.0f}s ago (cooldown {cooldown_s:.0f}s)"
        return None, SensorCursor(seen, cursor.last_launch_ts), why
    return trigger, SensorCursor(seen, trigger.timestamp), f"drift: {trigger.summary}"


def _reports(context: dg.SensorEvaluationContext, after: int) -> list[Report]:
    records = context.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=DRIFT_ASSET, after_storage_id=after or None), limit=100
    ).records
    out = []
    for record in records:
        metadata = record.asset_materialization.metadata if record.asset_materialization else {}
        flag = metadata.get("retrain", metadata.get("drift_detected"))
        summary = metadata.get("summary")
        out.append(
            Report(
                record.storage_id,
                record.timestamp,
                bool(flag.value) if flag is not None else False,
                str(summary.value) if summary is not None else "",
            )
        )
    return out


@dg.sensor(
    job_name=RETRAIN_JOB,
    minimum_interval_seconds=30,
    default_status=sensor_status(_SETTINGS),
    description="Launch a retrain when the drift report detects drift (with a cooldown).",
)
def retrain_on_drift(context: dg.SensorEvaluationContext) -> dg.SensorResult:
    cursor = SensorCursor.parse(context.cursor)
    if in_flight(context, RETRAIN_JOB):
        return dg.SensorResult(skip_reason="a retrain is running", cursor=cursor.dump())
    trigger, next_cursor, why = decide_retrain(
        _reports(context, cursor.last_storage_id), cursor, COOLDOWN_S
    )
    context.log.info(why)
    if trigger is None:
        return dg.SensorResult(skip_reason=why, cursor=next_cursor.dump())
    return dg.SensorResult(
        run_requests=[
            dg.RunRequest(
                run_key=f"drift-{trigger.storage_id}",
                tags={"flashrec/trigger": "drift", "flashrec/why": why[:200]},
            )
        ],
        cursor=next_cursor.dump(),
    )
